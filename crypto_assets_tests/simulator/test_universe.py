"""The simulator's universe as Binance's: generated quiet symbols (``SimulatorConfig.quiet_symbols``), exchangeInfo's
``status`` / ``baseAsset`` / ``quoteAsset`` and its filters, and a lifecycle while it runs: ``halt`` /
``resume_trading`` (klines with n = 0, ids dense across the halt), ``delist`` (BREAK, then removed) and
``list_symbol`` (ids from 0, the listing minute holds the first trade), each from the first second not generated
yet, the ground truth agreeing throughout."""

from __future__ import annotations

import re

import numpy as np
import pytest

from binance_simulator import Simulator, SimulatorConfig, SymbolConfig, symbol_config
from binance_simulator.universe import quiet_symbols
from crypto_assets_tests.simulator._support import ManualClock, api, http

pytestmark = pytest.mark.integration

MINUTE = 60_000
T0 = 1_800_000_000_000 // MINUTE * MINUTE + 25_000  # a fixed clock, 25 s into a minute: a deterministic market


def test_quiet_symbols_are_plausible_pairs_drawn_from_the_seed():
    settings = quiet_symbols(500, seed=1, taken={"BTCUSDT"})
    names = [s["symbol"] for s in settings]
    assert len(set(names)) == 500 and "BTCUSDT" not in names
    assert all(re.fullmatch(r"[A-Z0-9]{5,20}", n) for n in names)
    assert all(s["base_asset"] + s["quote_asset"] == s["symbol"] for s in settings)
    quotes = [s["quote_asset"] for s in settings]
    assert 400 <= quotes.count("USDT") < 500 and {"BTC", "FDUSD", "USDC", "ETH"} <= set(quotes)
    assert all(0.01 <= s["trades_per_second"] <= 0.5 for s in settings)
    for s in settings:
        SymbolConfig(**s).validate()  # on a grid inside its filters
    assert quiet_symbols(500, seed=1, taken={"BTCUSDT"}) == settings
    assert [s["symbol"] for s in quiet_symbols(20, seed=2)] != names[:20]


@pytest.fixture(scope="module")
def sim():
    config = SimulatorConfig(
        symbols=[symbol_config("BTCUSDT"), symbol_config("SOLUSDT"), symbol_config("ETHBTC")],
        quiet_symbols=40,
        history_minutes=30,
    )
    with Simulator(config, clock=ManualClock(T0)) as s:
        yield s


def test_exchange_info_lists_every_symbol_with_status_and_assets(sim):
    info = api(sim, "exchangeInfo").json()
    rows = {r["symbol"]: r for r in info["symbols"]}
    assert len(rows) == 43 and {"BTCUSDT", "SOLUSDT", "ETHBTC"} <= rows.keys()
    assert all(r["status"] == "TRADING" and r["baseAsset"] + r["quoteAsset"] == n for n, r in rows.items())
    assert {r["quoteAsset"] for r in rows.values()} >= {"USDT", "BTC"}
    quiet = [n for n in rows if n not in ("BTCUSDT", "SOLUSDT", "ETHBTC")]
    some = api(sim, "exchangeInfo", symbols=f'["{quiet[0]}","BTCUSDT"]').json()
    assert [r["symbol"] for r in some["symbols"]] == [quiet[0], "BTCUSDT"]
    assert api(sim, "exchangeInfo", symbols='["BTCUSDT","NOPEUSDT"]').json() == {
        "code": -1121,
        "msg": "Invalid symbol.",
    }
    assert api(sim, "exchangeInfo", symbol="NOPEUSDT").json()["code"] == -1121
    assert len(api(sim, "exchangeInfo", symbolStatus="TRADING").json()["symbols"]) == 43
    assert api(sim, "exchangeInfo", symbolStatus="HALT").json()["symbols"] == []


