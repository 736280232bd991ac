"""The Dagster code location: `dagster dev` loads `defs` from here (see workspace.yaml / pyproject.toml)."""

from __future__ import annotations

from dagster import Definitions

from crypto_assets.defs.market_snapshot import market_snapshot, market_snapshot_every_minute
from crypto_assets.defs.resources import ExchangeResource
from crypto_assets.settings import Settings


def build_definitions(settings: Settings) -> Definitions:
    return Definitions(
        assets=[market_snapshot],
        schedules=[market_snapshot_every_minute],
        resources={"exchange": ExchangeResource.from_settings(settings)},
    )


defs = build_definitions(Settings.from_env())
