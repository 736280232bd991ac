"""Binance's trading rules in the simulator: exchangeInfo filters as Binance writes them, every trade on its symbol's
grid and inside its filters, the extremes (max_qty, min_qty, 8-decimal prices) actually traded, quote amounts that
are the exact products truncated to 8 decimals (beyond int64 for PEPEUSDT), and the bad-value fault on the stream
and over REST. Expected values are computed here with Decimal from the ground truth, never by the simulator's code."""

from __future__ import annotations

import numpy as np
import pytest

from binance_simulator import DEFAULT_SYMBOLS, Simulator, SimulatorConfig, StreamSettings, symbol_config
from binance_simulator.market import Market, units_to_decimal
from crypto_assets.exchange.models import parse_rest_trades, parse_stream_frame
from crypto_assets_tests.simulator._support import (
    api,
    collect,
    connect,
    http,
    messages,
    now_ms,
    truncated_product,
    truncated_sum,
)

ORIGIN = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC
MINUTE = 60_000
INT64_MAX = 2**63 - 1

# exchangeInfo filters as Binance writes them (values as on Binance spot, approximately; WBTCBTC's grid is finer).
BINANCE_FILTERS = {
    "BTCUSDT": ("0.01000000", "1000000.00000000", "0.01000000", "0.00001000", "9000.00000000", "0.00001000"),
    "ETHUSDT": ("0.01000000", "1000000.00000000", "0.01000000", "0.00010000", "9000.00000000", "0.00010000"),
    "SOLUSDT": ("0.01000000", "10000.00000000", "0.01000000", "0.00100000", "9000000.00000000", "0.00100000"),
    "ETHBTC": ("0.00001000", "922327.00000000", "0.00001000", "0.00010000", "100000.00000000", "0.00010000"),
    "PEPEUSDT": ("0.00000001", "1.00000000", "0.00000001", "1.00000000", "92233720368.00000000", "1.00000000"),
    "DOGEBTC": ("0.00000001", "1.00000000", "0.00000001", "1.00000000", "90000000.00000000", "1.00000000"),
    "WBTCBTC": ("0.00000001", "1000.00000000", "0.00000001", "0.00000001", "9000.00000000", "0.00000001"),
    "XRPUSDT": ("0.01000000", "1000000.00000000", "0.01000000", "0.00100000", "9000000.00000000", "0.00100000"),
}
ASSETS = {
    "BTCUSDT": ("BTC", "USDT"),
    "ETHUSDT": ("ETH", "USDT"),
    "SOLUSDT": ("SOL", "USDT"),
    "ETHBTC": ("ETH", "BTC"),
    "PEPEUSDT": ("PEPE", "USDT"),
    "DOGEBTC": ("DOGE", "BTC"),
    "WBTCBTC": ("WBTC", "BTC"),
    "XRPUSDT": ("XRP", "USDT"),
}
TINY_TICK = ("PEPEUSDT", "DOGEBTC", "WBTCBTC")


def test_every_shipped_symbol_is_checked_here():
    assert set(DEFAULT_SYMBOLS) | {"XRPUSDT"} == set(BINANCE_FILTERS)


@pytest.fixture(scope="module")
def markets() -> Market:
    return Market([symbol_config(s) for s in BINANCE_FILTERS], 1, ORIGIN)


NOW = ORIGIN + 15 * MINUTE + 30_000  # the REST simulator's clock stands still: every answer is deterministic


@pytest.fixture(scope="module")
def sim():
    config = SimulatorConfig(
        symbols=[symbol_config(s) for s in BINANCE_FILTERS], origin_ms=ORIGIN, weight_per_minute=100_000
    )
    with Simulator(config, clock=lambda: NOW) as s:
        yield s


