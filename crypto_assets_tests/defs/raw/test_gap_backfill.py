"""The gap sensor (``gap_backfill.py``) evaluated tick by tick against a real (SQLite) Dagster instance and the exchange
simulator: its order, back-off, first-trade bound, reasons and run keys, on one controllable clock (set in the past,
so every minute the sensor asks for is a real partition). Runs are real where their outcome matters: `materialize`
with the sensor's tags, the healthy symbols against the simulator, the broken one against a port nobody listens on.
The planner's rules alone, without an instance: ``test_gap_plan.py``."""

import json
import time

import msgspec
import pytest
from dagster import AssetMaterialization, RunsFilter, materialize
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.definitions import build_definitions
from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG, raw_trades_key
from crypto_assets.defs.partitions import minute_partitions
from crypto_assets.defs.raw import RAW_TRADES_JOB, raw_resources
from crypto_assets.defs.raw.assets import build_raw_trades_asset
from crypto_assets.defs.raw.gap_backfill import GAP_TAG, build_gap_backfill_sensor
from crypto_assets.defs.raw.gap_plan import GapCursor, GapPolicy
from crypto_assets.defs.raw.miss_reasons import MissReason
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.exchange.models import SymbolListing
from crypto_assets.ingest.universe import Selection, merge
from crypto_assets.lake import LocalLake
from crypto_assets.minutes import MINUTE_MS, floor_minute, minute_key, minute_start_ms, utc_text
from crypto_assets.settings import Settings
from crypto_assets_tests.defs.raw.conftest import sensor_context
from crypto_assets_tests.ports import free_port

pytestmark = pytest.mark.integration

HISTORY_MINUTES = 30
LISTED_MINUTES = 10  # NEWUSDT was listed this long before the simulator started
QUIET = "QUIETUSDT"  # listed, never traded


class Clock:
    """Now for the simulator (ms) and the sensor (s); starts 40 minutes in the past, moved by the tests."""

    def __init__(self, start_ms: int):
        self.ms = start_ms

    def sim_ms(self) -> int:
        return self.ms

    def sensor_s(self) -> float:
        return self.ms / 1000

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@pytest.fixture
def clock():
    return Clock(floor_minute(int(time.time() * 1000)) - 40 * MINUTE_MS + 20_000)  # 20 s into a minute


@pytest.fixture
def market(clock):
    config = SimulatorConfig(
        symbols=[
            symbol_config("BTCUSDT"),
            symbol_config("ETHUSDT"),
            symbol_config("NEWUSDT"),
            symbol_config(QUIET, trades_per_second=0, burst_probability=0),
        ],
        history_minutes=HISTORY_MINUTES,
        listed={"NEWUSDT": LISTED_MINUTES},
    )
    with Simulator(config, clock=clock.sim_ms) as sim:
        yield sim


class Gap:
    """The gap sensor built as the definitions build it, with the test's clock; ``tick`` evaluates it once with the
    cursor of the previous tick."""

    def __init__(self, instance, clock, rest_url, symbols, tmp_path, **env):
        self.settings = Settings.from_env(
            {
                "CRYPTO_SYMBOLS": ",".join(symbols),
                "CRYPTO_PARTITION_DAYS": "1",
                "BINANCE_REST_URL": rest_url,
                "CRYPTO_GAP_LOOKBACK_HOURS": "1",
                "CRYPTO_GAP_SETTLE_SECONDS": "15",
                "CRYPTO_WEIGHT_BUDGET_DIR": str(tmp_path / "budget"),
                "CRYPTO_LAKE_URL": str(tmp_path / "lake"),
                **env,
            },
            dotenv_path=None,
        )
        self.defs = build_definitions(self.settings)
        self.sensor = build_gap_backfill_sensor(
            self.defs.resolve_job_def(RAW_TRADES_JOB),
            self.settings.symbols,
            minute_partitions(1),
            GapPolicy(self.settings.gap_lookback_hours, self.settings.gap_settle_seconds, self.settings.gap_max_runs),
            clock=clock.sensor_s,
        )
        self.instance = instance
        self.cursor: str | None = None

    def tick(self):
        result = self.sensor.evaluate_tick(sensor_context(self.defs, self.sensor, self.instance, self.cursor))
        self.cursor = result.cursor
        return result

    def state(self) -> dict:
        return json.loads(self.cursor)

    def reasons(self) -> dict[str, set]:
        """Why the waiting minutes of each symbol wait, as the cursor keeps it: values, not text."""
        return {s: {w.reason for w in minutes.values()} for s, minutes in GapCursor.load(self.cursor).waits.items()}


