"""A symbol listed N minutes ago (``SimulatorConfig.listed``, ``--listed SYMBOL=MINUTES``): nothing of it exists before
its listing minute (``klines`` answers ``[]``, ``aggTrades`` / ``historicalTrades`` have nothing earlier), its trade and
aggregate ids start at 0, and Binance's two ways of finding a symbol's start answer exactly:
``klines?interval=1m&startTime=0&limit=1`` is the listing minute's kline, ``historicalTrades?fromId=0&limit=1`` its
first trade. Symbols not listed late answer the same way at the start of their history."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from binance_simulator.process import SimulatorProcess
from crypto_assets_tests.simulator._support import ManualClock, api, http

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MINUTE = 60_000
T0 = 1_800_000_000_000 // MINUTE * MINUTE + 25_000  # a fixed clock, 25 s into a minute: a deterministic market
HISTORY_MINUTES = 20
LISTED = {"NEWUSDT": 7, "FRESHBTC": 0, "DOGEBTC": 3}


@pytest.fixture(scope="module")
def sim():
    symbols = [
        symbol_config("BTCUSDT"),
        symbol_config("NEWUSDT"),
        symbol_config("FRESHBTC"),
        # quiet nearly every minute: the listing minute still holds the first trade
        symbol_config("DOGEBTC", quiet_minute_probability=0.99),
    ]
    config = SimulatorConfig(symbols=symbols, history_minutes=HISTORY_MINUTES, listed=LISTED)
    with Simulator(config, clock=ManualClock(T0)) as s:
        yield s


def listing_ms(symbol: str) -> int:
    return (T0 - LISTED[symbol] * MINUTE) // MINUTE * MINUTE


def history_start_ms() -> int:
    return (T0 - HISTORY_MINUTES * MINUTE) // MINUTE * MINUTE


@pytest.mark.parametrize("symbol", sorted(LISTED))
def test_nothing_exists_before_the_listing(sim, symbol):
    listed = listing_ms(symbol)
    assert (
        api(sim, "klines", symbol=symbol, interval="1m", startTime=listed - 30 * MINUTE, endTime=listed - 1).json()
        == []
    )
    assert api(sim, "klines", symbol=symbol, interval="1m", endTime=listed - 1).json() == []
    assert api(sim, "aggTrades", symbol=symbol, startTime=listed - 30 * MINUTE, endTime=listed - 1).json() == []
    assert len(sim.trades_between(symbol, 0, listed)) == 0
    # The latest klines start at the listing minute: one per minute since, the open one included.
    rows = api(sim, "klines", symbol=symbol, interval="1m", limit=1000).json()
    assert [r[0] for r in rows] == list(range(listed, T0 // MINUTE * MINUTE + 1, MINUTE))


@pytest.mark.parametrize("symbol", sorted(LISTED))
def test_start_time_zero_and_from_id_zero_find_the_listing(sim, symbol):
    listed = listing_ms(symbol)
    first_minute = sim.trades_between(symbol, listed, min(listed + MINUTE, T0 + 1))  # FRESHBTC: up to now
    assert len(first_minute) > 0, "the listing minute holds the first trade"
    assert int(first_minute.id[0]) == 0

    [kline] = api(sim, "klines", symbol=symbol, interval="1m", startTime=0, limit=1).json()
    assert (kline[0], kline[6], kline[8]) == (listed, listed + MINUTE - 1, len(first_minute))
    [trade] = api(sim, "historicalTrades", symbol=symbol, fromId=0, limit=1).json()
    assert (trade["id"], trade["time"]) == (0, int(first_minute.time[0]))
    assert kline[1] == trade["price"]  # the first kline opens at the first trade
    [agg] = api(sim, "aggTrades", symbol=symbol, fromId=0, limit=1).json()
    assert (agg["a"], agg["f"], agg["T"]) == (0, 0, trade["time"])
    [agg_by_time] = api(sim, "aggTrades", symbol=symbol, startTime=0, limit=1).json()
    assert agg_by_time == agg


def test_a_nearly_always_quiet_symbol_still_starts_with_a_kline_of_trades(sim):
    rows = api(sim, "klines", symbol="DOGEBTC", interval="1m", limit=1000).json()
    assert rows[0][8] > 0 and all(r[8] == 0 for r in rows[1:])
    assert all(r[1] == r[2] == r[3] == r[4] == rows[0][4] for r in rows[1:])  # empty minutes hold the last price


def test_a_symbol_not_listed_late_starts_at_the_start_of_its_history(sim):
    start = history_start_ms()
    first_id = symbol_config("BTCUSDT").first_trade_id  # not 0: the history starts in the middle of its life
    [kline] = api(sim, "klines", symbol="BTCUSDT", interval="1m", startTime=0, limit=1).json()
    [trade] = api(sim, "historicalTrades", symbol="BTCUSDT", fromId=0, limit=1).json()
    assert kline[0] == start and kline[8] > 0
    assert trade["id"] == first_id and start <= trade["time"] < start + MINUTE and kline[1] == trade["price"]
    assert api(sim, "klines", symbol="BTCUSDT", interval="1m", endTime=start - 1).json() == []


def test_the_state_names_the_listings(sim):
    assert http(sim, "/_sim/state").json()["listings"] == {s: listing_ms(s) for s in LISTED}


def test_a_listing_must_name_a_symbol_of_the_market():
    with pytest.raises(ValueError, match="SOLUSDT"):
        Simulator(SimulatorConfig(symbols=[symbol_config("BTCUSDT")], listed={"SOLUSDT": 3}))
    with pytest.raises(ValueError, match="minutes must be an integer >= 0"):
        Simulator(SimulatorConfig(symbols=[symbol_config("BTCUSDT")], listed={"BTCUSDT": -3}))


def test_the_listed_flag_of_the_command_line():
    with SimulatorProcess("--symbols", "BTCUSDT,SOLUSDT", "--listed", "solusdt=5", "--history-minutes", "30") as p:
        [sol] = api(p, "klines", symbol="SOLUSDT", interval="1m", startTime=0, limit=1).json()
        [btc] = api(p, "klines", symbol="BTCUSDT", interval="1m", startTime=0, limit=1).json()
        [trade] = api(p, "historicalTrades", symbol="SOLUSDT", fromId=0, limit=1).json()
    assert 24 * MINUTE <= sol[0] - btc[0] <= 26 * MINUTE  # listed 5 minutes ago, the other has 30 minutes
    assert trade["id"] == 0 and sol[0] <= trade["time"] < sol[0] + MINUTE


@pytest.mark.parametrize(
    "value, message",
    [
        ("SOLUSDT", "--listed expects SYMBOL=MINUTES with MINUTES a whole number >= 0, got 'SOLUSDT'"),
        ("SOLUSDT=soon", "--listed expects SYMBOL=MINUTES with MINUTES a whole number >= 0, got 'SOLUSDT=soon'"),
        ("SOLUSDT=-5", "--listed expects SYMBOL=MINUTES with MINUTES a whole number >= 0, got 'SOLUSDT=-5'"),
        ("DOGEUSDT=5", "--listed names DOGEUSDT, which is not in --symbols (BTCUSDT,SOLUSDT)"),
    ],
)
def test_bad_listed_argument_exits_with_a_one_line_message(value, message):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "binance_simulator",
            "--port",
            "0",
            "--symbols",
            "BTCUSDT,SOLUSDT",
            "--listed",
            value,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr == message + "\n"


@pytest.mark.parametrize(
    "overrides", [{"quiet_minute_probability": 1.0}, {"trades_per_second": 0.0, "burst_probability": 0.0}]
)
def test_a_symbol_that_never_trades_has_no_first_trade(overrides):
    config = SimulatorConfig(symbols=[symbol_config("BTCUSDT", **overrides)], history_minutes=5)
    with Simulator(config, clock=ManualClock(T0)) as s:
        assert api(s, "historicalTrades", symbol="BTCUSDT", fromId=0, limit=1).json() == []
        assert len(s.trades_between("BTCUSDT", 0, T0 + 1)) == 0
