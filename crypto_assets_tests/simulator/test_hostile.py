"""Hostile mode: every stream connection is cut after 40-100 s (dropped, half-open or serverShutdown), symbols burst
to 10-50x their rate and have empty minutes, and none of it makes the data inconsistent: the stream's trades and
closed klines still match REST and the ground truth, and switching the mode on or off only changes what nobody has
seen yet. Simulated clocks (FastClock, ManualClock) keep each test to seconds of real time."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import pytest

from binance_simulator import Simulator, SimulatorConfig, StreamSettings, symbol_config
from binance_simulator.hostile import CUT_KINDS
from binance_simulator.process import SimulatorProcess
from crypto_assets_tests.exchange._clocks import FastClock
from crypto_assets_tests.simulator._support import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Closed,
    ManualClock,
    RawWebSocket,
    api,
    close_code,
    http,
    now_ms,
)

pytestmark = pytest.mark.integration

MINUTE = 60_000
# simulated ms (0.4 s real, more under load) between the server's cut and the client noticing it (pump ticks, threads)
SLACK_MS = 8_000


# ---- a client that answers pings and records what it sees, in simulated time --------------------------------------
@dataclass
class Watch:
    opened_ms: int
    frames: list[tuple[int, int, bytes]] = field(default_factory=list)  # (simulated ms, opcode, payload)
    eof_ms: int | None = None
    ended_ms: int | None = None

    def texts(self) -> list[tuple[int, dict]]:
        return [(t, json.loads(p)) for t, op, p in self.frames if op == OP_TEXT]

    def shutdown_ms(self) -> int | None:
        return next(
            (
                t
                for t, m in self.texts()
                if m.get("e") == "serverShutdown" or m.get("data", {}).get("e") == "serverShutdown"
            ),
            None,
        )

    def close(self) -> tuple[int, int] | None:
        """(simulated ms, code) of the server's close frame."""
        return next(((t, close_code(p)) for t, op, p in self.frames if op == OP_CLOSE), None)

    def kind(self) -> str:
        """How the connection ended, as the client sees it."""
        if self.shutdown_ms() is not None:
            return "server_shutdown"
        if self.eof_ms is not None and self.close() is None:
            return "drop"
        if self.eof_ms is None and self.close() is None:
            return "half_open"
        return "closed without serverShutdown"

    def cut_ms(self) -> int:
        """When the network cut it: the serverShutdown event, the EOF, or the last frame before a silence."""
        kind = self.kind()
        if kind == "server_shutdown":
            return self.shutdown_ms()
        if kind == "drop":
            return self.eof_ms
        return self.frames[-1][0]


def watch(ws: RawWebSocket, clock, out: Watch, until_ms: int, silence_ms: int | None = None) -> None:
    """Read ``ws`` until EOF, ``until_ms`` (simulated) or ``silence_ms`` without a frame; answer pings and a close."""
    while (now := clock()) < until_ms:
        if silence_ms is not None and now - (out.frames[-1][0] if out.frames else out.opened_ms) > silence_ms:
            break
        try:
            got = ws.recv_frame(0.05)
        except Closed:
            out.eof_ms = clock()
            break
        if got is None:
            continue
        opcode, payload = got
        out.frames.append((clock(), opcode, payload))
        if opcode == OP_PING:
            ws.send(payload, OP_PONG)
        elif opcode == OP_CLOSE:
            ws.send(payload[:2], OP_CLOSE)
    out.ended_ms = clock()


# ---- connections are cut -------------------------------------------------------------------------------------------
CUT_SPEED = 20  # 100 simulated seconds in 5 real ones
CUT_SEED = 3  # its first three connections are cut in three different ways
CONNECTIONS = 9