def ranges(result) -> list[tuple[str, int, int]]:
    """(symbol, first minute, last minute) of each run request, in order."""
    return [
        (r.tags[GAP_TAG], minute_start_ms(r.tags[RANGE_START_TAG]), minute_start_ms(r.tags[RANGE_END_TAG]))
        for r in result.run_requests
    ]


def materialize_minutes(instance, symbol, minutes):
    for minute in minutes:
        instance.report_runless_asset_event(AssetMaterialization(raw_trades_key(symbol), partition=minute_key(minute)))


def run_request(request, instance, rest_url, tmp_path):
    """The requested run, for real: the sensor's tags on a materialization of the symbol's asset."""
    symbol = request.tags[GAP_TAG]
    asset = build_raw_trades_asset(symbol, minute_partitions(1))
    return materialize(
        [asset],
        instance=instance,
        tags=request.tags,
        raise_on_error=False,
        resources=raw_resources(
            ExchangeResource(
                rest_url=rest_url,
                ws_url="ws://127.0.0.1:1",
                symbols=[symbol],
                weight_budget_dir=str(tmp_path / "budget"),
            ),
            LakeResource(url=str(tmp_path / "lake")),
        ),
    )


def fail_run(instance, gap, request, message):
    """A run of the request that failed with ``message`` (the run's own failure event)."""
    run = instance.create_run_for_job(
        gap.defs.resolve_job_def(RAW_TRADES_JOB), tags=request.tags, asset_selection=frozenset(request.asset_selection)
    )
    instance.report_run_failed(run, message)
    return run


# ---- order and first trades --------------------------------------------------------------------------------------
def test_newest_ranges_first_symbols_alternate_and_nothing_before_a_first_trade(market, clock, instance, tmp_path):
    symbols = ["BTCUSDT", "ETHUSDT", "NEWUSDT", QUIET]
    gap = Gap(instance, clock, market.rest_url, symbols, tmp_path, CRYPTO_GAP_MAX_RUNS="10")
    now_minute = floor_minute(clock.ms)
    last = now_minute - MINUTE_MS  # ended 20 s ago: past the 15 s settle time
    origin = market.market.origin_ms
    listing = now_minute - LISTED_MINUTES * MINUTE_MS  # NEWUSDT's first trade is in this minute
    materialize_minutes(instance, "BTCUSDT", [now_minute - 5 * MINUTE_MS, now_minute - 15 * MINUTE_MS])
    materialize_minutes(instance, "ETHUSDT", [now_minute - 8 * MINUTE_MS])
    result = gap.tick()
    assert ranges(result) == [
        ("BTCUSDT", now_minute - 4 * MINUTE_MS, last),
        ("ETHUSDT", now_minute - 7 * MINUTE_MS, last),
        ("NEWUSDT", listing, last),  # not one minute before its first trade
        ("BTCUSDT", now_minute - 14 * MINUTE_MS, now_minute - 6 * MINUTE_MS),
        ("ETHUSDT", origin, now_minute - 9 * MINUTE_MS),  # the simulator's history starts with a trade
        ("BTCUSDT", origin, now_minute - 16 * MINUTE_MS),
    ]
    state = gap.state()
    assert state["first_trades"]["NEWUSDT"]["id"] == 0
    assert floor_minute(state["first_trades"]["NEWUSDT"]["time_ms"]) == listing
    assert floor_minute(state["first_trades"]["BTCUSDT"]["time_ms"]) == origin
    assert "none_checked_ms" in state["first_trades"][QUIET]  # never traded: no gap at all
    # the next tick's round starts one symbol further (nothing was launched, so the same ranges are due)
    assert [s for s, _, _ in ranges(gap.tick())][:3] == ["ETHUSDT", "NEWUSDT", "BTCUSDT"]


