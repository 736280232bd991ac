"""The stream path end to end without Dagster: BinanceStream -> LiveCapture -> lake, against the simulator running
twenty times faster than real time (a minute lasts 3 s), compared with the simulator's ground truth."""

import threading

import pytest

from crypto_assets.exchange.simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.exchange.stream import BinanceStream
from crypto_assets.ingest.live_capture import LiveCapture
from crypto_assets.ingest.minutes import MINUTE_MS
from crypto_assets.ingest.stored_minutes import UNPROVEN, WRITTEN
from crypto_assets.lake import LocalLake
from crypto_assets.lake.schema import trades_to_table
from crypto_assets_tests.exchange._clocks import FastClock
from crypto_assets_tests.ground_truth import truth

pytestmark = pytest.mark.integration

SPEED = 20
QUIET = "QUIETUSDT"
T0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS  # a minute start


def capture(tmp_path, minutes: int, faults=None):
    """Stream from 5 s before minute T0 until every minute up to T0 + ``minutes`` is decided; call
    ``faults(sim, clock)`` from a thread. Returns (sim, lake, {(symbol, minute): StoredMinute})."""
    clock = FastClock(T0 - 5_000, SPEED)
    config = SimulatorConfig(symbols=[symbol_config("BTCUSDT", burst_probability=0.1),
                                      symbol_config(QUIET, trades_per_second=0, burst_probability=0)],
                             history_minutes=2)
    sim = Simulator(config, clock=clock)
    sim.start()
    lake = LocalLake(tmp_path / "lake")
    live = LiveCapture(lake, ["BTCUSDT", QUIET], clock=lambda: clock() / 1000)
    decided = {}
    stream = BinanceStream(sim.ws_url, ["BTCUSDT", QUIET], clock=clock)
    if faults:
        threading.Thread(target=faults, args=(sim, clock), daemon=True).start()
    try:
        for record in stream.records():
            for symbol, outcome in live.feed(record):
                decided[(symbol, outcome.minute_start_ms)] = outcome
            if all((s, T0 + minutes * MINUTE_MS) in decided for s in ("BTCUSDT", QUIET)):
                break
    finally:
        stream.close()
        sim.stop()
    return sim, lake, decided


def assert_equals_truth(sim, lake, symbol, minute):
    stored = lake.read_minute(symbol, minute)
    assert stored is not None
    expected = trades_to_table(truth(sim, symbol, minute, minute + MINUTE_MS))
    assert stored.drop_columns("received_at").equals(expected.drop_columns("received_at"))
    assert stored.column("received_at").null_count == 0 if stored.num_rows else True


def test_every_minute_after_joining_is_written_complete_and_checked(tmp_path):
    sim, lake, decided = capture(tmp_path, minutes=3)
    # the minute the stream joined is given up (the REST backfill fetches it); it is not in the lake
    joined = decided[("BTCUSDT", T0 - MINUTE_MS)]
    assert joined.action == UNPROVEN and "joined" in joined.problems[0]
    assert lake.read_minute("BTCUSDT", T0 - MINUTE_MS) is None
    for minute in range(T0, T0 + 4 * MINUTE_MS, MINUTE_MS):
        outcome = decided[("BTCUSDT", minute)]
        assert outcome.action == WRITTEN and outcome.ok, outcome.problems
        assert outcome.summary.source == "stream"
        assert_equals_truth(sim, lake, "BTCUSDT", minute)
        quiet = decided[(QUIET, minute)]
        assert quiet.ok and lake.read_minute(QUIET, minute).num_rows == 0
        # recorded within seconds of the minute's end (exchange time), not after the grace period
        assert outcome.written_at_ms - (minute + MINUTE_MS) < 3_000 * SPEED


def test_minutes_touched_by_a_disconnect_or_malformed_frame_are_left_to_rest(tmp_path):
    def faults(sim, clock):
        while clock() < T0 + MINUTE_MS + 20_000:
            threading.Event().wait(0.05)
        sim.drop_connections()  # during minute T0+1
        while clock() < T0 + 3 * MINUTE_MS + 30_000:
            threading.Event().wait(0.05)
        sim.send_malformed("BTCUSDT", count=1)  # during minute T0+3

    sim, lake, decided = capture(tmp_path, minutes=5, faults=faults)
    by_minute = {m: decided[("BTCUSDT", m)] for m in range(T0, T0 + 6 * MINUTE_MS, MINUTE_MS)}
    given_up = {m for m, o in by_minute.items() if not o.ok}
    assert T0 + MINUTE_MS in given_up and T0 + 3 * MINUTE_MS in given_up
    assert T0 + 5 * MINUTE_MS not in given_up and T0 not in given_up
    for minute, outcome in by_minute.items():
        if minute in given_up:
            assert outcome.action == UNPROVEN and lake.read_minute("BTCUSDT", minute) is None
        else:
            assert_equals_truth(sim, lake, "BTCUSDT", minute)
