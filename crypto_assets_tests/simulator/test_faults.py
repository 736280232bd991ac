"""Faults and connection rules, observed from real clients.

Every fault is injected both in process (``sim.drop_connections()`` ...) and over the HTTP control path
(``POST /_sim/faults/<name>``); each fault test runs once per path on a simulator of its own."""

from __future__ import annotations

import json
import time

import pytest
import websocket

from binance_simulator import Simulator, SimulatorConfig, StreamSettings, symbol_config
from binance_simulator.faults import MALFORMED_KINDS
from binance_simulator.market import units_to_decimal
from crypto_assets_tests.simulator._support import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Closed,
    RawWebSocket,
    api,
    close_code,
    collect,
    connect,
    http,
    messages,
    now_ms,
)

pytestmark = pytest.mark.integration

# The keyword arguments of each in-process method are the JSON body keys of its control path.
IN_PROCESS = {
    "drop": "drop_connections",
    "half_open": "half_open",
    "server_shutdown": "server_shutdown",
    "malformed": "send_malformed",
    "rest_errors": "fail_rest",
    "latency": "set_latency",
    "rate_limit_storm": "rate_limit_storm",
    "pause": "pause_symbol",
    "resume": "resume_symbol",
    "clear": "clear_faults",
}


def config(**stream) -> SimulatorConfig:
    settings = {"ping_interval_s": 0.5, "pong_timeout_s": 30.0, **stream}
    # No quiet minutes: tests expect both symbols to trade at any moment.
    symbols = [symbol_config("BTCUSDT"), symbol_config("ETHUSDT", quiet_minute_probability=0.0)]
    return SimulatorConfig(symbols=symbols, history_minutes=2, stream=StreamSettings(**settings))


@pytest.fixture
def sim():
    with Simulator(config()) as s:
        yield s


@pytest.fixture(params=["in_process", "http"])
def inject(request, sim):
    """``inject(name, **args)``: one fault, through the path this test instance exercises."""

    def _inject(name: str, **args):
        if request.param == "http":
            r = http(sim, f"/_sim/faults/{name}", method="POST", body=args)
            assert r.status == 200, r.body
            return r.json()
        return getattr(sim, IN_PROCESS[name])(**args)

    _inject.via = request.param
    return _inject


def read_until_lost(ws: websocket.WebSocket, seconds: float) -> tuple[list[int], BaseException | None]:
    """Opcodes of the frames read until the connection is lost (the error) or ``seconds`` pass (None)."""
    opcodes, deadline = [], time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        ws.settimeout(remaining)
        try:
            opcode = ws.recv_frame().opcode  # raw frames: a close frame is recorded, not answered
        except websocket.WebSocketTimeoutException:
            return opcodes, None
        except (websocket.WebSocketConnectionClosedException, ConnectionError) as exc:
            return opcodes, exc
        opcodes.append(opcode)
        if opcode == OP_CLOSE:
            return opcodes, None
    return opcodes, None


def wait_for_trades(ws, n: int = 3, seconds: float = 5.0) -> list[dict]:
    got = messages(collect(ws, seconds, until=lambda f: len(f) >= n))
    assert len(got) >= n, "no data on the stream"
    return got


def data_of(msg: dict) -> dict:
    return msg.get("data", msg)


# ---- drop ----------------------------------------------------------------------------------------------------------
def test_drop_closes_the_symbols_connections_without_a_close_frame(sim, inject):
    btc, eth = connect(sim, "/ws/btcusdt@trade"), connect(sim, "/stream?streams=ethusdt@trade")
    try:
        wait_for_trades(btc)
        wait_for_trades(eth)
        result = inject("drop", symbol="BTCUSDT")
        assert result == (1 if inject.via == "in_process" else {"dropped": 1})
        opcodes, error = read_until_lost(btc, 5)
        assert error is not None, "the dropped connection stayed open"
        assert OP_CLOSE not in opcodes
        wait_for_trades(eth)  # the other symbol's connection is untouched
        inject("drop")  # no symbol: every connection
        assert read_until_lost(eth, 5)[1] is not None
    finally:
        btc.close()
        eth.close()


