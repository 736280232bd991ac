"""The stream, REST and the ground truth tell the same story: a live capture across a minute boundary, then every
streamed trade, aggregate and the closed kline are checked against ``historicalTrades``, ``aggTrades``, ``klines``
and ``sim.trades_between``."""

from __future__ import annotations

import time

import pytest

from binance_simulator import Simulator, SimulatorConfig, StreamSettings, symbol_config
from binance_simulator.market import units_to_decimal
from crypto_assets_tests.simulator._support import api, collect, connect, messages, now_ms

pytestmark = pytest.mark.integration

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
STREAMS = ["btcusdt@trade", "btcusdt@kline_1m", "btcusdt@aggTrade", "ethusdt@trade", "ethusdt@aggTrade"]
LEAD_MS = 3_000  # the simulated clock starts this long before a minute boundary


def clock_before_a_minute_boundary(lead_ms: int = LEAD_MS):
    real = now_ms()
    offset = (real // 60_000 + 1) * 60_000 - lead_ms - real
    return lambda: time.time_ns() // 1_000_000 + offset


class Capture:
    def __init__(self, sim: Simulator, by_stream: dict[str, list[dict]], boundary_ms: int):
        self.sim = sim
        self.by_stream = by_stream
        self.boundary_ms = boundary_ms

    def trades(self, symbol: str) -> list[dict]:
        return self.by_stream[symbol.lower() + "@trade"]

    def aggs(self, symbol: str) -> list[dict]:
        return self.by_stream[symbol.lower() + "@aggTrade"]


def rows_from_id(sim: Simulator, endpoint: str, id_key: str, symbol: str, first: int, last: int) -> list[dict]:
    """``endpoint``'s rows from id ``first`` on, paged by ``fromId`` until a page reaches id ``last``."""
    rows, next_id = [], first
    while next_id <= last:
        page = api(sim, endpoint, symbol=symbol, fromId=next_id, limit=1000)
        assert page.status == 200
        assert page.json(), f"{endpoint} returned nothing for ids the stream already delivered"
        rows += page.json()
        next_id = rows[-1][id_key] + 1
    return rows


@pytest.fixture(scope="module")
def capture():
    clock = clock_before_a_minute_boundary()
    boundary = (clock() // 60_000 + 1) * 60_000
    symbols = [symbol_config("BTCUSDT", burst_probability=0.2), symbol_config("ETHUSDT", quiet_minute_probability=0.0)]
    config = SimulatorConfig(
        symbols=symbols, history_minutes=3, stream=StreamSettings(ping_interval_s=1.0, pong_timeout_s=5.0)
    )
    with Simulator(config, clock=clock) as sim:
        ws = connect(sim, "/stream?streams=" + "/".join(STREAMS))
        closed_at: list[float] = []

        def until(frames):
            if not closed_at:
                for m in messages(frames[-1:]):
                    if m["stream"] == "btcusdt@kline_1m" and m["data"]["k"]["x"]:
                        closed_at.append(time.monotonic())
            return bool(closed_at) and time.monotonic() - closed_at[0] > 1.0

        try:
            frames = collect(ws, LEAD_MS / 1000 + 8, until=until)
        finally:
            ws.close()
        by_stream: dict[str, list[dict]] = {s: [] for s in STREAMS}
        for m in messages(frames):
            assert list(m) == ["stream", "data"]
            by_stream[m["stream"]].append(m["data"])
        yield Capture(sim, by_stream, boundary)


def trade_key(t: dict) -> tuple:
    return t["t"], t["p"], t["q"], t["T"], t["m"]


def rest_trade_key(r: dict) -> tuple:
    return r["id"], r["price"], r["qty"], r["time"], r["isBuyerMaker"]


def agg_key(a: dict) -> tuple:
    return a["a"], a["p"], a["q"], a["f"], a["l"], a["T"], a["m"]


def test_the_capture_spans_a_minute_boundary_with_one_closed_kline(capture):
    klines = capture.by_stream["btcusdt@kline_1m"]
    closed = [k["k"] for k in klines if k["k"]["x"]]
    assert len(closed) == 1
    assert closed[0]["t"] == capture.boundary_ms - 60_000
    assert any(not k["k"]["x"] for k in klines)  # the open kline is pushed too
    for symbol in SYMBOLS:
        times = [t["T"] for t in capture.trades(symbol)]
        assert min(times) < capture.boundary_ms <= max(times), symbol


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_streamed_trade_ids_are_dense_and_times_ascend(capture, symbol):
    trades = capture.trades(symbol)
    assert len(trades) >= 20
    ids = [t["t"] for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert all(a["T"] <= b["T"] for a, b in zip(trades, trades[1:]))
    assert all(0 <= t["E"] - t["T"] < 2_000 for t in trades)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_streamed_trades_equal_rest_historical_trades(capture, symbol):
    trades = capture.trades(symbol)
    rows = rows_from_id(capture.sim, "historicalTrades", "id", symbol, trades[0]["t"], trades[-1]["t"])
    assert [rest_trade_key(r) for r in rows[: len(trades)]] == [trade_key(t) for t in trades]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_streamed_trades_equal_the_ground_truth(capture, symbol):
    trades = capture.trades(symbol)
    truth = capture.sim.trades_between(symbol, trades[0]["T"], trades[-1]["T"] + 1)
    rows = [
        (i, units_to_decimal(p), units_to_decimal(q), ts, m)
        for i, p, q, ts, m in zip(
            truth.id.tolist(),
            truth.price.tolist(),
            truth.qty.tolist(),
            truth.time.tolist(),
            truth.is_buyer_maker.tolist(),
        )
        if i <= trades[-1]["t"]
    ]
    assert rows == [trade_key(t) for t in trades]


def test_closed_kline_equals_rest_klines_and_the_ground_truth(capture):
    k = next(e["k"] for e in capture.by_stream["btcusdt@kline_1m"] if e["k"]["x"])
    open_ms = capture.boundary_ms - 60_000
    row = api(capture.sim, "klines", symbol="BTCUSDT", interval="1m", startTime=open_ms, limit=1).json()[0]
    assert row[0] == k["t"] == open_ms and row[6] == k["T"] == open_ms + 59_999
    assert row[1:6] == [k["o"], k["h"], k["l"], k["c"], k["v"]]
    assert (row[7], row[8], row[9], row[10]) == (k["q"], k["n"], k["V"], k["Q"])

    truth = capture.sim.trades_between("BTCUSDT", open_ms, open_ms + 60_000)
    prices = truth.price.tolist()
    assert (k["n"], k["f"], k["L"]) == (len(truth), int(truth.id[0]), int(truth.id[-1]))
    assert (k["o"], k["h"], k["l"], k["c"]) == tuple(
        units_to_decimal(p) for p in (prices[0], max(prices), min(prices), prices[-1])
    )
    assert k["v"] == units_to_decimal(int(truth.qty.sum()))
    assert k["q"] == units_to_decimal(sum(truth.quote_qty()))
    assert k["L"] - k["f"] + 1 == k["n"]  # ids within a minute are dense

    # The stream confirms the boundary: its last trade of the minute is L, the next one is L + 1.
    streamed = capture.trades("BTCUSDT")
    before = [t["t"] for t in streamed if t["T"] < capture.boundary_ms]
    after = [t["t"] for t in streamed if t["T"] >= capture.boundary_ms]
    assert before[-1] == k["L"] and after[0] == k["L"] + 1


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_streamed_aggs_equal_rest_agg_trades_by_from_id(capture, symbol):
    aggs = capture.aggs(symbol)
    assert len(aggs) >= 10
    assert [a["a"] for a in aggs] == list(range(aggs[0]["a"], aggs[0]["a"] + len(aggs)))
    rows = rows_from_id(capture.sim, "aggTrades", "a", symbol, aggs[0]["a"], aggs[-1]["a"])
    assert [agg_key(r) for r in rows[: len(aggs)]] == [agg_key(a) for a in aggs]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_streamed_aggs_equal_rest_agg_trades_by_inclusive_time_window(capture, symbol):
    aggs = capture.aggs(symbol)
    # The capture may stop inside the last millisecond's batch: keep only fully delivered milliseconds.
    last_ms = aggs[-1]["T"]
    complete = [a for a in aggs if a["T"] < last_ms]
    start, end = complete[0]["T"], complete[-1]["T"]
    rows = api(capture.sim, "aggTrades", symbol=symbol, startTime=start, endTime=end, limit=1000).json()
    assert len(rows) < 1000
    assert [agg_key(r) for r in rows] == [agg_key(a) for a in complete]
    # Microsecond parameters mean the same window.
    rows_us = api(
        capture.sim, "aggTrades", symbol=symbol, startTime=start * 1000, endTime=end * 1000 + 999, limit=1000
    ).json()
    assert rows_us == rows
    # Both bounds are inclusive: a one-millisecond window returns exactly that millisecond's aggregates.
    ms = complete[len(complete) // 2]["T"]
    one = api(capture.sim, "aggTrades", symbol=symbol, startTime=ms, endTime=ms, limit=1000).json()
    assert [agg_key(r) for r in one] == [agg_key(a) for a in complete if a["T"] == ms]
    assert api(capture.sim, "aggTrades", symbol=symbol, startTime=start + 1, endTime=end - 1, limit=1000).json() == [
        r for r in rows if start < r["T"] < end
    ]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_streamed_aggs_group_the_streamed_trades(capture, symbol):
    trades = {t["t"]: t for t in capture.trades(symbol)}
    aggs = capture.aggs(symbol)
    multi = 0
    for a in aggs:
        group = [trades[i] for i in range(a["f"], a["l"] + 1)]  # every trade of an aggregate was streamed
        assert {(t["T"], t["p"], t["m"]) for t in group} == {(a["T"], a["p"], a["m"])}
        assert sum(int(t["q"].replace(".", "")) for t in group) == int(a["q"].replace(".", ""))
        multi += len(group) > 1
    assert all(b["f"] == a["l"] + 1 for a, b in zip(aggs, aggs[1:]))
    assert multi > 0