def test_every_connection_is_cut_after_40_to_100_s_in_all_three_ways():
    clock = FastClock(now_ms(), CUT_SPEED)
    config = SimulatorConfig(
        symbols=[symbol_config("CUTUSDT", trades_per_second=2.0)],
        history_minutes=2,
        hostile=True,
        hostile_seed=CUT_SEED,
    )
    with Simulator(config, clock=clock) as sim:
        watches, threads = [], []
        for _ in range(CONNECTIONS):
            ws = RawWebSocket(sim.host, sim.port, "/stream?streams=cutusdt@trade/cutusdt@kline_1m")
            w = Watch(opened_ms=clock())
            t = threading.Thread(target=watch, args=(ws, clock, w, w.opened_ms + 130_000), daemon=True)
            t.start()
            watches.append((ws, w))
            threads.append(t)
        for t in threads:
            t.join(30)
        for ws, _ in watches:
            ws.close()
        cuts = sorted(sim.state()["hostile"]["cuts"], key=lambda c: c["session"])

    # The server's record: one cut per connection, 40-100 s after it opened.
    assert len(cuts) == CONNECTIONS
    for c in cuts:
        assert 40_000 <= c["cut_ms"] - c["connected_ms"] <= 100_000 + SLACK_MS, c
        assert c["cut_ms"] >= c["planned_ms"] and c["kind"] in CUT_KINDS
    assert {c["kind"] for c in cuts} == set(CUT_KINDS)

    # What each client saw matches: the same kind, at the same time.
    for (_, w), c in zip(watches, cuts):
        kind = w.kind()
        assert kind == c["kind"], (w.frames[-3:], c)
        assert 40_000 - 3_000 <= w.cut_ms() - w.opened_ms <= 100_000 + SLACK_MS, (kind, w.cut_ms() - w.opened_ms)
        if kind == "server_shutdown":  # then the close frame (1001) a few seconds later, then EOF
            closed_ms, code = w.close()
            assert code == 1001 and 2_000 - SLACK_MS <= closed_ms - w.shutdown_ms() <= 5_000 + SLACK_MS
            assert w.eof_ms is not None
        elif kind == "half_open":  # silent for good, pings included, and the socket stays open
            assert w.ended_ms - w.cut_ms() >= 25_000 and w.eof_ms is None
            # its last frame came just before: in an empty minute, the open kline pushed every 2 s
            assert c["cut_ms"] - 2_000 - SLACK_MS <= w.cut_ms() <= c["cut_ms"] + SLACK_MS
        else:
            assert abs(w.cut_ms() - c["cut_ms"]) <= SLACK_MS


def test_hostile_mode_over_the_control_path():
    clock = ManualClock(now_ms())
    config = SimulatorConfig(symbols=[symbol_config("CUTUSDT", trades_per_second=2.0)], history_minutes=2)
    with Simulator(config, clock=clock) as sim:
        with RawWebSocket(sim.host, sim.port, "/ws/cutusdt@trade"):
            time.sleep(0.1)
            assert [c["hostile_cut"] for c in sim.state()["connections"]] == [None]
            on = http(sim, "/_sim/faults/hostile", method="POST", body={"enabled": True, "seed": 7})
            assert on.status == 200 and (on.json()["enabled"], on.json()["seed"]) == (True, 7)
            assert sim.state()["hostile"]["enabled"] is True
            with RawWebSocket(sim.host, sim.port, "/ws/cutusdt@trade"):
                time.sleep(0.1)
                connections = sim.state()["connections"]
                # the open connection is cut 40-100 s from now, the new one 40-100 s after it opened (now too)
                assert len(connections) == 2
                for c in connections:
                    plan = c["hostile_cut"]
                    assert 40_000 <= plan["at_ms"] - clock() <= 100_000 and plan["kind"] in CUT_KINDS
                clock.advance(100_001)
                deadline = time.monotonic() + 5
                while len(sim.state()["hostile"]["cuts"]) < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                cuts = sim.state()["hostile"]["cuts"]
                assert sorted(c["session"] for c in cuts) == sorted(c["id"] for c in connections)
                assert [c["kind"] for c in sorted(cuts, key=lambda c: c["session"])] == [
                    c["hostile_cut"]["kind"] for c in sorted(connections, key=lambda c: c["id"])
                ]

        off = http(sim, "/_sim/faults/hostile", method="POST", body={"enabled": False})
        assert off.status == 200 and off.json()["enabled"] is False
        with RawWebSocket(sim.host, sim.port, "/ws/cutusdt@trade"):
            time.sleep(0.1)
            assert [c["hostile_cut"] for c in sim.state()["connections"]][-1] is None
        bad = http(sim, "/_sim/faults/hostile", method="POST", body={"enabled": "yes"})
        assert bad.status == 400 and "enabled must be true or false" in bad.json()["error"]
        assert sim.hostile(True)["seed"] == config.seed  # in process: the simulator's seed by default


# ---- the market: only the future changes ---------------------------------------------------------------------------
T0 = 1_800_000_000_000 // MINUTE * MINUTE + 50_000  # a fixed clock: the market is the same on every run
SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
MARKET_SEED = 16  # with T0 and SYMBOLS: empty minutes and bursts within the first three and a half minutes