# ---- half-open -----------------------------------------------------------------------------------------------------
def test_half_open_goes_silent_without_closing_then_drops(sim, inject):
    with RawWebSocket(sim.host, sim.port, "/ws/btcusdt@trade") as ws:
        before = ws.frames_for(1.2)
        assert {OP_TEXT, OP_PING} <= {op for _, op, _ in before}  # data and server pings while healthy
        injected_at = time.monotonic()
        inject("half_open", symbol="BTCUSDT", duration_s=3.0)
        ws.frames_for(0.3)  # whatever was already in flight
        ws.send(b"are you there", OP_PING)
        silent = ws.frames_for(2.1)
        assert silent == [], f"{len(silent)} frames while half-open"  # no data, no pings, no pong: but still open
        with pytest.raises(Closed):
            ws.frames_for(3.0)  # after duration_s the server drops the connection
        assert time.monotonic() - injected_at >= 2.9


# ---- serverShutdown ------------------------------------------------------------------------------------------------
def test_server_shutdown_announces_then_closes_after_the_grace_period(sim, inject):
    raw, combined = connect(sim, "/ws/btcusdt@trade"), connect(sim, "/stream?streams=ethusdt@trade")
    try:
        wait_for_trades(raw)
        wait_for_trades(combined)
        before = now_ms()
        result = inject("server_shutdown", grace_s=0.6)
        assert result == (2 if inject.via == "in_process" else {"notified": 2})
        frames = collect(raw, 5)

        events = [m for m in messages(frames) if m.get("e") == "serverShutdown"]
        assert len(events) == 1 and list(events[0]) == ["e", "E"] and before <= events[0]["E"] <= now_ms()
        assert frames[-1][0] == OP_CLOSE and close_code(frames[-1][1]) == 1001
        frames = collect(combined, 5)
        wrapped = [m for m in messages(frames) if m["stream"] == "!serverShutdown"]
        assert len(wrapped) == 1 and wrapped[0]["data"]["e"] == "serverShutdown"
        assert frames[-1][0] == OP_CLOSE
    finally:
        raw.close()
        combined.close()


def test_server_shutdown_waits_for_the_grace_period(sim):
    ws = connect(sim, "/ws/btcusdt@trade")
    try:
        wait_for_trades(ws)
        sim.server_shutdown(grace_s=0.8)
        seen_event = closed = None
        deadline = time.monotonic() + 5
        while closed is None and time.monotonic() < deadline:
            ws.settimeout(deadline - time.monotonic())
            frame = ws.recv_frame()
            opcode = frame.opcode
            if opcode == OP_TEXT and b"serverShutdown" in frame.data:
                seen_event = time.monotonic()
            elif opcode == OP_CLOSE:
                closed = time.monotonic()
        assert seen_event is not None and closed is not None
        assert 0.6 <= closed - seen_event <= 3.0
    finally:
        ws.close()


# ---- malformed frames ----------------------------------------------------------------------------------------------
def classify(opcode: int, data: bytes) -> tuple[str, int | None]:
    """(kind, trade id) of one raw-stream frame: 'valid' or the malformed kind it shows."""
    if opcode == OP_BINARY:
        return "binary", None
    try:
        obj = json.loads(data)
    except ValueError:
        return ("not-json" if data.startswith(b"<") else "truncated"), None
    if not isinstance(obj.get("t"), int):
        return "wrong-type", None
    if "p" not in obj:
        return "missing-field", None
    return "valid", obj["t"]


def malformed_run(sim, inject, count: int, kind: str | None) -> list[tuple[str, int | None]]:
    ws = connect(sim, "/ws/btcusdt@trade")
    try:
        frames = collect(ws, 5, until=lambda f: len(f) >= 20)
        inject("malformed", symbol="BTCUSDT", count=count, **({"kind": kind} if kind else {}))
        frames += collect(ws, 0.6)
    finally:
        ws.close()
    return [classify(op, data) for op, data in frames]


@pytest.fixture
def busy_sim():
    """BTCUSDT at 2000 trades a second: every 10 ms tick carries many trades, so misplaced frames would show."""
    cfg = config()
    cfg.symbols = [symbol_config("BTCUSDT", trades_per_second=2000.0)]
    with Simulator(cfg) as s:
        yield s


