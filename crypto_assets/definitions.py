"""The Dagster code location: `dagster dev` loads `defs` from here (see workspace.yaml / pyproject.toml)."""

from __future__ import annotations

from dagster import Definitions

from crypto_assets.defs.market_snapshot import market_snapshot, market_snapshot_every_minute
from crypto_assets.defs.partitions import minute_partitions
from crypto_assets.defs.raw_trades import build_raw_trades_asset
from crypto_assets.defs.resources import ExchangeResource, LakeResource
from crypto_assets.settings import Settings


def build_definitions(settings: Settings) -> Definitions:
    minutes = minute_partitions(settings.partition_days)
    raw_trades = [build_raw_trades_asset(symbol, minutes) for symbol in settings.symbols]
    return Definitions(
        assets=[market_snapshot, *raw_trades],
        schedules=[market_snapshot_every_minute],
        resources={"exchange": ExchangeResource.from_settings(settings), "lake": LakeResource.from_settings(settings)},
    )


defs = build_definitions(Settings.from_env())