# ---- exchangeInfo ------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_exchange_info_carries_the_filters_as_binance_writes_them(sim):
    info = api(sim, "exchangeInfo").json()
    assert [s["symbol"] for s in info["symbols"]] == list(BINANCE_FILTERS)
    for s in info["symbols"]:
        min_price, max_price, tick, min_qty, max_qty, step = BINANCE_FILTERS[s["symbol"]]
        assert s["filters"] == [
            {"filterType": "PRICE_FILTER", "minPrice": min_price, "maxPrice": max_price, "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": min_qty, "maxQty": max_qty, "stepSize": step},
        ], s["symbol"]
        assert [list(f) for f in s["filters"]] == [
            ["filterType", "minPrice", "maxPrice", "tickSize"],
            ["filterType", "minQty", "maxQty", "stepSize"],
        ]
        assert (s["baseAsset"], s["quoteAsset"]) == ASSETS[s["symbol"]]
        assert s["status"] == "TRADING" and s["permissionSets"] == [["SPOT"]]  # the other fields are still there


# ---- the grid and the extremes -----------------------------------------------------------------------------------
def units(text: str) -> int:
    whole, frac = text.split(".")
    return int(whole) * 100_000_000 + int(frac)


@pytest.mark.parametrize("symbol", list(BINANCE_FILTERS))
def test_every_trade_is_on_the_grid_inside_the_filters_and_the_extremes_trade(markets, symbol):
    min_price, max_price, tick, min_qty, max_qty, step = map(units, BINANCE_FILTERS[symbol])
    m = markets[symbol]
    t = m.trades_between(ORIGIN, ORIGIN + 30 * MINUTE)
    assert len(t) > 500
    assert np.all(t.price % tick == 0) and np.all(t.qty % step == 0)
    assert min_price <= int(t.price.min()) and int(t.price.max()) <= max_price
    assert min_qty <= int(t.qty.min()) and int(t.qty.max()) <= max_qty
    # The extremes of LOT_SIZE are really traded (each about once every 100 s with trades).
    assert int(np.sum(t.qty == max_qty)) >= 2 and int(np.sum(t.qty == min_qty)) >= 2
    # An aggregate (one taker order) stays within max_qty, as on Binance.
    aggs = m.aggs_between(ORIGIN, ORIGIN + 30 * MINUTE, 10**9)
    assert int(aggs.qty.max()) <= max_qty and sum(aggs.qty.tolist()) == sum(t.qty.tolist())
    if symbol in TINY_TICK:  # prices that use all 8 decimals
        assert np.mean(t.price % 10 != 0) > 0.5


def test_pepe_trades_its_max_qty_within_ten_minutes_and_its_amounts_exceed_int64(markets):
    m = markets["PEPEUSDT"]
    t = m.trades_between(ORIGIN, ORIGIN + 10 * MINUTE)
    at_max = np.flatnonzero(t.qty == units("92233720368.00000000"))
    assert len(at_max) >= 1
    big = int(at_max[0])
    assert units_to_decimal(int(t.qty[big])) == "92233720368.00000000"
    assert int(t.price[big]) * int(t.qty[big]) > INT64_MAX  # price units x qty units: beyond int64
    # The minute of that trade: its base volume alone exceeds int64, and every amount is exact.
    open_ms = int(t.time[big]) // MINUTE * MINUTE
    minute = m.trades_between(open_ms, open_ms + MINUTE)
    k = m.kline(open_ms, MINUTE)
    prices = [units_to_decimal(p) for p in minute.price.tolist()]
    qtys = [units_to_decimal(q) for q in minute.qty.tolist()]
    assert k.volume == sum(minute.qty.tolist()) > INT64_MAX
    assert units_to_decimal(k.quote_volume) == truncated_sum(zip(prices, qtys))
    buys = [(p, q) for p, q, m_ in zip(prices, qtys, minute.is_buyer_maker.tolist()) if not m_]
    assert units_to_decimal(k.taker_buy_quote_volume) == truncated_sum(buys)
    i = minute.id.tolist().index(int(t.id[big]))
    assert units_to_decimal(minute.quote_qty()[i]) == truncated_product(prices[i], "92233720368.00000000")


