"""fetch_minutes against the real simulator: the trades equal the ground truth exactly, every ended minute is
proven complete (bursts, quiet minutes, 503s), unfinished minutes are not, and weight is spent per 1000 trades."""

from __future__ import annotations

from collections import Counter

import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.exchange import endpoints
from crypto_assets.exchange.weight_budget import WeightBudget
from crypto_assets.ingest.rest_backfill import MinuteBatch, fetch_minutes, split_and_prove
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets_tests.ground_truth import past_minute, truth
from crypto_assets_tests.rest_calls import CountingClient

pytestmark = pytest.mark.integration

BURSTY = "BTCUSDT"  # a burst (hundreds of trades in one millisecond) every second
QUIET = "ETHUSDT"  # every minute quiet: never a trade
PLAIN = "SOLUSDT"


@pytest.fixture(scope="module")
def sim():
    config = SimulatorConfig(
        symbols=[
            symbol_config(BURSTY, burst_probability=1.0),
            symbol_config(QUIET, quiet_minute_probability=1.0),
            symbol_config(PLAIN, quiet_minute_probability=0.3),
        ],
        history_minutes=10,
    )
    with Simulator(config) as s:
        yield s


@pytest.fixture
def client(sim):
    with CountingClient(sim.rest_url, budget=WeightBudget(), backoff_base_s=0.01, backoff_max_s=0.05) as c:
        yield c


def assert_ground_truth(sim, symbol: str, batches: list[MinuteBatch], start: int, end: int) -> None:
    assert [b.minute_start_ms for b in batches] == list(range(start, end, MINUTE_MS))
    for b in batches:
        expected = truth(sim, symbol, b.minute_start_ms, b.minute_start_ms + MINUTE_MS)
        assert b.trades == expected, b.key
        assert b.proof.complete, b.proof.reasons
        assert b.proof.count == len(expected)


def test_bursty_minutes_equal_the_ground_truth(sim, client):
    start, end = past_minute(sim, 4), past_minute(sim, 1)
    batches = fetch_minutes(client, BURSTY, start, end)
    assert_ground_truth(sim, BURSTY, batches, start, end)
    all_trades = [t for b in batches for t in b.trades]
    assert max(Counter(t.trade_time for t in all_trades).values()) >= 100  # bursts: many trades in one ms
    # one paging pass: one historicalTrades page per 1000 trades (+1 for the page reaching past the end)
    assert client.calls[endpoints.HISTORICAL_TRADES] <= len(all_trades) // 1000 + 2
    assert client.calls[endpoints.AGG_TRADES] == 1 and client.calls[endpoints.KLINES] == 1
    for b in batches:  # consecutive minutes chain up
        assert b.proof.first_trade_id == b.trades[0].trade_id and b.proof.last_trade_id == b.trades[-1].trade_id
    assert all(a.proof.last_trade_id + 1 == b.proof.first_trade_id for a, b in zip(batches, batches[1:]))


def test_quiet_minutes_are_complete_with_no_trades(sim, client):
    start, end = past_minute(sim, 6), past_minute(sim, 1)
    batches = fetch_minutes(client, QUIET, start, end)
    assert len(batches) == 5
    assert all(b.trades == [] and b.proof.complete and b.proof.count == 0 and b.proof.volume == "0" for b in batches), [
        b.proof.reasons for b in batches
    ]
    assert endpoints.HISTORICAL_TRADES not in client.calls


def test_a_symbol_with_some_quiet_minutes(sim, client):
    start, end = past_minute(sim, 9), past_minute(sim, 1)
    batches = fetch_minutes(client, PLAIN, start, end)
    assert_ground_truth(sim, PLAIN, batches, start, end)
    assert client.calls[endpoints.HISTORICAL_TRADES] <= sum(len(b.trades) for b in batches) // 1000 + 2


def test_a_burst_of_503s_is_retried(sim, client):
    start, end = past_minute(sim, 3), past_minute(sim, 1)
    sim.fail_rest(count=3, status=503)
    try:
        batches = fetch_minutes(client, BURSTY, start, end)
        assert sim.state()["faults"]["rest_errors_left"] == 0  # the three 503s were answered, and retried
    finally:
        sim.clear_faults()
    assert_ground_truth(sim, BURSTY, batches, start, end)


def test_a_range_into_the_current_minute_leaves_it_unproven(sim, client):
    for _ in range(3):  # when the exchange's minute rolls over while fetching, fetch again
        now_minute = past_minute(sim, 0)
        start, end = now_minute - 2 * MINUTE_MS, now_minute + 2 * MINUTE_MS
        fetched = {symbol: fetch_minutes(client, symbol, start, end) for symbol in (BURSTY, QUIET, PLAIN)}
        if past_minute(sim, 0) == now_minute:
            break
    for symbol, batches in fetched.items():
        assert [b.minute_start_ms for b in batches] == list(range(start, end, MINUTE_MS))
        by_start = {b.minute_start_ms: b for b in batches}
        for m in (now_minute, now_minute + MINUTE_MS):  # not ended (or not even started): never proven
            assert not by_start[m].proof.complete, (symbol, minute_key(m))
            assert by_start[m].proof.reasons
        for m in (start, start + MINUTE_MS):  # ended, and a trade after them exists (or their kline says n=0)
            assert by_start[m].proof.complete, by_start[m].proof.reasons
            assert by_start[m].trades == truth(sim, symbol, m, m + MINUTE_MS)


def test_a_range_wholly_in_the_future(sim, client):
    start = past_minute(sim, -2)
    batches = fetch_minutes(client, PLAIN, start, start + 2 * MINUTE_MS)
    assert len(batches) == 2 and not any(b.proof.complete or b.trades for b in batches)


def test_a_range_must_be_whole_minutes(client):
    with pytest.raises(ValueError, match="whole minutes"):
        fetch_minutes(client, PLAIN, 1, MINUTE_MS)


def test_a_missing_trade_is_caught(sim, client):
    """A trade lost between pages (simulated by dropping it from what was paged) fails that minute's proof only."""
    # two ended minutes holding trades (PLAIN has quiet minutes: 30 % each, so both can be empty)
    start = next(m for m in (past_minute(sim, n) for n in range(4, 10)) if truth(sim, PLAIN, m, m + 2 * MINUTE_MS))
    end = start + 2 * MINUTE_MS
    trades = truth(sim, PLAIN, start, end)
    after = truth(sim, PLAIN, end, end + 10 * MINUTE_MS)[:1]
    klines = {k.open_time: k for k in client.klines(PLAIN, "1m", start, end - 1)}
    lost = trades.pop(len(trades) // 2)
    batches = split_and_prove(
        start,
        end,
        trades,
        first_id=trades[0].trade_id if trades else None,
        next_trade_id=after[0].trade_id if after else None,
        klines=klines,
    )
    lost_minute = lost.trade_time - lost.trade_time % MINUTE_MS
    for b in batches:
        assert b.proof.complete == (b.minute_start_ms != lost_minute), b.proof.reasons