def test_a_failed_first_trade_lookup_holds_only_its_symbol_and_is_retried(market, clock, instance, tmp_path):
    gap = Gap(instance, clock, market.rest_url, ["NOSUCHUSDT", "BTCUSDT"], tmp_path, CRYPTO_GAP_MAX_RUNS="3")
    result = gap.tick()
    assert {s for s, _, _ in ranges(result)} == {"BTCUSDT"}
    assert "NOSUCHUSDT" not in gap.state()["first_trades"]
    # an exchange nobody answers for: nothing known, nothing asked for, and it says why
    dead = Gap(instance, clock, f"http://127.0.0.1:{free_port()}", ["ETHUSDT"], tmp_path)
    result = dead.tick()
    assert not result.run_requests
    assert "ETHUSDT: first trade unknown (lookup failed" in result.skip_message
    assert "ETHUSDT" not in dead.state()["first_trades"]
    # the next tick, with the exchange back, looks it up and asks for the symbol's gaps
    alive = Gap(instance, clock, market.rest_url, ["ETHUSDT"], tmp_path)
    alive.cursor = dead.cursor
    assert [s for s, _, _ in ranges(alive.tick())] == ["ETHUSDT"]


# ---- back-off --------------------------------------------------------------------------------------------------
def test_a_minute_still_missing_after_its_run_waits_5_then_10_then_20_minutes(market, clock, instance, tmp_path):
    gap = Gap(instance, clock, market.rest_url, ["BTCUSDT"], tmp_path, CRYPTO_GAP_MAX_RUNS="2")
    now_minute = floor_minute(clock.ms)
    hole = [now_minute - 12 * MINUTE_MS, now_minute - 11 * MINUTE_MS]
    materialize_minutes(
        instance, "BTCUSDT", [m for m in range(market.market.origin_ms, now_minute, MINUTE_MS) if m not in hole]
    )
    [request] = gap.tick().run_requests
    for attempt, wait_min in enumerate((5, 10, 20), start=1):
        run = fail_run(instance, gap, request, f"BTCUSDT: exchange unreachable (attempt {attempt})")
        clock.advance(15)
        seen = clock.ms
        result = gap.tick()
        assert not result.run_requests
        until = seen + wait_min * 60_000
        message = result.skip_message
        assert (
            f"BTCUSDT {minute_key(hole[0])}..{minute_key(hole[1])} (2 min) waits until {utc_text(until)} "
            f"after {attempt} run(s) without it: run {run.run_id} failed: BTCUSDT: exchange unreachable "
            f"(attempt {attempt})"
        ) in message, message
        # a failure reported from outside the raw op names no reason of the op's: the run failed, its message shown
        assert gap.reasons() == {"BTCUSDT": {MissReason.RUN_FAILED}}
        clock.advance(wait_min * 60 - 1)  # a second before the end of the wait: still waiting
        materialize_minutes(instance, "BTCUSDT", range(now_minute, floor_minute(clock.ms), MINUTE_MS))
        now_minute = floor_minute(clock.ms)
        assert not gap.tick().run_requests
        clock.advance(2)
        [request] = gap.tick().run_requests
        assert ranges_of(request) == (hole[0], hole[1])
    # a run that succeeds without the minutes is no better than a failure; once they are there, they drop out
    run = instance.create_run_for_job(
        gap.defs.resolve_job_def(RAW_TRADES_JOB), tags=request.tags, asset_selection=frozenset(request.asset_selection)
    )
    instance.report_run_canceled(run)
    clock.advance(15)
    assert f"after 4 run(s) without it: run {run.run_id} was canceled" in gap.tick().skip_message
    assert gap.reasons() == {"BTCUSDT": {MissReason.RUN_CANCELED}}
    materialize_minutes(instance, "BTCUSDT", hole)
    result = gap.tick()
    assert "wait" not in result.skip_message and gap.state()["waits"] == {}