# ---- quote amounts over REST -------------------------------------------------------------------------------------
def rest_trades_of_minute(sim, symbol: str, open_ms: int) -> list[dict]:
    truth = sim.trades_between(symbol, open_ms, open_ms + MINUTE)
    rows, next_id = [], int(truth.id[0])
    while next_id <= int(truth.id[-1]):
        page = api(sim, "historicalTrades", symbol=symbol, fromId=next_id, limit=1000)
        assert page.status == 200, page.body
        rows += page.json()
        next_id = rows[-1]["id"] + 1
    return [r for r in rows if r["id"] <= int(truth.id[-1])]


@pytest.mark.integration
@pytest.mark.parametrize("symbol", list(BINANCE_FILTERS))
def test_rest_quote_qty_and_kline_quote_volumes_are_the_exact_products_truncated(sim, symbol):
    """Over the last closed minutes, one of them holding a max_qty trade where there is one: every REST amount
    equals the exact Decimal product of the ground truth's price and qty, truncated to 8 decimals."""
    last_closed = NOW // MINUTE * MINUTE - MINUTE
    opens = [last_closed - i * MINUTE for i in range(12)]
    max_qty = units(BINANCE_FILTERS[symbol][4])
    with_max = [o for o in opens if np.any(sim.trades_between(symbol, o, o + MINUTE).qty == max_qty)]
    chosen = sorted(set(with_max[:1] + opens[:2]))
    if symbol == "PEPEUSDT":
        assert with_max, "no PEPEUSDT max_qty trade in the last 12 minutes"
    klines = {
        row[0]: row for row in api(sim, "klines", symbol=symbol, interval="1m", startTime=opens[-1], limit=12).json()
    }
    for open_ms in chosen:
        truth = sim.trades_between(symbol, open_ms, open_ms + MINUTE)
        if not len(truth):
            continue  # a quiet minute
        rows = rest_trades_of_minute(sim, symbol, open_ms)
        assert [r["id"] for r in rows] == truth.id.tolist()
        pairs = [(units_to_decimal(p), units_to_decimal(q)) for p, q in zip(truth.price.tolist(), truth.qty.tolist())]
        assert [(r["price"], r["qty"]) for r in rows] == pairs
        assert [r["quoteQty"] for r in rows] == [truncated_product(p, q) for p, q in pairs]
        row = klines[open_ms]
        assert row[5] == units_to_decimal(sum(truth.qty.tolist()))  # base volume: exact, no truncation needed
        assert row[7] == truncated_sum(pairs)
        assert row[8] == len(truth)
        assert row[10] == truncated_sum(pq for pq, m in zip(pairs, truth.is_buyer_maker.tolist()) if not m)


# ---- the bad-value fault -----------------------------------------------------------------------------------------
@pytest.fixture(params=["in_process", "http"])
def via(request):
    symbols = [symbol_config("BTCUSDT"), symbol_config("PEPEUSDT", quiet_minute_probability=0.0)]
    config = SimulatorConfig(symbols=symbols, history_minutes=3, stream=StreamSettings(ping_interval_s=1.0))
    with Simulator(config) as s:

        def inject(**args):
            if request.param == "http":
                r = http(s, "/_sim/faults/bad_value", method="POST", body=args)
                assert r.status == 200, r.body
                return r.json()
            return s.bad_value(**args)

        yield s, inject


