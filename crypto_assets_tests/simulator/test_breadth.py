"""Hundreds of symbols on one simulator, over the stream: a 512-symbol simulator starts in seconds and serves
exchangeInfo, klines, historicalTrades and one combined stream of 1024 streams (more are refused); a halted symbol's
stream carries no trade and keeps its closed klines (n = 0); a stream subscribed before a listing carries the
listing's trades from id 0; pings and pongs count toward the 5 incoming messages a second."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import websocket

from binance_simulator import Simulator, SimulatorConfig, SymbolConfig, symbol_config
from binance_simulator.market import SymbolMarket
from binance_simulator.process import SimulatorProcess
from binance_simulator.universe import quiet_symbols
from crypto_assets_tests.simulator._support import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    RawWebSocket,
    api,
    close_code,
    collect,
    connect,
    messages,
    now_ms,
)

pytestmark = pytest.mark.integration

MINUTE = 60_000


def test_a_512_symbol_simulator_starts_in_seconds_and_serves_1024_streams_on_one_connection():
    started = time.monotonic()
    args = ["--symbols", "BTCUSDT,ETHUSDT,SOLUSDT", "--quiet-symbols", "509", "--history-minutes", "30"]
    with SimulatorProcess(*args, "--halted", "SOLUSDT=5") as p:
        ready_s = time.monotonic() - started
        info = api(p, "exchangeInfo").json()
        names = [s["symbol"] for s in info["symbols"]]
        assert len(names) == 512 and ready_s < 20
        assert {s["symbol"]: s["status"] for s in info["symbols"]}["SOLUSDT"] == "HALT"
        quiet = names[3]
        rows = api(p, "klines", symbol=quiet, interval="1m", limit=30).json()
        assert len(rows) == 30
        trades = api(p, "historicalTrades", symbol=quiet, limit=100).json()
        assert np.array_equal(np.diff([t["id"] for t in trades]), np.ones(len(trades) - 1))
        streams = [f"{n.lower()}@{kind}" for n in names for kind in ("trade", "kline_1m")]
        ws = websocket.create_connection(f"{p.ws_url}/stream?streams={'/'.join(streams)}", timeout=10)
        try:
            klines = lambda f: {json.loads(d)["stream"] for _, d in f if b"@kline_1m" in d}  # noqa: E731
            events = messages(collect(ws, 30, until=lambda f: len(klines(f)) == 512))  # at once unless loaded
        finally:
            ws.close()
        kline_streams = {e["stream"] for e in events if e["stream"].endswith("@kline_1m")}
        assert len(kline_streams) == 512, "every symbol's open kline is pushed every 2 s"
        assert any(e["stream"] == "btcusdt@trade" for e in events)
        too_many = streams + ["btcusdt@aggTrade"]
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"{p.ws_url}/stream?streams={'/'.join(too_many)}", timeout=10)
        assert refused.value.status_code == 400


def _clock_near_a_minute_end(seconds_before: float):
    """The wall clock shifted so that a minute ends ``seconds_before`` from now."""
    now = now_ms()
    offset = (now // MINUTE + 1) * MINUTE - int(seconds_before * 1000) - now
    return lambda: now_ms() + offset


def test_a_halted_symbol_streams_closed_klines_without_trades_and_a_listing_streams_from_id_zero():
    config = SimulatorConfig(
        symbols=[symbol_config("BTCUSDT"), symbol_config("SOLUSDT", trades_per_second=50.0)],
        history_minutes=10,
        halted={"SOLUSDT": 3},
    )
    with Simulator(config, clock=_clock_near_a_minute_end(2.0)) as sim:
        ws = connect(sim, "/stream?streams=solusdt@trade/solusdt@kline_1m/btcusdt@trade/newusdt@trade")
        try:
            listed = sim.list_symbol("NEWUSDT", trades_per_second=20.0)["from_ms"]
            events = messages(
                collect(
                    ws,
                    10,
                    until=lambda f: (
                        any(b'"x":true' in d and b"solusdt" in d for _, d in f)  # a closed SOL kline
                        and sum(b"newusdt@trade" in d for _, d in f) >= 5
                    ),
                )
            )
        finally:
            ws.close()
    by_stream = {}
    for e in events:
        by_stream.setdefault(e["stream"], []).append(e["data"])
    assert "solusdt@trade" not in by_stream and len(by_stream["btcusdt@trade"]) > 10
    [closed] = [k["k"] for k in by_stream["solusdt@kline_1m"] if k["k"]["x"]]
    assert (closed["n"], closed["f"], closed["L"]) == (0, -1, -1)
    assert closed["o"] == closed["h"] == closed["l"] == closed["c"] and closed["v"] == closed["q"] == "0.00000000"
    new = by_stream["newusdt@trade"]
    assert [t["t"] for t in new] == list(range(len(new))) and new[0]["T"] >= listed


def test_pings_and_pongs_count_toward_five_messages_a_second():
    with Simulator(SimulatorConfig(symbols=[symbol_config("BTCUSDT")], history_minutes=2)) as sim:
        with RawWebSocket(sim.host, sim.port, "/ws") as ws:
            for _ in range(5):
                ws.send(b"x", OP_PING)
            for _ in range(6):
                ws.send(b"x", OP_PONG)  # unsolicited pongs count too
            frames = []
            while not frames or frames[-1][0] != OP_CLOSE:
                got = ws.recv_frame(3)
                assert got is not None, "no close within 3 s"
                frames.append(got)
        assert [op for op, _ in frames] == [OP_PONG] * 5 + [OP_CLOSE]  # the pings answered, then the sixth message
        assert close_code(frames[-1][1]) == 1008


def test_an_hourly_drawn_symbol_is_the_same_market_however_it_is_read():
    cfg = SymbolConfig(**{**quiet_symbols(1, seed=7)[0], "trades_per_second": 0.5, "burst_probability": 0.01})
    origin = 1_800_000_000_000 - 7_000_000
    whole, pieces = SymbolMarket(cfg, 7, origin), SymbolMarket(cfg, 7, origin)
    for m in (whole, pieces):
        m.set_hostile(True, origin, hostile_seed=3, from_origin=True)
    end_s = origin // 1000 + 7_000
    whole._ensure_indexed(end_s)
    rng = np.random.default_rng(0)
    s = origin // 1000
    while s < end_s:
        s = min(end_s, s + int(rng.integers(1, 900)))
        pieces._ensure_indexed(s)
    a, b = whole.trades_between(origin, end_s * 1000), pieces.trades_between(origin, end_s * 1000)
    assert len(a) > 100 and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("id", "time", "price", "qty"))
    assert np.array_equal(a.id, np.arange(a.id[0], a.id[0] + len(a)))
    minutes = range(origin // MINUTE * MINUTE, end_s * 1000 // MINUTE * MINUTE, MINUTE)
    assert sum(whole.kline(m, MINUTE).count for m in minutes) == len(whole.trades_between(origin, minutes.stop))