def ranges_of(request) -> tuple[int, int]:
    return minute_start_ms(request.tags[RANGE_START_TAG]), minute_start_ms(request.tags[RANGE_END_TAG])


# ---- real runs: a range that cannot be proven does not hold the others -----------------------------------------
def test_an_unprovable_range_waits_while_healthy_ranges_are_backfilled(market, clock, instance, tmp_path):
    dead_url = f"http://127.0.0.1:{free_port()}"  # ETHUSDT's runs meet a REST fault: nobody answers
    gap = Gap(instance, clock, market.rest_url, ["BTCUSDT", "ETHUSDT"], tmp_path, CRYPTO_GAP_MAX_RUNS="4")
    now_minute = floor_minute(clock.ms)
    for symbol in ("BTCUSDT", "ETHUSDT"):  # everything but the last three minutes is there already
        materialize_minutes(instance, symbol, range(market.market.origin_ms, now_minute - 3 * MINUTE_MS, MINUTE_MS))
    bad = (now_minute - 3 * MINUTE_MS, now_minute - MINUTE_MS)
    fault = {"on": True}

    def launch(result):
        outcomes = {}
        for request in result.run_requests:
            broken = fault["on"] and ranges_of(request) == bad and request.tags[GAP_TAG] == "ETHUSDT"
            url = dead_url if broken else market.rest_url
            outcomes[(request.tags[GAP_TAG], *ranges_of(request))] = run_request(
                request, instance, url, tmp_path
            ).success
        return outcomes

    assert launch(gap.tick()) == {("BTCUSDT", *bad): True, ("ETHUSDT", *bad): False}
    result = gap.tick()
    assert not result.run_requests
    assert f"ETHUSDT {minute_key(bad[0])}..{minute_key(bad[1])} (3 min) waits until" in result.skip_message
    assert "unreachable" in result.skip_message and dead_url in result.skip_message
    # read from the raw op's failure metadata, not its text
    assert gap.reasons() == {"ETHUSDT": {MissReason.EXCHANGE_UNREACHABLE}}

    clock.advance(150)  # two more minutes end: both symbols' new minutes are backfilled, ETHUSDT's bad range waits
    fresh = (now_minute, now_minute + MINUTE_MS)
    assert launch(gap.tick()) == {("BTCUSDT", *fresh): True, ("ETHUSDT", *fresh): True}
    assert {
        minute_key(m) for m in range(bad[0], fresh[1] + MINUTE_MS, MINUTE_MS)
    } <= instance.get_materialized_partitions(raw_trades_key("BTCUSDT"))
    assert not gap.tick().run_requests

    clock.advance(300)  # the wait is over: the newest minutes first, then the old range again (healed now)
    newest = (now_minute + 2 * MINUTE_MS, floor_minute(clock.ms) - MINUTE_MS)
    result = gap.tick()
    assert ranges(result) == [("BTCUSDT", *newest), ("ETHUSDT", *newest), ("ETHUSDT", *bad)]
    fault["on"] = False  # the exchange answers ETHUSDT again
    assert all(launch(result).values())
    result = gap.tick()
    assert not result.run_requests and gap.state()["waits"] == {} and "wait" not in result.skip_message