def assert_in_place(seen: list[tuple[str, int | None]], expected_kinds: list[str]) -> None:
    bad = [i for i, (k, _) in enumerate(seen) if k != "valid"]
    assert [seen[i][0] for i in bad] == expected_kinds  # in the order they were injected
    assert bad == list(range(bad[0], bad[0] + len(bad))), "malformed frames are not one contiguous run"
    valid_before, valid_after = seen[bad[0] - 1], seen[bad[-1] + 1]
    assert valid_before[0] == valid_after[0] == "valid"
    assert valid_after[1] - valid_before[1] == len(expected_kinds) + 1  # exactly N trades replaced
    ids = [t for k, t in seen if k == "valid"]
    gaps = [b - a for a, b in zip(ids, ids[1:]) if b - a != 1]
    assert gaps == [len(expected_kinds) + 1]


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_malformed_kind_replaces_trades_in_place(busy_sim, kind):
    def inject(name, **args):
        return busy_sim.send_malformed(**args)

    seen = malformed_run(busy_sim, inject, 3, kind)
    assert_in_place(seen, [kind] * 3)
    assert busy_sim.state()["malformed_sent"] == 3


def test_malformed_kinds_cycle_when_not_given(sim, inject):
    seen = malformed_run(sim, inject, 5, None)
    assert_in_place(seen, list(MALFORMED_KINDS))


def test_malformed_binary_frame_carries_the_trade_json(busy_sim):
    ws = connect(busy_sim, "/ws/btcusdt@trade")
    try:
        collect(ws, 5, until=lambda f: len(f) >= 5)
        busy_sim.send_malformed("BTCUSDT", 1, "binary")
        frames = collect(ws, 0.5)
    finally:
        ws.close()
    binary = [data for op, data in frames if op == OP_BINARY]
    assert len(binary) == 1 and json.loads(binary[0])["e"] == "trade"


# ---- REST faults ---------------------------------------------------------------------------------------------------
def test_rest_errors_answer_a_burst_of_5xx_then_recover(sim, inject):
    inject("rest_errors", count=3, status=503)
    statuses = [api(sim, "ping") for _ in range(4)]
    assert [r.status for r in statuses] == [503, 503, 503, 200]
    assert statuses[0].json()["code"] == -1008
    inject("rest_errors", status=504, duration_s=0.6)
    started, seen = time.monotonic(), []
    while time.monotonic() - started < 5:
        r = api(sim, "time")
        seen.append(r.status)
        if r.status == 200:
            break
        assert r.json()["code"] == -1007
        time.sleep(0.05)
    assert seen[0] == 504 and seen[-1] == 200 and set(seen[:-1]) == {504}
    assert time.monotonic() - started >= 0.5


def test_rest_latency_delays_every_request(sim, inject):
    assert api(sim, "ping").elapsed_s < 0.3
    inject("latency", rest_ms=400)
    slow = api(sim, "trades", symbol="BTCUSDT", limit=1)
    assert slow.status == 200 and slow.elapsed_s >= 0.4
    inject("latency", rest_ms=0)
    assert api(sim, "ping").elapsed_s < 0.3


def test_stream_latency_delays_trades(sim, inject):
    ws = connect(sim, "/ws/btcusdt@trade")
    try:
        wait_for_trades(ws)
        inject("latency", stream_ms=600)
        injected = now_ms()
        events = messages(collect(ws, 1.5))
    finally:
        ws.close()
    late = [e for e in events if e["E"] > injected]
    assert len(late) >= 5
    assert all(e["E"] - e["T"] >= 600 for e in late)
    ids = [e["t"] for e in events]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # delayed, not lost


def test_rate_limit_storm_answers_429_until_it_passes(sim, inject):
    inject("rate_limit_storm", duration_s=1.0, retry_after_s=1)
    r = api(sim, "ping")
    assert r.status == 429 and r.headers["retry-after"] == "1" and r.json()["code"] == -1003
    time.sleep(1.1)
    assert api(sim, "ping").status == 200


