"""The symbol universe in Dagster: resolved when the code location loads, refreshed by the ``symbol_universe`` sensor.

The code location defines a ``raw_trades/<symbol>`` asset for every symbol ever in the universe
(``Universe.defined()``, so a delisted symbol's partitions stay browsable). The sensor reads exchangeInfo every
``REFRESH_S`` and keeps the result in the lake: the keep-alive streams the new universe at once (a listing's shard
restarts with it, its first minute recorded from its first trade), the gap backfill stops chasing symbols that left
or halted, and the asset graph shows a new listing's asset once the code location reloads (the sensor says so;
docs/adr/0009).
"""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

from dagster import DefaultSensorStatus, SensorDefinition, SensorEvaluationContext, SkipReason, sensor

from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable
from crypto_assets.exchange.models import MalformedPayload
from crypto_assets.ingest.universe import REFRESH_S, Universe, kept, load_universe, refresh_universe
from crypto_assets.lake import LakeError
from crypto_assets.settings import Settings


def settings_universe(settings: Settings) -> Universe:
    """The universe the code location loads with: for a quote selection the kept one while fresh, else read from
    exchangeInfo (``UniverseUnavailable`` when neither can be had); an explicit list never waits for the exchange."""
    exchange, lake = ExchangeResource.from_settings(settings), LakeResource.from_settings(settings)
    selection = exchange.selection()
    if selection.quote_asset:
        return load_universe(selection, lake.lake(), exchange.rest_client)
    return exchange.universe(lake.lake())


def build_universe_sensor(defined: list[str]) -> SensorDefinition:
    """``defined``: the symbols whose assets this code location loaded with."""
    loaded = set(defined)

    @sensor(
        name="symbol_universe",
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=REFRESH_S // 2,
        description="Reads the symbol universe from exchangeInfo (listings, delistings, halts) and keeps it in the "
        "lake, where the stream's keep-alive and the gap backfill read it.",
    )
    def symbol_universe(context: SensorEvaluationContext, exchange: ExchangeResource, lake: LakeResource):
        selection = exchange.selection()
        before = kept(selection, lake.lake())
        try:
            with exchange.rest_client() as client:
                universe = refresh_universe(selection, lake.lake(), client)
        except (ExchangeUnreachable, ExchangeError, MalformedPayload, LakeError) as exc:
            return SkipReason(f"universe not refreshed: {exc}")
        changes = _changes(before, universe)
        for line in changes:
            context.log.info(line)
        new = [s for s in universe.defined() if s not in loaded]
        reload = f"; not defined until the code location reloads: {', '.join(new[:20])}" if new else ""
        return SkipReason(f"{universe.describe()}{reload}")

    return symbol_universe


def _changes(before: Universe | None, after: Universe) -> list[str]:
    if before is None:
        return [f"universe resolved: {after.describe()}"]
    was, now = set(before.streamed()), set(after.streamed())
    lines = []
    if now - was:
        lines.append(f"joined the universe (streamed from now on): {', '.join(sorted(now - was))}")
    if was - now:
        lines.append(f"left the universe (no longer streamed; recorded minutes kept): {', '.join(sorted(was - now))}")
    halted = set(after.streamed()) - set(after.chased())
    if halted != set(before.streamed()) - set(before.chased()):
        lines.append(f"halted now (not chased as gaps): {', '.join(sorted(halted)) or 'none'}")
    return lines