# ---- run keys: what is requested, never the clock ------------------------------------------------------------------
def test_a_tick_evaluated_again_asks_for_the_same_run_keys_and_a_retry_for_a_new_one(market, clock, instance, tmp_path):
    """Dagster launches at most one run per run key of a sensor (a request whose key the sensor used already is
    skipped): the same tick evaluated again, seconds later, must repeat its keys, and the retry of a range whose run
    ended must not."""
    gap = Gap(instance, clock, market.rest_url, ["BTCUSDT", "ETHUSDT"], tmp_path, CRYPTO_GAP_MAX_RUNS="4")
    now_minute = floor_minute(clock.ms)
    hole = (now_minute - 12 * MINUTE_MS, now_minute - 11 * MINUTE_MS)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        materialize_minutes(
            instance, symbol, [m for m in range(market.market.origin_ms, now_minute, MINUTE_MS) if m not in hole]
        )
    first = gap.tick()
    keys = [r.run_key for r in first.run_requests]
    assert keys == [f"gap:{s}:{minute_key(hole[0])}..{minute_key(hole[1])}#1" for s in ("BTCUSDT", "ETHUSDT")]

    gap.cursor = None  # the same tick again (its cursor was not stored), 3 s later
    clock.advance(3)
    assert [r.run_key for r in gap.tick().run_requests] == keys

    # BTCUSDT's run is launched with its key (as the daemon tags it) and fails; after the wait, the retry is new
    [request] = [r for r in first.run_requests if r.tags[GAP_TAG] == "BTCUSDT"]
    run = instance.create_run_for_job(
        gap.defs.resolve_job_def(RAW_TRADES_JOB),
        tags={**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: gap.sensor.name},
        asset_selection=frozenset(request.asset_selection),
    )
    instance.report_run_failed(run, "BTCUSDT: exchange unreachable")
    materialize_minutes(instance, "ETHUSDT", hole)
    clock.advance(15)
    assert not gap.tick().run_requests  # BTCUSDT's hole waits 5 min
    clock.advance(5 * 60)
    materialize_minutes(instance, "BTCUSDT", range(now_minute, floor_minute(clock.ms), MINUTE_MS))
    materialize_minutes(instance, "ETHUSDT", range(now_minute, floor_minute(clock.ms), MINUTE_MS))
    [retry] = gap.tick().run_requests
    assert ranges_of(retry) == ranges_of(request) == hole
    assert retry.run_key == f"gap:BTCUSDT:{minute_key(hole[0])}..{minute_key(hole[1])}#2"
    assert instance.get_runs(RunsFilter(tags={RUN_KEY_TAG: request.run_key})) == [instance.get_run_by_id(run.run_id)]
    assert not instance.get_runs(RunsFilter(tags={RUN_KEY_TAG: retry.run_key}))  # a key Dagster will launch


# ---- with the real clock and the session's simulator ---------------------------------------------------------------
SYMBOLS = "BTCUSDT,ETHUSDT"


def gap_definitions(simulator, **env):
    """Definitions whose gap sensor asks the (session's) simulator for each symbol's first trade (the start of its
    history); the default weight budget folder, as the other tests of that simulator use."""
    return build_definitions(
        Settings.from_env(
            {"CRYPTO_SYMBOLS": SYMBOLS, "CRYPTO_PARTITION_DAYS": "1", "BINANCE_REST_URL": simulator.rest_url, **env},
            dotenv_path=None,
        )
    )


def evaluate(defs, instance):
    sensor = defs.resolve_sensor_def("raw_trades_gap_backfill")
    return sensor.evaluate_tick(sensor_context(defs, sensor, instance))


