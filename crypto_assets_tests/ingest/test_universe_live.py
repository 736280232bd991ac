"""The universe while the exchange changes under it, against the simulator on a fast clock: a halt is recorded as
empty minutes the stream proves (no gap, no failed check), and the universe follows a listing and a delisting."""

import threading

import pytest

from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.exchange.weight_budget import WeightBudget
from crypto_assets.ingest.universe import Selection, refresh_universe
from crypto_assets.lake import LocalLake
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets_tests.ground_truth import truth
from crypto_assets_tests.ingest.test_live_capture import SPEED, T0, assert_equals_truth, capture, fast_simulator

pytestmark = pytest.mark.integration


def test_a_halted_symbol_is_recorded_empty_and_proven_and_not_chased(tmp_path):
    """BTCUSDT halts during minute T0+1 and resumes during T0+3: every minute is decided by the stream and proven,
    the halted ones empty (the exchange's n = 0 klines), the others equal to the exchange's trades, ids dense."""
    halt = {}

    def faults(sim, clock):
        while clock() < T0 + MINUTE_MS + 20_000:
            threading.Event().wait(0.05)
        halt["from_ms"] = sim.halt("BTCUSDT")["from_ms"]
        while clock() < T0 + 3 * MINUTE_MS + 20_000:
            threading.Event().wait(0.05)
        halt["until_ms"] = sim.resume_trading("BTCUSDT")["from_ms"]

    sim, lake, decided, _ = capture(tmp_path, minutes=4, faults=faults)
    assert T0 + MINUTE_MS < halt["from_ms"] < T0 + 2 * MINUTE_MS < T0 + 3 * MINUTE_MS < halt["until_ms"]
    for minute in range(T0, T0 + 5 * MINUTE_MS, MINUTE_MS):
        result = decided[("BTCUSDT", minute)]
        assert result.ok, (minute_key(minute), result.problems)
        assert_equals_truth(sim, lake, "BTCUSDT", minute)
    assert lake.read_minute("BTCUSDT", T0 + 2 * MINUTE_MS).num_rows == 0  # the whole minute halted


def test_the_universe_follows_a_listing_and_a_delisting(tmp_path):
    sim, clock = fast_simulator()
    try:
        lake = LocalLake(tmp_path / "lake")
        usdt = Selection(quote_asset="USDT")
        client = BinanceRestClient(sim.rest_url, budget=WeightBudget(clock=clock, speed=SPEED))
        before = refresh_universe(usdt, lake, client)
        assert before.streamed() == ["BTCUSDT", "QUIETUSDT"]

        listed_ms = sim.list_symbol("NEWUSDT")["from_ms"]
        sim.halt("QUIETUSDT")
        while clock() < listed_ms + MINUTE_MS + 10_000:
            threading.Event().wait(0.05)
        during = refresh_universe(usdt, lake, client)
        assert during.streamed() == ["BTCUSDT", "QUIETUSDT", "NEWUSDT"] and during.chased() == ["BTCUSDT", "NEWUSDT"]
        # its history starts at its first trade, id 0, in its listing minute
        first = client.first_trade("NEWUSDT")
        assert first.trade_id == 0 and first.trade_time // MINUTE_MS * MINUTE_MS == listed_ms // MINUTE_MS * MINUTE_MS
        assert truth(sim, "NEWUSDT", listed_ms - MINUTE_MS, listed_ms // MINUTE_MS * MINUTE_MS) == []

        delisted_ms = sim.delist("BTCUSDT")["from_ms"]
        while clock() < delisted_ms + 1_000:
            threading.Event().wait(0.05)
        after = refresh_universe(usdt, lake, client)
        assert after.streamed() == ["QUIETUSDT", "NEWUSDT"] and "BTCUSDT" in after.defined()
        assert after.members["BTCUSDT"].status == "BREAK" and after.members["BTCUSDT"].left_ms is not None
        client.close()
    finally:
        sim.stop()
