"""How dbt nodes become Dagster assets: the lake source becomes every configured `raw_trades/<symbol>` asset (so the
lineage runs raw -> silver -> gold), staging models form group `silver`, marts group `gold` with a freshness policy,
and every hourly model gets its automation condition (`automation.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from dagster import AssetDep, AssetSpec, AutomationCondition, FreshnessPolicy, TimeWindowPartitionMapping
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from crypto_assets.defs.analytics.automation import MODEL_CONDITION, SILVER_CONDITION
from crypto_assets.defs.analytics.warehouse_io_manager import WAREHOUSE_IO_MANAGER
from crypto_assets.defs.names import raw_trades_key

LAKE_SOURCE = "source.dbt_crypto_pipeline.lake.raw_trades"
# Gold is built hourly, five minutes after each hour ends: warn when the newest build is over 75 minutes old, fail
# over 2 hours (one missed hour).
GOLD_FRESHNESS = FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(minutes=75))


class AnalyticsTranslator(DagsterDbtTranslator):
    def __init__(self, symbols: Sequence[str], gold_freshness: FreshnessPolicy | None = GOLD_FRESHNESS):
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self.raw_keys = [raw_trades_key(symbol) for symbol in symbols]
        self.gold_freshness = gold_freshness

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> AutomationCondition | None:
        """Hourly models build themselves (automation.py): those reading the lake once every raw minute of their hour
        is recorded, the others with them. latest_prices follows its schedule."""
        if dbt_resource_props.get("resource_type") != "model" or "unpartitioned" in dbt_resource_props.get("tags", []):
            return None
        reads_lake = LAKE_SOURCE in dbt_resource_props.get("depends_on", {}).get("nodes", [])
        return SILVER_CONDITION if reads_lake else MODEL_CONDITION

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id)
        if node is None or node.get("resource_type") != "model":
            return spec
        if LAKE_SOURCE in node.get("depends_on", {}).get("nodes", []):
            source_key = super().get_asset_spec(manifest, LAKE_SOURCE, project).key
            # an hour of silver needs the 60 minutes of that hour of every raw_trades/<symbol>
            deps = [dep for dep in spec.deps if dep.asset_key != source_key]
            deps += [AssetDep(key, partition_mapping=TimeWindowPartitionMapping()) for key in self.raw_keys]
            spec = spec.replace_attributes(deps=deps)
        # read by assets downstream (warehouse_io_manager); an hourly model's rows of an hour are its window column's
        spec = spec.with_io_manager_key(WAREHOUSE_IO_MANAGER)
        window_column = node.get("config", {}).get("window_column")
        if window_column:
            spec = spec.merge_attributes(metadata={"partition_expr": window_column})
        fqn = node.get("fqn", [])  # e.g. ["dbt_crypto_pipeline", "staging", "stg_trades"]
        layer = fqn[1] if len(fqn) > 2 else ""
        if layer == "staging":
            spec = spec.replace_attributes(group_name="silver")
        elif layer == "marts":
            spec = spec.replace_attributes(group_name="gold", freshness_policy=self.gold_freshness)
        return spec