def test_missing_minutes_become_one_run_per_range_newest_first(simulator, instance):
    defs = gap_definitions(
        simulator, CRYPTO_GAP_LOOKBACK_HOURS="1", CRYPTO_GAP_SETTLE_SECONDS="60", CRYPTO_GAP_MAX_RUNS="3"
    )
    now = floor_minute(int(time.time() * 1000))
    origin = simulator.market.origin_ms  # the first trade of both symbols
    window = list(range(origin, now - MINUTE_MS, MINUTE_MS))  # minutes ended >= 60 s ago, roughly
    older, newer = window[0:1], window[2:4]
    materialize_minutes(instance, "BTCUSDT", [m for m in window if m not in older + newer])
    materialize_minutes(instance, "ETHUSDT", window)
    result = evaluate(defs, instance)
    requests = [r for r in result.run_requests if r.tags[RANGE_START_TAG] <= minute_key(window[-1])]
    assert len(requests) >= 2, result.skip_message
    first, second = requests[0], requests[1]
    assert first.asset_selection == [raw_trades_key("BTCUSDT")] and first.tags[GAP_TAG] == "BTCUSDT"
    assert (first.tags[RANGE_START_TAG], first.tags[RANGE_END_TAG]) == (minute_key(newer[0]), minute_key(newer[-1]))
    assert (second.tags[RANGE_START_TAG], second.tags[RANGE_END_TAG]) == (minute_key(older[0]),) * 2
    # nothing before the first trade, nothing that has not settled, nothing already materialized
    for request in result.run_requests:
        assert minute_start_ms(request.tags[RANGE_START_TAG]) >= origin
        assert minute_start_ms(request.tags[RANGE_END_TAG]) + MINUTE_MS <= time.time() * 1000 - 60_000
    assert len(result.run_requests) <= 3


def test_ranges_in_flight_are_not_asked_for_twice_and_runs_are_capped(simulator, instance):
    defs = gap_definitions(simulator, CRYPTO_GAP_LOOKBACK_HOURS="1", CRYPTO_GAP_MAX_RUNS="2")
    job = defs.resolve_job_def(RAW_TRADES_JOB)
    first = evaluate(defs, instance).run_requests
    assert len(first) == 2  # every minute of both symbols is missing: one range each, capped at 2 runs
    for request in first:
        instance.create_run_for_job(job, tags=request.tags, asset_selection=frozenset(request.asset_selection))
    result = evaluate(defs, instance)
    assert not result.run_requests and "in flight" in result.skip_message
    # with room for more runs, the ranges in flight are still not asked for again
    defs = gap_definitions(simulator, CRYPTO_GAP_LOOKBACK_HOURS="1", CRYPTO_GAP_MAX_RUNS="4")
    again = evaluate(defs, instance).run_requests or []
    in_flight = {(r.tags[GAP_TAG], r.tags[RANGE_START_TAG]) for r in first}
    assert not in_flight & {(r.tags[GAP_TAG], r.tags[RANGE_START_TAG]) for r in again}


def test_no_gap_no_run(simulator, instance):
    defs = gap_definitions(simulator, CRYPTO_GAP_LOOKBACK_HOURS="1")
    now = floor_minute(int(time.time() * 1000))
    for symbol in SYMBOLS.split(","):
        materialize_minutes(instance, symbol, range(now - 62 * MINUTE_MS, now, MINUTE_MS))
    result = evaluate(defs, instance)
    assert not result.run_requests and "no gap due in BTCUSDT, ETHUSDT" in result.skip_message


def test_a_halted_symbol_is_not_chased(simulator, instance, tmp_path):
    """Every minute of both symbols is missing, but exchangeInfo said ETHUSDT is halted (the universe kept in the
    lake): a halt is no gap, only BTCUSDT's minutes are asked for."""
    lake = str(tmp_path / "lake")
    defs = gap_definitions(simulator, CRYPTO_GAP_LOOKBACK_HOURS="1", CRYPTO_GAP_MAX_RUNS="4", CRYPTO_LAKE_URL=lake)
    selection = Selection(tuple(SYMBOLS.split(",")))
    listings = [SymbolListing("BTCUSDT", "TRADING"), SymbolListing("ETHUSDT", "HALT")]
    universe = merge(selection, None, listings, int(time.time() * 1000))
    LocalLake(lake).write_state(f"universe-{selection.name}.json", msgspec.json.encode(universe))
    result = evaluate(defs, instance)
    assert {r.tags[GAP_TAG] for r in result.run_requests} == {"BTCUSDT"}