def calm_symbols():
    # Quiet minutes off: every empty minute here is hostile mode's. Low rates: a 50x burst stays readable.
    return [symbol_config(s, trades_per_second=2.0, quiet_minute_probability=0.0) for s in SYMBOLS]


def rest_klines(sim, symbol: str, start_ms: int, end_ms: int) -> list[list]:
    return api(sim, "klines", symbol=symbol, interval="1m", startTime=start_ms, endTime=end_ms - 1, limit=1000).json()


def test_switching_hostile_mode_changes_only_what_nobody_has_seen():
    clock = ManualClock(T0)
    with Simulator(SimulatorConfig(symbols=calm_symbols(), history_minutes=30), clock=clock) as sim:
        start = sim.market.origin_ms
        before = {s: rest_klines(sim, s, start, T0) for s in SYMBOLS}
        on = sim.hostile(True, seed=MARKET_SEED)
        assert all(ms > T0 for ms in on["from_ms"].values())
        assert {s: rest_klines(sim, s, start, T0) for s in SYMBOLS} == before  # the past stays as it was

        clock.advance(30 * MINUTE)
        hostile_end = clock()
        sim.hostile(False)
        clock.advance(10 * MINUTE)
        for s in SYMBOLS:
            rows = rest_klines(sim, s, start, clock() // MINUTE * MINUTE)
            assert rows[: len(before[s]) - 1] == before[s][:-1]  # (the last one was still open)
            for r in rows:  # every minute, calm or hostile, is what its trades say
                truth = sim.trades_between(s, r[0], r[0] + MINUTE)
                assert r[8] == len(truth), (s, r[0])
        m = [sim.market[s] for s in SYMBOLS]
        bursts = {s: sm.hostile.burst_seconds(T0 // 1000, hostile_end // 1000) for s, sm in zip(SYMBOLS, m)}
        assert any(bursts.values()), "the hostile half hour has bursts"
        for seconds in bursts.values():
            for multiplier in seconds.values():
                assert 10 <= multiplier <= 50
        empty = [(s, r[0]) for s in SYMBOLS for r in rest_klines(sim, s, T0, hostile_end) if r[8] == 0]
        assert empty, "the hostile half hour has empty minutes"
        calm = [r for s in SYMBOLS for r in rest_klines(sim, s, hostile_end + MINUTE, clock() // MINUTE * MINUTE)]
        assert calm and all(r[8] > 0 for r in calm)  # no more empty minutes once it is off
        assert not any(sm.hostile.burst_seconds(hostile_end // 1000 + 1, clock() // 1000) for sm in m)


# ---- the stream still matches REST and the ground truth, across cuts, bursts and empty minutes --------------------
STREAM_SPEED = 15  # a minute in four real seconds
CAPTURE_MS = 200_000  # from T0: minutes 1, 2 and 3 after T0's minute close within it


def trade_key(t: dict) -> tuple:
    return t["t"], t["p"], t["q"], t["T"], t["m"]


def capture_with_reconnects(sim, clock, streams: list[str], until_ms: int) -> list[Watch]:
    """Connect, read until the connection is cut (EOF, close, serverShutdown, or 8 simulated seconds of silence: a
    half-open socket), reconnect; until ``until_ms``. Each connection's frames are one Watch."""
    segments = []
    while clock() < until_ms:
        ws = RawWebSocket(sim.host, sim.port, "/stream?streams=" + "/".join(streams))
        w = Watch(opened_ms=clock())
        try:
            watch(ws, clock, w, until_ms, silence_ms=8_000)
        finally:
            ws.close()
        segments.append(w)
    return segments


@pytest.fixture(scope="module")
def hostile_capture():
    clock = FastClock(T0, STREAM_SPEED)
    config = SimulatorConfig(
        symbols=calm_symbols(),
        history_minutes=3,
        hostile=True,
        hostile_seed=MARKET_SEED,
        stream=StreamSettings(ping_interval_s=20.0, pong_timeout_s=60.0),
    )
    streams = [f"{s.lower()}@{kind}" for s in SYMBOLS for kind in ("trade", "kline_1m")]
    with Simulator(config, clock=clock) as sim:
        segments = capture_with_reconnects(sim, clock, streams, T0 + CAPTURE_MS)
        yield sim, segments


def stream_messages(w: Watch, kind: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {s: [] for s in SYMBOLS}
    for _, m in w.texts():
        if "stream" in m and m["stream"].endswith("@" + kind):
            out[m["data"]["s"]].append(m["data"])
    return out


def test_the_capture_was_cut_and_saw_bursts_and_empty_minutes(hostile_capture):
    sim, segments = hostile_capture
    assert len(segments) >= 2, "hostile mode cut the capture's connection at least once"
    burst_seconds = {s: sim.market[s].hostile.burst_seconds(T0 // 1000, (T0 + CAPTURE_MS) // 1000) for s in SYMBOLS}
    streamed_in_bursts = sum(
        1
        for w in segments
        for s, trades in stream_messages(w, "trade").items()
        for t in trades
        if t["T"] // 1000 in burst_seconds[s]
    )
    assert streamed_in_bursts > 0, "the stream carried trades of a burst"
    empty_closed = [
        k
        for w in segments
        for ks in stream_messages(w, "kline_1m").values()
        for k in ks
        if k["k"]["x"] and k["k"]["n"] == 0
    ]
    assert empty_closed, "the stream closed an empty minute"


def test_each_connection_streams_every_trade_as_the_ground_truth_has_it(hostile_capture):
    sim, segments = hostile_capture
    for w in segments:
        for symbol, trades in stream_messages(w, "trade").items():
            if not trades:
                continue
            ids = [t["t"] for t in trades]
            assert ids == list(range(ids[0], ids[-1] + 1)), f"{symbol}: a hole inside one connection"
            truth = sim.trades_between(symbol, trades[0]["T"], trades[-1]["T"] + 1)
            expected = [
                (int(i), p, q, int(t), bool(m))
                for i, p, q, t, m in zip(truth.id, truth.price, truth.qty, truth.time, truth.is_buyer_maker)
                if ids[0] <= i <= ids[-1]
            ]
            got = [
                (t["t"], int(round(float(t["p"]) * 1e8)), int(round(float(t["q"]) * 1e8)), t["T"], t["m"])
                for t in trades
            ]
            assert got == expected, symbol
            rest = api(sim, "historicalTrades", symbol=symbol, fromId=ids[0], limit=1000).json()
            rest = [r for r in rest if r["id"] <= ids[-1]]
            assert [(r["id"], r["price"], r["qty"], r["time"], r["isBuyerMaker"]) for r in rest] == [
                trade_key(t) for t in trades
            ][: len(rest)]


def test_every_closed_kline_streamed_matches_rest_and_the_ground_truth(hostile_capture):
    sim, segments = hostile_capture
    closed = [k["k"] for w in segments for ks in stream_messages(w, "kline_1m").values() for k in ks if k["k"]["x"]]
    assert closed
    for k in closed:
        [row] = api(sim, "klines", symbol=k["s"], interval="1m", startTime=k["t"], limit=1).json()
        assert row[:9] == [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"]], k
        assert [row[9], row[10]] == [k["V"], k["Q"]]
        truth = sim.trades_between(k["s"], k["t"], k["t"] + MINUTE)
        assert k["n"] == len(truth)
        if k["n"]:
            assert (k["f"], k["L"]) == (int(truth.id[0]), int(truth.id[-1]))
        else:  # an empty minute: no ids, and it holds the last price (open = high = low = close), volumes 0
            assert (k["f"], k["L"]) == (-1, -1)
            assert k["o"] == k["h"] == k["l"] == k["c"] and float(k["v"]) == float(k["q"]) == 0
            before = sim.trades_between(k["s"], k["t"] - 10 * MINUTE, k["t"])
            assert int(round(float(k["c"]) * 1e8)) == int(before.price[-1])


def test_the_hostile_flag_of_the_command_line():
    with SimulatorProcess(
        "--symbols", "AAAUSDT", "--rate", "AAAUSDT=2", "--history-minutes", "30", "--hostile", "--seed", "4"
    ) as p:
        with RawWebSocket(p.host, p.port, "/ws/aaausdt@trade"):
            time.sleep(0.2)
            state = http(p, "/_sim/state").json()
        rows = api(p, "klines", symbol="AAAUSDT", interval="1m", limit=1000).json()[:-1]  # the closed minutes
        truth = http(
            p, "/_sim/trades", {"symbol": "AAAUSDT", "startTime": rows[0][0], "endTime": rows[-1][0] + MINUTE}
        ).json()
    assert state["hostile"]["enabled"] is True and state["hostile"]["seed"] == 4
    [connection] = state["connections"]
    assert 40_000 <= connection["hostile_cut"]["at_ms"] - connection["connected_ms"] <= 100_000
    per_minute = {r[0]: 0 for r in rows}
    for t in truth:
        per_minute[t["time"] // MINUTE * MINUTE] += 1
    assert [r[8] for r in rows] == list(per_minute.values())  # REST klines and the ground truth agree