# ---- pause / resume ------------------------------------------------------------------------------------------------
def test_pause_silences_a_symbol_and_resume_continues_with_an_id_gap(sim, inject):
    ws = connect(sim, "/stream?streams=btcusdt@trade/ethusdt@trade")
    try:
        before = [data_of(m) for m in messages(collect(ws, 5, until=lambda f: len(f) >= 10))]
        inject("pause", symbol="BTCUSDT")
        before += [data_of(m) for m in messages(collect(ws, 0.2))]  # in flight
        paused = [data_of(m) for m in messages(collect(ws, 1.0))]
        inject("resume", symbol="BTCUSDT")
        btc_count = lambda f: sum(b'"BTCUSDT"' in d for _, d in f)  # noqa: E731
        after = [data_of(m) for m in messages(collect(ws, 3, until=lambda f: btc_count(f) >= 5))]
    finally:
        ws.close()
    assert [e for e in paused if e["s"] == "BTCUSDT"] == []
    assert len([e for e in paused if e["s"] == "ETHUSDT"]) >= 3  # other symbols keep flowing
    last = max((e for e in before if e["s"] == "BTCUSDT"), key=lambda e: e["t"])
    resumed = [e for e in after if e["s"] == "BTCUSDT"]
    assert len(resumed) >= 5
    ids = [e["t"] for e in resumed]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    gap = ids[0] - last["t"] - 1
    assert gap >= 10  # BTCUSDT trades ~40 a second: over a second of trades was skipped
    truth = sim.trades_between("BTCUSDT", last["T"], resumed[0]["T"] + 1)
    skipped = [t for t in truth.id.tolist() if last["t"] < t < ids[0]]
    assert skipped == list(range(last["t"] + 1, ids[0]))  # the gap is exactly what traded while paused


def test_pause_with_a_duration_resumes_on_its_own(sim, inject):
    ws = connect(sim, "/ws/btcusdt@trade")
    try:
        wait_for_trades(ws)
        inject("pause", symbol="BTCUSDT", duration_s=0.7)
        paused_at = time.monotonic()
        collect(ws, 0.1)
        events = messages(collect(ws, 4, until=lambda f: len(f) >= 1))
        assert events, "trades did not come back after the pause"
        assert time.monotonic() - paused_at >= 0.55
    finally:
        ws.close()


# ---- clear ---------------------------------------------------------------------------------------------------------
def test_clear_lifts_every_fault(sim, inject):
    ws = connect(sim, "/ws/btcusdt@trade")
    try:
        wait_for_trades(ws)
        inject("rest_errors", count=100)
        inject("latency", rest_ms=500)
        inject("pause", symbol="BTCUSDT")
        inject("half_open")
        inject("rate_limit_storm", duration_s=30)
        assert api(sim, "ping").status == 503
        inject("clear")
        r = api(sim, "ping")
        assert r.status == 200 and r.elapsed_s < 0.5  # the 500 ms latency is gone
        collect(ws, 0.2)
        assert wait_for_trades(ws, 3)
        faults = sim.state()["faults"]
        assert faults["rest_errors_left"] == 0 and faults["paused_until_ms"] == {} and faults["storm_until_ms"] == 0
    finally:
        ws.close()


# ---- the control path itself ---------------------------------------------------------------------------------------
def test_control_path_rejects_unknown_faults_and_bad_bodies(sim):
    assert http(sim, "/_sim/faults/meteor", method="POST", body={}).status == 404
    assert http(sim, "/_sim/faults/drop", method="GET").status == 404
    bad_kind = http(sim, "/_sim/faults/malformed", method="POST", body={"symbol": "BTCUSDT", "kind": "bogus"})
    assert bad_kind.status == 400 and "bogus" in bad_kind.json()["error"]
    assert http(sim, "/_sim/faults/pause", method="POST", body={}).status == 400  # symbol missing
    state = http(sim, "/_sim/state").json()
    assert state["symbols"] == ["BTCUSDT", "ETHUSDT"] and state["faults"]["malformed_left"] == {}


# ---- connection rules (no faults: shared simulators) -----------------------------------------------------------------
@pytest.fixture(scope="module")
def pinging():
    """Server pings every 0.5 s; a ping unanswered for 1 s drops the client."""
    with Simulator(config(ping_interval_s=0.5, pong_timeout_s=1.0)) as s:
        yield s


@pytest.fixture(scope="module")
def calm():
    """Binance's default 20 s pings: clients' pongs do not eat into the 5 messages a second."""
    with Simulator(config(ping_interval_s=20.0, pong_timeout_s=60.0)) as s:
        yield s


