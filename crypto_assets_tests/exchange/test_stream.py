"""BinanceStream against the real simulator: for each fault, the records delivered plus a REST backfill of the id
gaps equal the simulator's ground truth exactly, and every gap is announced (Disconnected or MalformedFrame)."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
import requests
import websocket

from binance_simulator import Simulator, SimulatorConfig, StreamSettings, symbol_config
from binance_simulator.market import units_to_decimal
from crypto_assets.exchange.models import (
    Connected,
    Disconnected,
    Kline,
    MalformedFrame,
    Trade,
    parse_rest_trades,
)
from crypto_assets.exchange.stream import AttemptWindow, BinanceStream, stream_url
from crypto_assets_tests.simulator._support import ManualClock

pytestmark = pytest.mark.integration

FAST = {"backoff_initial_s": 0.1, "backoff_max_s": 0.4}  # reconnect delays that fit in a test


def config(rate: float = 200.0, **stream) -> SimulatorConfig:
    settings = {"ping_interval_s": 0.5, "pong_timeout_s": 30.0, **stream}
    # No quiet minutes: trades must flow at every moment; 200/s makes a gap at every reconnect certain.
    symbols = [
        symbol_config("ETHUSDT", quiet_minute_probability=0.0, trades_per_second=rate),
        symbol_config("BTCUSDT", quiet_minute_probability=0.0, trades_per_second=rate),
    ]
    return SimulatorConfig(symbols=symbols, history_minutes=2, stream=StreamSettings(**settings))


@pytest.fixture
def sim():
    with Simulator(config()) as s:
        yield s


class Capture:
    """Runs ``stream.records()`` in a thread, keeping every record with the monotonic time it arrived."""

    def __init__(self, stream: BinanceStream):
        self.stream = stream
        self.records: list = []
        self.times: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for record in self.stream.records():
            self.records.append(record)
            self.times.append(time.monotonic())

    def of(self, kind) -> list:
        return [r for r in list(self.records) if type(r) is kind]

    def wait(self, condition, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "timed out waiting on the stream"
            time.sleep(0.01)

    def wait_trades(self, n: int, seconds: float = 10.0) -> None:
        start = self.stream.stats.trades
        self.wait(lambda: self.stream.stats.trades >= start + n, seconds)

    def wait_connects(self, n: int, seconds: float = 10.0) -> None:
        self.wait(lambda: self.stream.stats.connects >= n, seconds)

    def stop(self) -> list:
        self.stream.close()
        self._thread.join(10)
        assert not self._thread.is_alive(), "records() did not end after close()"
        return self.records


def capture(sim, symbols=("ETHUSDT", "BTCUSDT"), **options) -> Capture:
    return Capture(BinanceStream(sim.ws_url, list(symbols), **{**FAST, **options}))


# ---- ground truth --------------------------------------------------------------------------------------------------
def rest_backfill(sim, symbol: str, first_id: int, last_id: int) -> list[Trade]:
    """Trades first_id..last_id from ``GET /api/v3/historicalTrades``, paging by id."""
    out: list[Trade] = []
    next_id = first_id
    while next_id <= last_id:
        r = requests.get(
            sim.rest_url + "/api/v3/historicalTrades",
            params={"symbol": symbol, "fromId": next_id, "limit": 1000},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        page = parse_rest_trades(symbol, r.content)
        assert page, f"no trades from id {next_id}"
        out += [t for t in page if t.trade_id <= last_id]
        next_id = page[-1].trade_id + 1
    return out


def key(t: Trade) -> tuple:
    return (t.trade_id, t.price, t.qty, t.trade_time, t.is_buyer_maker)


def id_gaps(ids: list[int]) -> list[tuple[int, int]]:
    return [(a + 1, b - 1) for a, b in zip(ids, ids[1:]) if b != a + 1]


def check_continuity(records: list) -> None:
    """Connected / Disconnected alternate (first Connected, last Disconnected), no trade outside a connection, and
    every id jump of a symbol is announced by a Disconnected or a MalformedFrame of that symbol."""
    events = [r for r in records if type(r) in (Connected, Disconnected)]
    assert events and type(events[0]) is Connected and type(events[-1]) is Disconnected
    assert all(type(a) is not type(b) for a, b in zip(events, events[1:])), "Connected/Disconnected do not alternate"
    connected = False
    last_id: dict[str, int] = {}
    announced: dict[str, bool] = {}
    for r in records:
        kind = type(r)
        if kind is Connected:
            connected = True
        elif kind is Disconnected:
            connected = False
            announced = dict.fromkeys(announced, True)
        elif kind is MalformedFrame:
            announced = {s: True if r.symbol in (None, s) else v for s, v in announced.items()}
        elif kind is Trade:
            assert connected, "a trade outside a connection"
            prev = last_id.get(r.symbol)
            if prev is not None and r.trade_id != prev + 1:
                assert r.trade_id > prev, f"{r.symbol} ids went back from {prev} to {r.trade_id}"
                assert announced[r.symbol], f"{r.symbol} ids jump {prev} -> {r.trade_id} without an announcement"
            last_id[r.symbol] = r.trade_id
            announced[r.symbol] = False


def check_against_truth(sim, records: list, symbol: str) -> list[tuple[int, int]]:
    """Stream trades + REST backfill of their id gaps == the simulator's trades over the observed id range, exactly.
    Returns the gaps that needed the backfill."""
    trades = [r for r in records if type(r) is Trade and r.symbol == symbol]
    assert len(trades) > 20, f"too few {symbol} trades to judge"
    ids = [t.trade_id for t in trades]
    assert len(ids) == len(set(ids)), "duplicated trades"
    gaps = id_gaps(sorted(ids))
    backfill = [t for a, b in gaps for t in rest_backfill(sim, symbol, a, b)]
    merged = sorted([key(t) for t in trades] + [key(t) for t in backfill])
    first, last = trades[0], max(trades, key=lambda t: t.trade_id)
    truth = sim.trades_between(symbol, first.trade_time, last.trade_time + 1)
    expected = [
        (int(i), units_to_decimal(int(p)), units_to_decimal(int(q)), int(tm), bool(m))
        for i, p, q, tm, m in zip(truth.id, truth.price, truth.qty, truth.time, truth.is_buyer_maker)
        if first.trade_id <= i <= last.trade_id
    ]
    assert len(merged) == len(expected), f"{len(merged)} trades after backfill, the exchange had {len(expected)}"
    assert merged == expected
    assert all(t.received_at is not None for t in trades)
    return gaps


def disconnects(records: list, starting: str = "") -> list[Disconnected]:
    return [r for r in records if type(r) is Disconnected and r.reason.startswith(starting)]


# ---- healthy stream ------------------------------------------------------------------------------------------------
def test_url_carries_trade_and_kline_streams_of_every_symbol():
    assert stream_url("wss://stream.binance.com:9443/", ["BTCUSDT", "ethusdt"]) == (
        "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/btcusdt@kline_1m/ethusdt@trade/ethusdt@kline_1m"
    )
    assert stream_url("ws://h:1", ["BTCUSDT"], klines=False) == "ws://h:1/stream?streams=btcusdt@trade"


def test_a_healthy_stream_is_contiguous_and_answers_pings(sim, monkeypatch):
    # The server pings every 0.3 s (payload: its clock in ms) and drops a client that leaves a ping unanswered for 1 s.
    sim.hub.settings.ping_interval_s, sim.hub.settings.pong_timeout_s = 0.3, 1.0
    pongs, pong = [], websocket.WebSocket.pong
    monkeypatch.setattr(
        websocket.WebSocket, "pong", lambda self, payload="": (pongs.append(payload), pong(self, payload))
    )
    cap = capture(sim)
    cap.wait_trades(100)
    time.sleep(2.5)
    records = cap.stop()
    check_continuity(records)
    assert [type(r) for r in records if type(r) in (Connected, Disconnected)] == [Connected, Disconnected]
    assert disconnects(records)[0].reason == "closed"
    for symbol in ("ETHUSDT", "BTCUSDT"):
        assert check_against_truth(sim, records, symbol) == []  # nothing to backfill
    stats = cap.stream.stats
    assert stats.trades == len(cap.of(Trade)) and stats.malformed == 0
    assert (stats.attempts, stats.connects, stats.reconnects) == (1, 1, 0)
    assert len(pongs) >= 6  # each with the ping's payload, the server's clock when it pinged
    assert all(isinstance(p, bytes) and abs(int(p) - sim.clock()) < 10_000 for p in pongs)
    assert (
        cap.of(Connected)[0].url
        == sim.ws_url + "/stream?streams=ethusdt@trade/ethusdt@kline_1m/btcusdt@trade/btcusdt@kline_1m"
    )


def test_pings_alone_keep_a_quiet_connection_alive(sim):
    sim.hub.settings.ping_interval_s = 0.3
    sim.pause_symbol("ETHUSDT")
    sim.pause_symbol("BTCUSDT")
    cap = capture(sim, silence_timeout_s=1.0)
    cap.wait_connects(1)
    time.sleep(2.5)  # no data at all, but a ping every 0.3 s
    records = cap.stop()
    assert [type(r) for r in records] == [Connected, Disconnected]
    assert cap.stream.stats.connects == 1


# ---- faults --------------------------------------------------------------------------------------------------------
def test_drop_storm(sim):
    cap = capture(sim)
    cap.wait_trades(50)
    time.sleep(1.0)
    drops = 0
    for n in range(4):  # four drops in a row, each as soon as the stream is back
        cap.wait_connects(n + 1)
        cap.wait_trades(5)
        drops += sim.drop_connections()
    cap.wait_connects(5)
    cap.wait_trades(50)
    time.sleep(1.0)
    records = cap.stop()
    check_continuity(records)
    assert drops == 4
    assert len(disconnects(records, "connection lost")) == 4
    assert len(cap.of(Connected)) == 5
    gaps = check_against_truth(sim, records, "ETHUSDT")
    check_against_truth(sim, records, "BTCUSDT")
    assert 1 <= len(gaps) <= 4  # the backoff after a short-lived connection makes gaps certain at 200 trades/s
    stats = cap.stream.stats
    assert stats.attempts == stats.connects == 5 and stats.reconnects == 4 and stats.disconnects == 5


def test_half_open_connection_is_detected_and_replaced(sim):
    cap = capture(sim, silence_timeout_s=1.0)
    cap.wait_trades(50)
    time.sleep(1.0)
    injected = time.monotonic()
    assert sim.half_open() == 1  # silent forever: no data, no pings, no close
    cap.wait_connects(2, seconds=5)
    cap.wait_trades(50)
    time.sleep(1.0)
    records = cap.stop()
    check_continuity(records)
    lost = disconnects(records, "silent")
    assert len(lost) == 1 and "half-open" in lost[0].reason
    detected = cap.times[records.index(lost[0])]
    assert 0.9 <= detected - injected <= 3.0
    assert len(check_against_truth(sim, records, "ETHUSDT")) == 1
    check_against_truth(sim, records, "BTCUSDT")


def test_server_shutdown_reconnects_at_once(sim):
    cap = capture(sim)
    cap.wait_trades(50)
    time.sleep(1.0)
    injected = time.monotonic()
    assert sim.server_shutdown(grace_s=3.0) == 1
    cap.wait_connects(2, seconds=5)
    reconnected = time.monotonic()
    cap.wait_trades(50)
    time.sleep(1.0)
    records = cap.stop()
    check_continuity(records)
    assert [d.reason for d in disconnects(records)] == ["server shutdown", "closed"]
    assert reconnected - injected < 1.5  # long before the server closes (3 s grace)
    check_against_truth(sim, records, "ETHUSDT")
    check_against_truth(sim, records, "BTCUSDT")


def test_connection_is_renewed_at_max_age(sim):
    cap = capture(sim, max_age_s=0.7)
    cap.wait_connects(4, seconds=6)
    records = cap.stop()
    check_continuity(records)
    renewals = disconnects(records, "renewal")
    assert len(renewals) >= 3 and all(d.reason == "renewal" for d in renewals)
    check_against_truth(sim, records, "ETHUSDT")
    check_against_truth(sim, records, "BTCUSDT")


def test_malformed_frames_are_reported_with_their_symbol_and_never_break_the_stream(sim, caplog):
    caplog.set_level(logging.WARNING, "crypto_assets.exchange.stream")
    cap = capture(sim)
    cap.wait_trades(50)
    time.sleep(1.0)
    sim.send_malformed("ETHUSDT", count=10)  # every kind twice: truncated, not-json, wrong-type, missing-field, binary
    cap.wait(lambda: cap.stream.stats.malformed >= 10)
    cap.wait_trades(50)
    time.sleep(1.0)
    records = cap.stop()
    check_continuity(records)
    bad = cap.of(MalformedFrame)
    assert len(bad) == 10 and cap.stream.stats.malformed == 10
    assert all(m.symbol == "ETHUSDT" and m.error and m.frame for m in bad)
    assert sum("binary" in m.error for m in bad) == 2 and sum("<html>" in m.frame for m in bad) == 2
    assert [d.reason for d in disconnects(records)] == ["closed"]  # the connection survived them all
    gaps = check_against_truth(sim, records, "ETHUSDT")
    assert sum(b - a + 1 for a, b in gaps) == 10  # each malformed frame took one trade's place
    assert check_against_truth(sim, records, "BTCUSDT") == []
    logged = [r.getMessage() for r in caplog.records if "malformed frame" in r.getMessage()]
    assert len(logged) == 10 and all("ETHUSDT" in m and sim.ws_url in m for m in logged)
    assert any("502 Bad Gateway" in m for m in logged)


# ---- connecting: backoff and the attempt cap ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_exchange_backs_off_instead_of_looping(caplog):
    caplog.set_level(logging.WARNING, "crypto_assets.exchange.stream")
    url = f"ws://127.0.0.1:{free_port()}"
    cap = Capture(BinanceStream(url, ["BTCUSDT"], backoff_initial_s=0.1, backoff_max_s=1.0))
    time.sleep(3.0)
    started = time.monotonic()
    records = cap.stop()
    assert time.monotonic() - started < 1.0  # close() ends the backoff wait at once
    assert records == []
    attempts = cap.stream.stats.attempts
    # delays of 0.05-0.1, 0.1-0.2, 0.2-0.4, 0.4-0.8, 0.5-1 s ...: about 6 attempts in 3 s, never a tight loop
    assert 3 <= attempts <= 9, attempts
    refused = [r.getMessage() for r in caplog.records if "cannot connect" in r.getMessage()]
    assert len(refused) == attempts and all(url + "/stream?streams=btcusdt@trade" in m for m in refused)


def test_attempt_cap_holds_while_the_exchange_drops_every_connection(sim, caplog):
    caplog.set_level(logging.WARNING, "crypto_assets.exchange.stream")
    cap = capture(sim, max_attempts=5, attempt_window_s=300.0, backoff_initial_s=0.01, backoff_max_s=0.02)
    stop = threading.Event()

    def dropper():
        while not stop.is_set():
            sim.drop_connections()
            time.sleep(0.02)

    thread = threading.Thread(target=dropper, daemon=True)
    thread.start()
    time.sleep(2.0)
    stop.set()
    thread.join(5)
    records = cap.stop()
    check_continuity(records)
    assert cap.stream.stats.attempts == 5  # then it waits for the window instead of hammering
    assert any("own cap" in r.getMessage() for r in caplog.records)


def test_attempt_window_slides():
    now = [0.0]
    window = AttemptWindow(3, 10.0, clock=lambda: now[0])
    for t in (0.0, 1.0, 2.0):
        now[0] = t
        assert window.wait_s() == 0
        window.record()
    assert window.wait_s() == pytest.approx(8.0)
    now[0] = 10.0
    assert window.wait_s() == 0 and len(window) == 2


def test_own_cap_may_not_exceed_binance_limit():
    with pytest.raises(ValueError, match="300"):
        BinanceStream("ws://x", ["BTCUSDT"], max_attempts=301)
    with pytest.raises(ValueError, match="300"):
        BinanceStream("ws://x", ["BTCUSDT"], max_attempts=100, attempt_window_s=60)


def test_backoff_doubles_with_jitter_up_to_the_bound():
    (connection,) = BinanceStream("ws://x", ["BTCUSDT"], backoff_initial_s=0.5, backoff_max_s=4.0).connections
    assert connection.backoff_s() == 0  # the first attempt, or the first after a healthy connection
    for failures, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0), (1000, 4.0)]:
        connection.failures = failures
        delays = [connection.backoff_s() for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered


# ---- klines --------------------------------------------------------------------------------------------------------
def test_closed_klines_arrive_and_open_updates_are_dropped():
    start = (time.time_ns() // 1_000_000 // 60_000) * 60_000 + 30_000
    clock = ManualClock(start)
    cfg = SimulatorConfig(
        symbols=[symbol_config("ETHUSDT", quiet_minute_probability=0.0, trades_per_second=50.0)],
        history_minutes=2,
        stream=StreamSettings(ping_interval_s=1000.0),
    )
    with Simulator(cfg, clock=clock) as sim:
        cap = capture(sim, ["ETHUSDT"], silence_timeout_s=10.0)
        cap.wait_connects(1)
        time.sleep(0.2)
        for _ in range(8):  # 80 simulated seconds: open-kline pushes every 2 s, one minute closes on the way
            clock.advance(10_000)
            time.sleep(0.1)
        cap.wait(lambda: cap.stream.stats.klines >= 1)
        time.sleep(0.2)
        records = cap.stop()
        check_continuity(records)
        klines = cap.of(Kline)
        assert len(klines) == 1 and cap.stream.stats.klines == 1
        k = klines[0]
        assert (k.symbol, k.open_time, k.close_time) == ("ETHUSDT", start + 30_000 - 60_000, start + 29_999)
        truth = sim.trades_between("ETHUSDT", k.open_time, k.close_time + 1)
        assert (k.first_trade_id, k.last_trade_id, k.trade_count) == (int(truth.id[0]), int(truth.id[-1]), len(truth))
        seen = [t.trade_id for t in cap.of(Trade) if k.open_time <= t.trade_time <= k.close_time]
        assert seen == list(range(seen[0], k.last_trade_id + 1))  # the minute's trades since we connected, dense
        check_against_truth(sim, records, "ETHUSDT")


# ---- several connections ---------------------------------------------------------------------------------------
def of_connection(records: list, symbols: tuple[str, ...]) -> list:
    """The records one connection delivered: its Connected / Disconnected / unreadable MalformedFrame (they name
    its symbols) and its symbols' trades, klines and malformed frames."""
    out = []
    for r in records:
        kind = type(r)
        if kind in (Connected, Disconnected):
            if r.symbols == symbols:
                out.append(r)
        elif kind is MalformedFrame:
            if r.symbol in symbols or (r.symbol is None and r.symbols == symbols):
                out.append(r)
        elif r.symbol in symbols:
            out.append(r)
    return out


