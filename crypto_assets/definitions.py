"""The Dagster code location: `dagster dev` loads `defs` from here (see workspace.yaml / pyproject.toml).

It only merges the domains, each built from the same `Settings`:
- ``defs/raw``: ``raw_trades/<symbol>`` minute partitions, recorded by the live stream (kept alive by a sensor) and
  by the REST gap backfill, one Parquet file per symbol-minute in the lake;
- ``defs/analytics``: the dbt project (silver and gold, hourly) reading the lake.
"""

from __future__ import annotations

from dataclasses import replace

from dagster import Definitions

from crypto_assets.defs.analytics import build_analytics_definitions
from crypto_assets.defs.raw import build_raw_definitions
from crypto_assets.defs.raw.universe import settings_universe
from crypto_assets.settings import Settings


def build_definitions(settings: Settings) -> Definitions:
    universe = settings_universe(settings)  # the symbols: CRYPTO_SYMBOLS, or its quote selection resolved
    return Definitions.merge(
        build_raw_definitions(settings, universe),
        build_analytics_definitions(replace(settings, symbols=tuple(universe.defined()))),
    )


defs = build_definitions(Settings.from_env())
