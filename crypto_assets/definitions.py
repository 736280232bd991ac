"""The Dagster code location: `dagster dev` loads `defs` from here (see workspace.yaml / pyproject.toml).

Data flow: live_trades_stream (kept alive by live_stream_keepalive) and raw_trades_gap_backfill (REST) both record
raw_trades/<symbol> minute partitions, one Parquet file per symbol-minute in the lake; the analytics definitions
(dbt, hourly) read the lake into silver and gold.
"""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from crypto_assets.defs.analytics import build_analytics_definitions
from crypto_assets.defs.live_stream import live_trades_stream
from crypto_assets.defs.partitions import minute_partitions
from crypto_assets.defs.raw_trades import build_raw_trades_asset
from crypto_assets.defs.resources import ExchangeResource, LakeResource
from crypto_assets.defs.sensors import build_gap_backfill_sensor, build_live_stream_keepalive
from crypto_assets.settings import Settings

RAW_TRADES_JOB = "raw_trades_from_rest"


def build_definitions(settings: Settings) -> Definitions:
    minutes = minute_partitions(settings.partition_days)
    raw_trades = [build_raw_trades_asset(symbol, minutes) for symbol in settings.symbols]
    raw_job = define_asset_job(RAW_TRADES_JOB, selection=AssetSelection.assets(*raw_trades), partitions_def=minutes,
                               description="raw_trades minutes fetched over REST (what the gap sensor launches)")
    raw = Definitions(
        assets=raw_trades,
        jobs=[raw_job, live_trades_stream],
        sensors=[build_live_stream_keepalive(live_trades_stream, settings.symbols),
                 build_gap_backfill_sensor(raw_job, settings.symbols, minutes, settings)],
        resources={"exchange": ExchangeResource.from_settings(settings), "lake": LakeResource.from_settings(settings)},
    )
    return Definitions.merge(raw, build_analytics_definitions(settings))


defs = build_definitions(Settings.from_env())
