"""aggTrades with both startTime and endTime: like Binance, the simulator refuses a window of an hour or more
(400, -1127 "More than 1 hours between startTime and endTime.") and serves one just under an hour; a window given by
startTime alone, by endTime alone or by fromId has no such limit."""

from __future__ import annotations

import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets_tests.simulator._support import ManualClock, api

pytestmark = pytest.mark.integration

HOUR = 3_600_000
ORIGIN = 1_735_689_600_000  # 2025-01-01 00:00 UTC
NOW = ORIGIN + 5 * HOUR
SYMBOL = "SOLUSDT"
REFUSED = {"code": -1127, "msg": "More than 1 hours between startTime and endTime."}


@pytest.fixture(scope="module")
def sim():
    config = SimulatorConfig(
        symbols=[symbol_config(SYMBOL, trades_per_second=0.1, burst_probability=0.0)], origin_ms=ORIGIN
    )
    with Simulator(config, clock=ManualClock(NOW)) as s:
        yield s


def agg_trades(sim, **params):
    return api(sim, "aggTrades", symbol=SYMBOL, limit=1000, **params)


def covered_ids(aggs: list[dict]) -> list[int]:
    return [i for a in aggs for i in range(a["f"], a["l"] + 1)]


@pytest.mark.parametrize("span", [HOUR, HOUR + 1, 3 * HOUR])
def test_a_window_of_an_hour_or_more_is_refused(sim, span):
    start = ORIGIN + HOUR
    answer = agg_trades(sim, startTime=start, endTime=start + span)
    assert (answer.status, answer.json()) == (400, REFUSED)


def test_a_window_just_under_an_hour_is_served(sim):
    start = ORIGIN + HOUR
    end = start + HOUR - 1  # both bounds inclusive: the window's last millisecond
    answer = agg_trades(sim, startTime=start, endTime=end)
    assert answer.status == 200, answer.body
    aggs = answer.json()
    assert 0 < len(aggs) < 1000 and all(start <= a["T"] <= end for a in aggs)
    truth = sim.trades_between(SYMBOL, start, end + 1)
    assert covered_ids(aggs) == truth.id.tolist()  # every trade of the window, and only those


def test_the_limit_applies_only_when_both_ends_are_given(sim):
    start = ORIGIN + HOUR
    from_start = agg_trades(sim, startTime=start)  # up to now: hours of trades, the first 1000 aggregates
    assert from_start.status == 200 and from_start.json()[0]["T"] >= start
    to_end = agg_trades(sim, endTime=start + 3 * HOUR)  # the latest aggregates up to it
    assert to_end.status == 200 and to_end.json()[-1]["T"] <= start + 3 * HOUR
    first = from_start.json()[0]["a"]
    assert agg_trades(sim, fromId=first).json() == from_start.json()