def test_symbols_are_spread_over_connections_of_at_most_symbols_per_connection():
    symbols = ["AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT", "EEEUSDT"]
    stream = BinanceStream("ws://h:1", symbols, symbols_per_connection=2)
    assert [c.symbols for c in stream.connections] == [
        ("AAAUSDT", "BBBUSDT"),
        ("CCCUSDT", "DDDUSDT"),
        ("EEEUSDT",),
    ]
    assert [c.url for c in stream.connections] == [
        stream_url("ws://h:1", ["AAAUSDT", "BBBUSDT"]),
        stream_url("ws://h:1", ["CCCUSDT", "DDDUSDT"]),
        stream_url("ws://h:1", ["EEEUSDT"]),
    ]
    # several connections are paced: one attempt per window / max_attempts at most; one alone is not
    assert stream.attempts.min_interval_s == pytest.approx(300.0 / 60)
    assert BinanceStream("ws://h:1", symbols).attempts.min_interval_s == 0
    assert len(BinanceStream("ws://h:1", [f"S{n:04d}USDT" for n in range(1300)]).connections) == 3  # 512 each
    for bad in (0, 513):
        with pytest.raises(ValueError, match="symbols_per_connection"):
            BinanceStream("ws://h:1", symbols, symbols_per_connection=bad)
    assert len(BinanceStream("ws://h:1", symbols, symbols_per_connection=1024, klines=False).connections) == 1