def test_server_pings_and_a_client_that_pongs_stays_connected(pinging):
    ws = connect(pinging, "/ws/ethusdt@trade")
    try:
        pings, deadline = [], time.monotonic() + 1.8
        while (remaining := deadline - time.monotonic()) > 0:
            ws.settimeout(remaining)
            try:
                opcode, frame = ws.recv_data_frame(True)  # websocket-client answers each ping with a pong
            except websocket.WebSocketTimeoutException:
                break
            assert opcode != OP_CLOSE
            if opcode == OP_PING:
                pings.append(frame.data)
        assert len(pings) >= 3 and all(p.isdigit() for p in pings)
        assert wait_for_trades(ws, 1)  # still connected well past the 1 s pong timeout
    finally:
        ws.close()


def test_a_client_that_never_pongs_is_dropped_after_the_pong_timeout(pinging):
    started = time.monotonic()
    with RawWebSocket(pinging.host, pinging.port, "/ws/ethusdt@trade") as ws:
        frames = []
        with pytest.raises(Closed):
            while time.monotonic() - started < 6:
                frames += ws.frames_for(0.5)
        lasted = time.monotonic() - started
    opcodes = [op for _, op, _ in frames]
    assert OP_PING in opcodes and OP_CLOSE not in opcodes
    assert 1.3 <= lasted <= 4.0  # first ping at 0.5 s, dropped 1 s later


def test_a_raw_client_that_echoes_pings_stays_connected(pinging):
    with RawWebSocket(pinging.host, pinging.port, "/ws/ethusdt@trade") as ws:
        pongs, texts, deadline = 0, 0, time.monotonic() + 2.0
        while time.monotonic() < deadline:  # raises Closed if the server drops us
            got = ws.recv_frame(0.1)
            if got and got[0] == OP_PING:
                ws.send(got[1], OP_PONG)  # the same payload back
                pongs += 1
            texts += bool(got and got[0] == OP_TEXT)
        assert pongs >= 3 and texts > 0
        ws.send(b"still there?", OP_PING)
        answer = ws.recv_frame(2.0)
        while answer and answer[0] != OP_PONG:
            answer = ws.recv_frame(2.0)
        assert answer == (OP_PONG, b"still there?")


def test_connections_are_closed_at_their_maximum_lifetime():
    with Simulator(config(max_lifetime_s=1.0, ping_interval_s=20.0)) as s:
        ws = connect(s, "/ws/btcusdt@trade")
        started = time.monotonic()
        try:
            frames = collect(ws, 5)
        finally:
            ws.close()
    assert frames[-1][0] == OP_CLOSE and close_code(frames[-1][1]) == 1000
    assert 0.9 <= time.monotonic() - started <= 4.0
    assert len(messages(frames)) > 5  # data flowed until the cut