@pytest.mark.integration
@pytest.mark.parametrize("symbol, field, select", [("BTCUSDT", "price", "time"), ("PEPEUSDT", "qty", "id")])
def test_a_bad_value_reaches_the_stream_and_rest_and_nothing_else(via, symbol, field, select):
    sim, inject = via
    m = sim.market[symbol]
    at = now_ms() + 1500  # a trade still to come, so that the stream carries it
    target = m.first_trade_id_from(at)
    ws = connect(sim, f"/ws/{symbol.lower()}@trade")
    try:
        injected = inject(
            symbol=symbol, field=field, **({"at_or_after_ms": at} if select == "time" else {"trade_id": target})
        )
        frames = collect(ws, 15, until=lambda f: any(b'"t":%d,' % target in d for _, d in f))
    finally:
        ws.close()
    events = messages(frames)
    true = m.trade_with_id(target)
    true_text = units_to_decimal(int((true.price if field == "price" else true.qty)[0]))
    assert injected == {"trade_id": target, "time_ms": int(true.time[0]), "field": field, "value": true_text + "7"}
    assert injected["time_ms"] >= at
    bad = injected["value"]
    assert len(bad.split(".")[1]) == 9  # no exchange sends it, no 8-decimal column holds it

    key = {"price": "p", "qty": "q"}[field]
    by_id = {e["t"]: e for e in events}
    assert by_id[target][key] == bad
    others = [e for e in events if e["t"] != target]
    assert others and all(len(e[key].split(".")[1]) == 8 for e in others)
    # The project's stream parser accepts the frame as sent: the bad text reaches the lake layer.
    frame = next(d for _, d in frames if b'"t":%d,' % target in d)
    assert getattr(parse_stream_frame(frame, received_at=now_ms()), field) == bad

    # REST: historicalTrades (and trades) carry it too; its neighbours do not.
    body = api(sim, "historicalTrades", symbol=symbol, fromId=target - 1, limit=3).body
    rows = parse_rest_trades(symbol, body)  # the REST parser accepts it as well
    assert [r.trade_id for r in rows[:2]] == [target - 1, target]  # (target + 1 may not have happened yet)
    assert getattr(rows[1], field) == bad
    assert all(len(getattr(r, field).split(".")[1]) == 8 for r in rows if r.trade_id != target)
    # The kline, the aggregates and the ground truth keep the true value.
    open_ms = int(true.time[0]) // MINUTE * MINUTE
    truth = sim.trades_between(symbol, open_ms, open_ms + MINUTE)
    assert units_to_decimal(int(((truth.price if field == "price" else truth.qty)[truth.id == target])[0])) == true_text
    row = api(sim, "klines", symbol=symbol, interval="1m", startTime=open_ms, limit=1).json()[0]
    counted = truth.slice(0, row[8])  # the minute may still be open: the kline counts the trades so far
    assert target in counted.id.tolist()
    assert row[5] == units_to_decimal(sum(counted.qty.tolist()))
    assert (row[2], row[3]) == (units_to_decimal(int(counted.price.max())), units_to_decimal(int(counted.price.min())))
    assert (
        bad.encode()
        not in api(sim, "aggTrades", symbol=symbol, startTime=int(true.time[0]), endTime=int(true.time[0])).body
    )
    # Cleared, REST tells the truth again.
    sim.clear_faults()
    row = api(sim, "historicalTrades", symbol=symbol, fromId=target, limit=1).json()[0]
    assert row[field] == true_text


@pytest.mark.integration
def test_the_bad_value_control_path_refuses_what_the_client_would_not_parse(sim):
    def post(**body):
        return http(sim, "/_sim/faults/bad_value", method="POST", body=body)

    assert post(symbol="BTCUSDT", trade_id=1, at_or_after_ms=1).status == 400  # exactly one selector
    assert post(symbol="BTCUSDT").status == 400
    assert post(symbol="NOPEUSDT", trade_id=1).status == 400
    first = symbol_config("BTCUSDT").first_trade_id
    r = post(symbol="BTCUSDT", trade_id=first, value="1e-9")
    assert r.status == 400 and "client" in r.json()["error"]
    r = post(symbol="BTCUSDT", trade_id=first, field="quoteQty")
    assert r.status == 400 and "field" in r.json()["error"]
    r = post(symbol="BTCUSDT", trade_id=first, value="123.456789012")
    assert r.status == 200 and r.json()["value"] == "123.456789012"
    assert api(sim, "historicalTrades", symbol="BTCUSDT", fromId=first, limit=1).json()[0]["price"] == "123.456789012"
    sim.clear_faults()
