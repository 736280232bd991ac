"""The gap sensor's order, back-off and first-trade bound, evaluated tick by tick against a real (SQLite) Dagster
instance and the exchange simulator, both on one controllable clock (set in the past, so every minute the sensor asks
for is a real partition). Runs are real where their outcome matters: `materialize` with the sensor's tags, the
healthy symbols against the simulator, the broken one against a port nobody listens on."""

import json

import pytest
from dagster import AssetMaterialization, build_sensor_context, materialize

from crypto_assets.definitions import build_definitions
from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG, raw_trades_key
from crypto_assets.defs.partitions import minute_partitions
from crypto_assets.defs.raw import RAW_TRADES_JOB, raw_resources
from crypto_assets.defs.raw.assets import build_raw_trades_asset
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.defs.raw.sensors import (
    GAP_TAG,
    backoff_s,
    build_gap_backfill_sensor,
    newest_first_ranges,
    round_robin,
)
from crypto_assets.exchange.errors import utc_text
from crypto_assets.minutes import MINUTE_MS, floor_minute, minute_key, minute_start_ms
from crypto_assets.settings import Settings
from crypto_assets.simulator import Simulator, SimulatorConfig, symbol_config
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
    import time

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
            self.settings,
            clock=clock.sensor_s,
        )
        self.instance = instance
        self.cursor: str | None = None

    def tick(self):
        result = self.sensor.evaluate_tick(
            build_sensor_context(instance=self.instance, cursor=self.cursor, definitions=self.defs)
        )
        self.cursor = result.cursor
        return result

    def state(self) -> dict:
        return json.loads(self.cursor)


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


# ---- pure helpers ------------------------------------------------------------------------------------------------
def test_ranges_are_cut_from_the_newest_end_and_served_round_robin():
    m = [x * MINUTE_MS for x in [0, 1, 2, 5, 6] + list(range(10, 80))]
    assert [(a // MINUTE_MS, b // MINUTE_MS) for a, b in newest_first_ranges(m, 60)] == [
        (20, 80),
        (10, 20),
        (5, 7),
        (0, 3),
    ]
    queues = {"A": [(3, 4), (1, 2)], "B": [(9, 10)], "C": [(7, 8), (5, 6), (0, 1)]}
    picked, turn = round_robin(["A", "B", "C"], queues, 5, 0)
    assert picked == [("A", 3, 4), ("B", 9, 10), ("C", 7, 8), ("A", 1, 2), ("C", 5, 6)] and turn == 0
    picked, turn = round_robin(["A", "B", "C"], queues, 2, 1)
    assert picked == [("B", 9, 10), ("C", 7, 8)] and turn == 0
    assert [backoff_s(n) // 60 for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 240, 240]


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