def close_frame_then_eof(ws: RawWebSocket, reply: bool) -> tuple[int, float]:
    """Read up to the server's close frame (answering it when ``reply``); (its code, seconds from it to EOF)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        got = ws.recv_frame(deadline - time.monotonic())
        if got and got[0] == OP_CLOSE:
            closed_at = time.monotonic()
            if reply:
                ws.send(got[1][:2], OP_CLOSE)
            with pytest.raises(Closed):
                while time.monotonic() - closed_at < 5:
                    got_after = ws.recv_frame(0.2)
                    assert got_after is None, "data after the close frame"
            return close_code(got[1]), time.monotonic() - closed_at
    raise AssertionError("no close frame")


def test_a_server_close_waits_for_the_clients_close_frame():
    with Simulator(config(max_lifetime_s=0.5, ping_interval_s=20.0)) as s:
        with RawWebSocket(s.host, s.port, "/ws/btcusdt@trade") as ws:
            code, to_eof = close_frame_then_eof(ws, reply=True)
        assert code == 1000 and to_eof < 1.0  # the handshake completes: the server closes TCP right away
        with RawWebSocket(s.host, s.port, "/ws/btcusdt@trade") as ws:
            code, to_eof = close_frame_then_eof(ws, reply=False)
        assert code == 1000 and 1.5 <= to_eof <= 4.0  # a silent client is cut off after the close timeout


def request(ws, payload, seconds: float = 3.0) -> tuple[dict, list[dict]]:
    """Send one control message; (its answer, the data events seen meanwhile)."""
    ws.send(payload if isinstance(payload, str) else json.dumps(payload))
    events, deadline = [], time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        ws.settimeout(remaining)
        opcode, frame = ws.recv_data_frame()
        assert opcode == OP_TEXT
        msg = json.loads(frame.data)
        if "result" in msg or "code" in msg:
            return msg, events
        events.append(msg)
    raise AssertionError(f"no answer to {payload!r}")


def test_subscribe_list_unsubscribe_and_control_errors(calm):
    ws = connect(calm, "/ws")
    try:
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})[0] == {"result": [], "id": 1}
        time.sleep(0.25)
        assert request(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade", "ethusdt@aggTrade"], "id": 2})[0] == {
            "result": None,
            "id": 2,
        }
        events = messages(collect(ws, 5, until=lambda f: {json.loads(d)["e"] for _, d in f} >= {"trade", "aggTrade"}))
        assert {e["e"] for e in events} == {"trade", "aggTrade"}
        answer, _ = request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
        assert answer == {"result": ["btcusdt@trade", "ethusdt@aggTrade"], "id": 3}
        time.sleep(0.25)
        assert request(ws, {"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 4})[0] == {
            "result": None,
            "id": 4,
        }
        collect(ws, 0.2)
        after = messages(collect(ws, 1.0))
        assert [e for e in after if e["e"] == "trade"] == []
        assert len([e for e in after if e["e"] == "aggTrade"]) >= 2
        answer, _ = request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 5})
        assert answer == {"result": ["ethusdt@aggTrade"], "id": 5}
        time.sleep(0.3)
        answer, _ = request(ws, "{not json")
        assert answer["code"] == 3 and answer["msg"]
        answer, _ = request(ws, {"method": "FROBNICATE", "params": [], "id": 7})
        assert answer["code"] == 2 and answer["id"] == 7 and "FROBNICATE" in answer["msg"]
        time.sleep(0.3)
        too_many = [f"s{i}usdt@trade" for i in range(1025)]
        answer, _ = request(ws, {"method": "SUBSCRIBE", "params": too_many, "id": 8})
        assert answer["code"] == 2 and answer["id"] == 8
        answer, _ = request(ws, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 9})
        assert answer == {"result": None, "id": 9}
        wrapped = messages(collect(ws, 3, until=lambda f: len(f) >= 1))
        assert wrapped[0]["stream"] == "ethusdt@aggTrade" and wrapped[0]["data"]["e"] == "aggTrade"
    finally:
        ws.close()


def test_more_than_five_messages_a_second_disconnects(calm):
    ws = connect(calm, "/ws")
    try:
        for i in range(5):
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        answers = messages(collect(ws, 2, until=lambda f: len(f) >= 5))
        assert [a["id"] for a in answers] == list(range(5))
        time.sleep(1.05)  # a new second: five more are fine
        for i in range(5, 10):
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        answers = messages(collect(ws, 2, until=lambda f: len(f) >= 5))
        assert [a["id"] for a in answers] == list(range(5, 10))
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10}))  # the sixth within a second
        frames = collect(ws, 2)
        assert frames and frames[-1][0] == OP_CLOSE and close_code(frames[-1][1]) == 1008
        assert messages(frames) == []
    finally:
        ws.close()


def test_ground_truth_endpoint_equals_trades_between(calm):
    now = now_ms()
    start, end = now - 90_000 + 123, now - 30_000 + 456
    r = http(calm, "/_sim/trades", {"symbol": "BTCUSDT", "startTime": start, "endTime": end})
    assert r.status == 200 and "x-mbx-used-weight-1m" not in r.headers
    rows = r.json()
    truth = calm.trades_between("BTCUSDT", start, end)
    assert len(rows) == len(truth) > 1000
    assert [(x["id"], x["price"], x["qty"], x["time"], x["isBuyerMaker"]) for x in rows] == [
        (i, units_to_decimal(p), units_to_decimal(q), t, m)
        for i, p, q, t, m in zip(
            truth.id.tolist(),
            truth.price.tolist(),
            truth.qty.tolist(),
            truth.time.tolist(),
            truth.is_buyer_maker.tolist(),
        )
    ]
    assert start <= rows[0]["time"] and rows[-1]["time"] < end
    assert http(calm, "/_sim/trades", {"symbol": "NOPEUSDT", "startTime": start, "endTime": end}).status == 400
