"""BinanceRestClient.first_trade_id over windows of several hours against the simulator (which refuses an aggTrades
window of an hour or more, as Binance does): it walks windows shorter than an hour, one aggTrades request each, until
one holds a trade, and finds the first trade wherever it falls (the first or the last millisecond of a window).

NEWUSDT is listed 5 hours after the start of the simulator's history: its first hours hold no trade."""

from __future__ import annotations

import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.exchange import endpoints
from crypto_assets.exchange.weight_budget import WeightBudget
from crypto_assets_tests.rest_calls import CountingClient
from crypto_assets_tests.simulator._support import ManualClock

pytestmark = pytest.mark.integration

HOUR, MINUTE = 3_600_000, 60_000
ORIGIN = 1_735_689_600_000  # 2025-01-01 00:00 UTC
LISTED_AT = ORIGIN + 5 * HOUR
NOW = ORIGIN + 8 * HOUR
NEW, OLD = "NEWUSDT", "SOLUSDT"
WINDOW = endpoints.AGG_TRADES_MAX_WINDOW_MS - 1  # what one request covers


@pytest.fixture(scope="module")
def sim():
    slow = dict(trades_per_second=0.2, burst_probability=0.0)
    config = SimulatorConfig(
        symbols=[symbol_config(NEW, **slow), symbol_config(OLD, **slow)],
        origin_ms=ORIGIN,
        listed={NEW: (NOW - LISTED_AT) // MINUTE},
    )
    with Simulator(config, clock=ManualClock(NOW)) as s:
        yield s


@pytest.fixture
def client(sim):
    with CountingClient(sim.rest_url, budget=WeightBudget()) as c:
        yield c


@pytest.fixture(scope="module")
def listing(sim) -> tuple[int, int]:
    """(id, time) of NEWUSDT's first trade."""
    t = sim.trades_between(NEW, ORIGIN, NOW)
    assert LISTED_AT <= int(t.time[0]) < LISTED_AT + MINUTE, "a trade within the listing's first minute"
    return int(t.id[0]), int(t.time[0])


def test_quiet_hours_before_the_first_trade(client, listing):
    first_id, first_time = listing
    assert first_id == 0
    assert client.first_trade_id(NEW, ORIGIN, NOW) == first_id
    # 5 hours without a trade: 6 windows of just under an hour, the sixth holding the listing
    assert client.calls[endpoints.AGG_TRADES] == (first_time - ORIGIN) // WINDOW + 1


def test_a_window_of_quiet_hours_alone(client, listing):
    assert client.first_trade_id(NEW, ORIGIN, listing[1]) is None  # the end is exclusive
    assert client.calls[endpoints.AGG_TRADES] == -(-(listing[1] - ORIGIN) // WINDOW)


@pytest.mark.parametrize("offset", [0, WINDOW - 1], ids=["first ms of a window", "last ms of a window"])
def test_the_first_trade_on_a_window_edge(client, listing, offset):
    first_id, first_time = listing
    start = first_time - 3 * WINDOW - offset  # the first trade falls in the fourth window, at its edge
    assert client.first_trade_id(NEW, start, first_time + 5 * HOUR) == first_id
    assert client.calls[endpoints.AGG_TRADES] == 4


def test_a_busy_symbol_needs_one_request(sim, client):
    start = ORIGIN + HOUR + 12_345
    expected = int(sim.trades_between(OLD, start, start + HOUR).id[0])
    assert client.first_trade_id(OLD, start, start + 6 * HOUR) == expected
    assert client.calls[endpoints.AGG_TRADES] == 1