def test_attempt_window_paces_attempts_across_threads():
    now = [0.0]
    window = AttemptWindow(60, 300.0, clock=lambda: now[0], min_interval_s=5.0)
    assert window.take() and not window.take()  # the second must wait for the pacing
    assert window.pace_s() == pytest.approx(5.0) and window.wait_s() == 0
    now[0] = 4.9
    assert not window.take()
    now[0] = 5.0
    assert window.take() and len(window) == 2
    # many threads asking at once: exactly one gets the slot
    now[0] = 10.0
    won = []
    threads = [threading.Thread(target=lambda: won.append(window.take())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won.count(True) == 1


def test_many_connections_starting_together_do_not_burst():
    """Ten connections (one symbol each) against an exchange that refuses them: attempts go out one per
    window / max_attempts (1 s here), never ten at once, and close() ends the waits at once."""
    url = f"ws://127.0.0.1:{free_port()}"
    symbols = [f"{c * 3}USDT" for c in "ABCDEFGHIJ"]
    stream = BinanceStream(
        url, symbols, symbols_per_connection=1, max_attempts=300, attempt_window_s=300.0, backoff_initial_s=0.1
    )
    cap = Capture(stream)
    time.sleep(2.5)
    started = time.monotonic()
    records = cap.stop()
    assert time.monotonic() - started < 3.0
    assert records == []
    assert 2 <= stream.stats.attempts <= 3, stream.stats.attempts  # at 0, 1 and 2 s
    assert all(c.ws is None for c in stream.connections)


def test_two_connections_deliver_every_trade_and_a_drop_of_one_leaves_the_other_untouched(sim):
    cap = capture(sim, symbols_per_connection=1, max_attempts=300, attempt_window_s=300.0)
    cap.wait_connects(2, seconds=5)
    connected = cap.of(Connected)
    assert sorted(c.symbols for c in connected) == [("BTCUSDT",), ("ETHUSDT",)]
    assert sorted(c.url for c in connected) == [
        stream_url(sim.ws_url, ["BTCUSDT"]),
        stream_url(sim.ws_url, ["ETHUSDT"]),
    ]
    # the second connection was opened no sooner than the pacing allows (1 s after the first)
    first, second = (cap.times[cap.records.index(c)] for c in connected)
    assert second - first >= 0.9
    cap.wait_trades(100)
    time.sleep(0.5)
    assert sim.drop_connections("ETHUSDT") == 1
    cap.wait_connects(3, seconds=5)
    cap.wait_trades(100)
    time.sleep(0.5)
    records = cap.stop()
    eth, btc = of_connection(records, ("ETHUSDT",)), of_connection(records, ("BTCUSDT",))
    check_continuity(eth)
    check_continuity(btc)
    assert [d.reason.split(":")[0] for d in disconnects(eth)] == ["connection lost", "closed"]
    assert [type(r) for r in btc if type(r) in (Connected, Disconnected)] == [Connected, Disconnected]
    assert disconnects(btc)[0].reason == "closed"
    assert check_against_truth(sim, records, "BTCUSDT") == []  # the other connection never missed a trade
    assert len(check_against_truth(sim, records, "ETHUSDT")) <= 1  # at most the drop's hole, filled from REST
    stats = cap.stream.stats
    assert (stats.connects, stats.reconnects, stats.disconnects) == (3, 1, 3)
    assert stats.trades == len(cap.of(Trade))
    assert all(c.ws is None for c in cap.stream.connections)