def test_a_quiet_symbol_trades_rarely_with_dense_ids_and_klines_that_agree(sim):
    name = [r["symbol"] for r in api(sim, "exchangeInfo").json()["symbols"]][3]  # the first generated one
    start = T0 // MINUTE * MINUTE - 30 * MINUTE
    truth = sim.trades_between(name, start, T0 // MINUTE * MINUTE)
    assert 0 < len(truth) <= 0.6 * 30 * 60 * 2  # at most 0.5 a second, bursts aside
    assert np.array_equal(truth.id, np.arange(truth.id[0], truth.id[0] + len(truth)))
    rows = api(sim, "klines", symbol=name, interval="1m", startTime=start, endTime=T0 // MINUTE * MINUTE - 1).json()
    assert len(rows) == 30 and sum(r[8] for r in rows) == len(truth)
    assert any(r[8] == 0 for r in rows), "quiet minutes"


def _clock(sim) -> ManualClock:
    return sim.clock


def test_a_halt_stops_trading_from_the_next_second_and_ids_stay_dense(sim):
    clock = _clock(sim)
    now = clock()
    api(sim, "trades", symbol="SOLUSDT", limit=1)  # the market is generated up to now
    halt = sim.halt("SOLUSDT")["from_ms"]
    assert halt == (now // 1000 + 1) * 1000
    [row] = api(sim, "exchangeInfo", symbol="SOLUSDT").json()["symbols"]
    assert row["status"] == "TRADING"  # from the next second on
    clock.advance(2_000)
    [row] = api(sim, "exchangeInfo", symbol="SOLUSDT").json()["symbols"]
    assert (row["status"], row["isSpotTradingAllowed"]) == ("HALT", False)
    assert sim.halt("SOLUSDT")["from_ms"] == halt  # halting again changes nothing
    before = sim.trades_between("SOLUSDT", 0, halt)
    clock.advance(3 * MINUTE)
    resumed = sim.resume_trading("SOLUSDT")["from_ms"]
    assert resumed == (clock() // 1000 + 1) * 1000
    assert len(sim.trades_between("SOLUSDT", halt, resumed)) == 0
    # Whole minutes of the halt: klines without trades at the last price, as Binance writes an empty kline.
    first_empty = -(-halt // MINUTE) * MINUTE
    rows = api(sim, "klines", symbol="SOLUSDT", interval="1m", startTime=first_empty, endTime=resumed - MINUTE).json()
    last_price = "%d.%08d" % divmod(int(before.price[-1]), 100_000_000)
    assert len(rows) >= 2
    for r in rows:
        assert r[8] == 0 and r[1] == r[2] == r[3] == r[4] == last_price and r[5] == r[7] == "0.00000000"
    clock.advance(MINUTE)
    after = sim.trades_between("SOLUSDT", resumed, clock())
    assert len(after) > 0 and int(after.id[0]) == int(before.id[-1]) + 1  # the ids continue
    [trade] = api(sim, "historicalTrades", symbol="SOLUSDT", fromId=int(before.id[-1]), limit=2).json()[1:]
    assert (trade["id"], trade["time"]) == (int(after.id[0]), int(after.time[0]))
    [row] = api(sim, "exchangeInfo", symbol="SOLUSDT").json()["symbols"]
    assert row["status"] == "TRADING"
    [state] = [http(sim, "/_sim/state").json()["symbol_states"]["SOLUSDT"]]
    assert state["stops"] == [{"status": "HALT", "from_ms": halt, "until_ms": resumed}]
    with pytest.raises(ValueError, match="not halted"):
        sim.resume_trading("SOLUSDT")


def test_a_delisting_is_a_break_then_the_symbol_leaves_the_exchange(sim):
    clock = _clock(sim)
    name = "ETHBTC"
    r = http(sim, "/_sim/faults/delist", method="POST", body={"symbol": name})
    assert r.status == 200 and r.json()["removed"] is False
    stop = r.json()["from_ms"]
    clock.advance(90_000)
    [row] = api(sim, "exchangeInfo", symbol=name).json()["symbols"]
    assert row["status"] == "BREAK"
    assert [row["symbol"] for row in api(sim, "exchangeInfo", symbolStatus="BREAK").json()["symbols"]] == [name]
    assert len(sim.trades_between(name, stop, clock() + 1)) == 0
    assert api(sim, "klines", symbol=name, interval="1m", limit=1).json()[0][8] == 0
    with pytest.raises(ValueError, match="delisted"):
        sim.resume_trading(name)
    assert sim.delist(name) == {"from_ms": stop, "removed": True}  # the second call removes it
    assert name not in [row["symbol"] for row in api(sim, "exchangeInfo").json()["symbols"]]
    assert api(sim, "klines", symbol=name, interval="1m").json() == {"code": -1121, "msg": "Invalid symbol."}
    assert len(sim.trades_between(name, stop - 30 * MINUTE, stop)) > 0  # the ground truth keeps it
    state = http(sim, "/_sim/state").json()
    assert name not in state["symbols"] and state["symbol_states"][name]["removed"] is True


def test_a_listing_while_running_starts_with_id_zero_in_its_first_minute(sim):
    clock = _clock(sim)
    assert api(sim, "exchangeInfo", symbol="NEWCOINUSDT").json()["code"] == -1121
    assert api(sim, "klines", symbol="NEWCOINUSDT", interval="1m").json()["code"] == -1121
    listed = sim.list_symbol("NEWCOINUSDT", trades_per_second=3.0)["from_ms"]
    assert listed == (clock() // 1000 + 1) * 1000
    [row] = api(sim, "exchangeInfo", symbol="NEWCOINUSDT").json()["symbols"]
    assert (row["status"], row["baseAsset"], row["quoteAsset"]) == ("TRADING", "NEWCOIN", "USDT")
    clock.advance(2 * MINUTE)
    [trade] = api(sim, "historicalTrades", symbol="NEWCOINUSDT", fromId=0, limit=1).json()
    assert trade["id"] == 0 and listed <= trade["time"] < listed + 1000
    [kline] = api(sim, "klines", symbol="NEWCOINUSDT", interval="1m", startTime=0, limit=1).json()
    minute = listed // MINUTE * MINUTE
    truth = sim.trades_between("NEWCOINUSDT", 0, minute + MINUTE)
    assert (kline[0], kline[1], kline[8]) == (minute, trade["price"], len(truth)) and len(truth) > 0
    [agg] = api(sim, "aggTrades", symbol="NEWCOINUSDT", fromId=0, limit=1).json()
    assert (agg["a"], agg["f"], agg["T"]) == (0, 0, trade["time"])
    assert http(sim, "/_sim/state").json()["symbol_states"]["NEWCOINUSDT"]["listed_ms"] == listed
    with pytest.raises(ValueError, match="listed already"):
        sim.list_symbol("NEWCOINUSDT")


def test_halted_at_start_up():
    config = SimulatorConfig(symbols=[symbol_config("BTCUSDT")], history_minutes=20, halted={"BTCUSDT": 5})
    with Simulator(config, clock=ManualClock(T0)) as s:
        [row] = api(s, "exchangeInfo").json()["symbols"]
        assert row["status"] == "HALT"
        assert len(s.trades_between("BTCUSDT", T0 - 5 * MINUTE + 1000, T0)) == 0
        assert len(s.trades_between("BTCUSDT", T0 - 6 * MINUTE, T0 - 5 * MINUTE)) > 0
    with pytest.raises(ValueError, match="NOPEUSDT"):
        Simulator(SimulatorConfig(symbols=[symbol_config("BTCUSDT")], halted={"NOPEUSDT": 1}))
