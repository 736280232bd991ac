"""Raw: every trade of every configured symbol, as minute partitions of ``raw_trades/<symbol>``.

- ``assets``: the ``raw_trades/<symbol>`` assets and their blocking ``minute_complete`` check (a minute fetched from
  the archive or over REST and proven, or re-verified in the lake);
- ``io_manager``: ``raw_trades_io_manager``, which hands the trades of the minutes an asset depends on to it;
- ``live_stream``: the ``live_trades_stream`` job, whose op runs the capture process and records its minutes;
- ``keepalive``: ``live_stream_keepalive`` (exactly one streaming run, alive);
- ``gap_backfill``: ``raw_trades_gap_backfill`` (every minute the stream did not record, over REST), which asks the
  pure planner ``gap_plan`` what to request, ``first_trades`` where each symbol's minutes start, and reads why a run
  left minutes missing as ``miss_reasons`` values;
- ``resources``: ``ExchangeResource`` (endpoints, symbols, the shared REST weight budget) and ``LakeResource``.
"""

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from crypto_assets.defs.partitions import minute_partitions
from crypto_assets.defs.raw.assets import build_raw_trades_asset
from crypto_assets.defs.raw.gap_backfill import build_gap_backfill_sensor
from crypto_assets.defs.raw.gap_plan import GapPolicy
from crypto_assets.defs.raw.io_manager import RAW_TRADES_IO_MANAGER, RawTradesIOManager
from crypto_assets.defs.raw.keepalive import build_live_stream_keepalive
from crypto_assets.defs.raw.live_stream import live_trades_stream
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.defs.raw.universe import build_universe_sensor, settings_universe
from crypto_assets.ingest.universe import Universe
from crypto_assets.settings import Settings

__all__ = ["RAW_TRADES_JOB", "build_raw_definitions", "raw_resources"]

RAW_TRADES_JOB = "raw_trades_from_rest"
GROUP_SIZE = 40  # raw assets in one group before they are split by first letter


def build_raw_definitions(settings: Settings, universe: Universe | None = None) -> Definitions:
    """The raw assets (one per symbol ``universe`` defines: by default the one ``settings`` loads with), the stream
    and REST jobs, the sensors and the resources (`exchange`, `lake`) for ``settings``."""
    universe = universe or settings_universe(settings)
    symbols, streamed = universe.defined(), set(universe.streamed())
    minutes = minute_partitions(settings.partition_days)
    raw_trades = [
        build_raw_trades_asset(symbol, minutes, raw_group(symbol, len(symbols)), symbol in streamed)
        for symbol in symbols
    ]
    raw_job = define_asset_job(
        RAW_TRADES_JOB,
        selection=AssetSelection.assets(*raw_trades),
        partitions_def=minutes,
        description="raw_trades minutes fetched over REST (what the gap sensor launches)",
        # a gap run is one symbol, so one step: run in the run's own process, not in a second one that loads the
        # definitions again (a few seconds of CPU per run; UI backfills keep a process per step)
        executor_def=in_process_executor,
    )
    return Definitions(
        assets=raw_trades,
        jobs=[raw_job, live_trades_stream],
        sensors=[
            build_live_stream_keepalive(live_trades_stream),
            build_universe_sensor(symbols),
            build_gap_backfill_sensor(
                raw_job,
                symbols,
                minutes,
                GapPolicy(settings.gap_lookback_hours, settings.gap_settle_seconds, settings.gap_max_runs),
            ),
        ],
        resources=raw_resources(
            ExchangeResource.from_settings(settings, symbols), LakeResource.from_settings(settings)
        ),
    )


def raw_group(symbol: str, symbol_count: int) -> str:
    """The asset group of a symbol's raw asset: ``raw`` for up to ``GROUP_SIZE`` symbols; beyond, one group per first
    letter (``raw_a`` ... ``raw_z``, ``raw_0`` for digits), so the asset graph stays readable with hundreds."""
    if symbol_count <= GROUP_SIZE:
        return "raw"
    first = symbol[0].lower()
    return f"raw_{first if first.isalpha() else '0'}"


def raw_resources(exchange: ExchangeResource, lake: LakeResource) -> dict[str, object]:
    """The resources the raw assets need: the exchange, the lake, and the IO manager that reads the lake for the
    assets downstream of them (``raw_trades_io_manager``)."""
    return {"exchange": exchange, "lake": lake, RAW_TRADES_IO_MANAGER: RawTradesIOManager(lake=lake)}
