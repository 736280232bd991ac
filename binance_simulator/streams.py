"""WebSocket market streams: sessions, live (UN)SUBSCRIBE, pings, the 24 h cut, and the pump that fans trades out.

One pump task runs every ``tick_ms``. For every symbol with at least one subscriber it reveals the trades whose
trade time has passed (minus any injected stream latency), encodes each payload once, and writes every session's
share as one buffer. Per-symbol cursors are shared by all sessions: a session sees the trades that happen while it
is subscribed, exactly as on Binance. A symbol whose current second holds no trade costs nothing more until the next
second, so that hundreds of quiet symbols stay cheap. A stream of a symbol not listed yet carries nothing until it is
listed, then its first trade; a symbol removed after its delisting stops carrying anything; a halted one keeps its
klines (without trades).

Binance's connection rules: at most ``MAX_STREAMS`` streams a connection (a ``/stream?streams=`` URL with more is
refused with HTTP 400, a SUBSCRIBE beyond it answered with an error), at most ``MAX_INCOMING_PER_SECOND`` incoming
messages a second (pings, pongs and JSON control messages alike; one more closes the connection with 1008); the
connection attempts per IP are ``rate_limits.ConnectionAttemptLimiter``.

In hostile mode (``set_hostile``) every session also carries a planned cut (``hostile.ConnectionCutter``): when its
time comes the keepalive pass drops it, silences it for good (half-open) or sends ``serverShutdown`` and closes it a
few seconds later. ``cuts`` keeps a record of each cut made.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from binance_simulator import payloads, wire
from binance_simulator.endpoints import (
    AGG_TRADE_CHANNEL,
    KLINE_1M_CHANNEL,
    MINUTE_MS,
    STREAM_CHANNELS,
    TRADE_CHANNEL,
)
from binance_simulator.faults import Faults, corrupt
from binance_simulator.hostile import ConnectionCutter, Cut
from binance_simulator.market import EMPTY_TRADES, Market

log = logging.getLogger(__name__)

STREAM_RE = re.compile(rf"^([a-z0-9]{{1,20}})@({'|'.join(STREAM_CHANNELS)})$")
MAX_STREAMS = 1024
MAX_INCOMING_PER_SECOND = 5
MAX_BUFFERED_BYTES = 64 * 1024 * 1024  # a client this far behind is dropped, as Binance drops slow consumers
KLINE_PUSH_MS = 2000
CLOSE_TIMEOUT_S = 2.0  # how long a server-initiated close waits for the client's close frame
_session_ids = itertools.count(1)


@dataclass
class StreamSettings:
    ping_interval_s: float = 20.0
    pong_timeout_s: float = 60.0
    max_lifetime_s: float = 24 * 3600.0
    tick_ms: int = 10
    trade_shape: str = "current"


@dataclass
class Session:
    writer: asyncio.StreamWriter
    ip: str
    combined: bool
    connected_ms: int
    streams: list[str] = field(default_factory=list)  # in subscription order (LIST_SUBSCRIPTIONS)
    stream_set: set[str] = field(default_factory=set)
    id: int = field(default_factory=lambda: next(_session_ids))
    half_open: bool = False
    half_open_until_ms: int = 0
    shutdown_at_ms: int = 0
    last_ping_ms: int = 0
    unanswered_ping_since_ms: int = 0
    incoming: collections.deque = field(default_factory=collections.deque)
    closed: bool = False
    sent_messages: int = 0
    cut: Cut | None = None  # hostile mode: how and when the network cuts this connection
    silenced_for_good: bool = False  # cut half-open by hostile mode: it never sends again

    def symbols(self) -> set[str]:
        return {s.split("@", 1)[0].upper() for s in self.streams}

    def write(self, data: bytes) -> None:
        if self.closed or self.half_open:
            return
        transport = self.writer.transport
        if transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
            log.warning("session %s is %d bytes behind: dropping it", self.id, transport.get_write_buffer_size())
            self.abort()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame. The TCP connection ends once the client answers with its own (RFC 6455 closing
        handshake: the read loop then returns), or ``CLOSE_TIMEOUT_S`` later. Closing the socket at once would make
        the client's pong or close reply meet a reset, which can discard frames it has not read yet."""
        if not self.closed:
            self.closed = True
            transport = self.writer.transport
            if not transport.is_closing():
                transport.write(wire.close_frame(code, reason))
                try:
                    asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, transport.close)
                except RuntimeError:  # not on the event loop: no handshake to wait for
                    transport.close()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.closed = True
        self.writer.transport.abort()


@dataclass
class _Cursor:
    next_trade_id: int
    next_agg_id: int | None  # None while nobody watches the symbol's aggTrade stream
    kline_minute: int
    last_kline_push_ms: int
    idle_s: int = -1  # every trade up to the end of this second is out (the second holds none)


class StreamHub:
    def __init__(self, market: Market, faults: Faults, clock: Callable[[], int], settings: StreamSettings):
        self.market = market
        self.faults = faults
        self.clock = clock
        self.settings = settings
        self.sessions: dict[int, Session] = {}
        self._cursors: dict[str, _Cursor] = {}
        self._watched_streams: set[str] = set()
        self._watch_dirty = False  # subscriptions changed since _refresh_watch
        self._seen_symbols: dict | None = None  # the market's symbols as _refresh_watch saw them
        self._pump_task: asyncio.Task | None = None
        self.malformed_sent = 0
        self.cutter: ConnectionCutter | None = None  # hostile mode on
        self.cuts: collections.deque[dict] = collections.deque(maxlen=10_000)  # the cuts made, oldest first

    # ---- sessions -----------------------------------------------------------------------------------------------
    async def serve(
        self, request: wire.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str
    ) -> None:
        """Run one WebSocket session until it ends. The handshake has been answered already."""
        now = self.clock()
        requested = requested_streams(request)
        if requested is None:
            writer.write(wire.close_frame(1008, "unknown path"))
            writer.close()
            return
        streams, combined = requested
        session = Session(writer, ip, combined, now, last_ping_ms=now)
        if self.cutter is not None:
            session.cut = self.cutter.plan(now)
        self.sessions[session.id] = session
        self._subscribe(session, streams)
        self._ensure_pump()
        try:
            await self._read_loop(session, reader)
        except (asyncio.IncompleteReadError, ConnectionError, wire.BadRequest):
            pass
        finally:
            session.closed = True
            self.sessions.pop(session.id, None)
            self._watch_dirty = True
            if not writer.transport.is_closing():
                writer.transport.close()

    async def _read_loop(self, session: Session, reader: asyncio.StreamReader) -> None:
        while True:  # until the client's close frame or EOF (a server-initiated close waits for the former)
            opcode, data = await wire.read_frame(reader)
            if session.half_open:
                continue  # a half-open peer hears nothing and answers nothing
            now = self.clock()
            if opcode == wire.OP_CLOSE:
                session.close(1000)
                return
            if session.closed:
                continue  # closing: only the client's close frame matters now
            session.incoming.append(now)
            while session.incoming and session.incoming[0] <= now - 1000:
                session.incoming.popleft()
            if len(session.incoming) > MAX_INCOMING_PER_SECOND:
                log.info(
                    "session %s sent more than %d messages in a second: disconnecting",
                    session.id,
                    MAX_INCOMING_PER_SECOND,
                )
                session.close(1008, "Too many requests")
                continue
            if opcode == wire.OP_PING:
                session.write(wire.frame(data, wire.OP_PONG))
            elif opcode == wire.OP_PONG:
                session.unanswered_ping_since_ms = 0
            elif opcode == wire.OP_TEXT:
                session.write(wire.frame(self._control(session, data)))

    def _control(self, session: Session, data: bytes) -> bytes:
        """Answer one SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY message."""
        try:
            msg = json.loads(data)
        except ValueError as exc:
            return _error(3, f"Invalid JSON: {exc}")
        if not isinstance(msg, dict):
            return _error(2, "Invalid request: expected a JSON object")
        req_id = msg.get("id")
        if not (
            req_id is None
            or (isinstance(req_id, int) and not isinstance(req_id, bool) and -(2**63) <= req_id < 2**63)
            or (isinstance(req_id, str) and re.fullmatch(r"[A-Za-z0-9]{1,36}", req_id))
        ):
            return _error(2, "Invalid request: request ID must be an unsigned integer")
        method = msg.get("method")
        if method is None:
            return _error(2, "Invalid request: missing field `method`")
        params = msg.get("params", [])
        if not isinstance(params, list):
            return _error(2, "Invalid request: params must be an array")
        result: object = None
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not all(isinstance(p, str) for p in params):
                return _error(2, "Invalid request: stream names must be strings", req_id)
            if method == "SUBSCRIBE":
                if len(set(session.streams) | set(params)) > MAX_STREAMS:
                    return _error(
                        2, f"Invalid request: a connection can listen to at most {MAX_STREAMS} streams", req_id
                    )
                self._subscribe(session, params)
            else:
                session.streams = [s for s in session.streams if s not in params]
                session.stream_set.difference_update(params)
                self._refresh_watch()
        elif method == "LIST_SUBSCRIPTIONS":
            result = list(session.streams)
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not params or params[0] != "combined":
                return json.dumps({"code": 0, "msg": "Unknown property", "id": req_id}).encode()
            if method == "GET_PROPERTY":
                result = session.combined
            elif len(params) != 2 or not isinstance(params[1], bool):
                return _error(1, "Invalid value type: expected Boolean", req_id)
            else:
                session.combined = params[1]
        else:
            return _error(
                2,
                f"Invalid request: unknown variant {method}, expected one of `SUBSCRIBE`, "
                "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
                req_id,
            )
        return json.dumps({"result": result, "id": req_id}, separators=(",", ":")).encode()

    def _subscribe(self, session: Session, streams: list[str]) -> None:
        # Like Binance, any name is accepted; names of unknown symbols or stream types simply carry no data (a symbol
        # listed later carries its trades from its listing on).
        for s in streams:
            if s not in session.stream_set:
                session.streams.append(s)
                session.stream_set.add(s)
        self._refresh_watch()

    def _refresh_watch(self) -> None:
        """The streams someone watches, and a cursor for each watched symbol the exchange knows (from now on)."""
        self._watch_dirty = False
        self._seen_symbols = self.market.symbols
        self._watched_streams = set().union(*(s.stream_set for s in self.sessions.values() if not s.closed))
        watched = {s.split("@", 1)[0].upper() for s in self._watched_streams}
        for symbol in list(self._cursors):
            if symbol not in watched or symbol not in self.market:
                del self._cursors[symbol]
        until = self.clock() - self.faults.stream_latency_ms
        for symbol in watched - self._cursors.keys():
            if symbol in self.market:
                self._cursors[symbol] = _Cursor(
                    next_trade_id=self.market[symbol].last_trade_id_at(until) + 1,
                    next_agg_id=None,
                    kline_minute=until // MINUTE_MS,
                    last_kline_push_ms=0,
                )

    # ---- the pump -----------------------------------------------------------------------------------------------
    def _ensure_pump(self) -> None:
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        tick = self.settings.tick_ms / 1000
        while self.sessions:
            try:
                self.pump_once()
            except Exception:  # the pump must survive any one bad tick; the error is logged with its trace
                log.exception("stream pump tick failed")
            await asyncio.sleep(tick)
        self._cursors.clear()
        self._watched_streams = set()

    def pump_once(self) -> None:
        now = self.clock()
        self._keepalive(now)
        if self._watch_dirty or self.market.symbols is not self._seen_symbols:
            self._refresh_watch()
        until = now - self.faults.stream_latency_ms
        second = until // 1000
        out: dict[str, list[bytes]] = {}
        malformed: dict[str, list[tuple[bytes, bool]]] = {}  # stream -> (payload, is_binary), oldest first
        for symbol, cur in list(self._cursors.items()):
            if symbol not in self.market:  # removed after its delisting
                del self._cursors[symbol]
                continue
            m = self.market[symbol]
            low = symbol.lower()
            trade_stream, agg_stream = f"{low}@{TRADE_CHANNEL}", f"{low}@{AGG_TRADE_CHANNEL}"
            idle = cur.idle_s == second
            trades = EMPTY_TRADES if idle else m.trades_from_id(cur.next_trade_id, 1_000_000, until)
            if len(trades):
                cur.next_trade_id = int(trades.id[-1]) + 1
            aggs = None
            if self._watched(agg_stream):
                if cur.next_agg_id is None:
                    cur.next_agg_id = m.last_agg_id_at(until) + 1
                if not idle:
                    aggs = m.aggs_from_id(cur.next_agg_id, 1_000_000, until)
                    if len(aggs):
                        cur.next_agg_id = int(aggs.agg_id[-1]) + 1
            else:
                cur.next_agg_id = None
            if not idle and m.trades_in_second(second) == 0:
                cur.idle_s = second
            klines = self._klines_due(symbol, cur, until)
            if self.faults.is_paused(symbol, now):
                continue  # the stream skips what trades while paused: ids jump when it resumes
            if len(trades) and self._watched(trade_stream):
                events = list(payloads.trade_events(symbol, trades, now, self.settings.trade_shape))
                payloads.with_bad_values(events, trades, self.faults.bad_values.get(symbol), payloads.STREAM_KEYS)
                bad = self.faults.malformed_left.get(symbol)
                while bad and events:  # each malformed frame replaces one real trade, oldest first
                    malformed.setdefault(trade_stream, []).append(corrupt(events.pop(0), bad.pop(0)))
                    self.malformed_sent += 1
                out.setdefault(trade_stream, []).extend(events)
            if aggs is not None and len(aggs):
                out[agg_stream] = list(payloads.agg_trade_events(symbol, aggs, now))
            if klines:
                out[f"{low}@{KLINE_1M_CHANNEL}"] = klines
        if out or malformed:
            self._fan_out(out, malformed)

    def _klines_due(self, symbol: str, cur: _Cursor, until: int) -> list[bytes]:
        """Closed klines of every minute that has ended, then the open one every two seconds."""
        if not self._watched(f"{symbol.lower()}@{KLINE_1M_CHANNEL}"):
            cur.kline_minute = until // MINUTE_MS
            return []
        m = self.market[symbol]
        events = []
        now = self.clock()
        while (cur.kline_minute + 1) * MINUTE_MS <= until:
            events.append(
                payloads.kline_event(symbol, m.kline(cur.kline_minute * MINUTE_MS, MINUTE_MS), now, closed=True)
            )
            cur.kline_minute += 1
            cur.last_kline_push_ms = now
        if now - cur.last_kline_push_ms >= KLINE_PUSH_MS:
            open_ms = cur.kline_minute * MINUTE_MS
            events.append(payloads.kline_event(symbol, m.kline(open_ms, MINUTE_MS, until_ms=until), now, closed=False))
            cur.last_kline_push_ms = now
        return events

    def _watched(self, stream: str) -> bool:
        return stream in self._watched_streams

    def _fan_out(self, out: dict[str, list[bytes]], malformed: dict[str, list[tuple[bytes, bool]]]) -> None:
        encoded: dict[tuple[str, bool], bytes] = {}
        ordered = sorted(out.keys() | malformed.keys(), key=_stream_order)
        for session in list(self.sessions.values()):
            if session.closed or session.half_open:
                continue
            chunks = []
            for stream in ordered:
                if stream not in session.stream_set:
                    continue
                for raw, is_binary in malformed.get(stream, ()):  # in place of the oldest trades: before them
                    chunks.append(
                        wire.frame(
                            payloads.combined(stream, raw) if session.combined else raw,
                            wire.OP_BINARY if is_binary else wire.OP_TEXT,
                        )
                    )
                    session.sent_messages += 1
                if stream in out:
                    key = (stream, session.combined)
                    if key not in encoded:
                        events = out[stream]
                        if session.combined:
                            events = [payloads.combined(stream, e) for e in events]
                        encoded[key] = wire.text_frames(events)
                    chunks.append(encoded[key])
                    session.sent_messages += len(out[stream])
            if chunks:
                session.write(b"".join(chunks))

    def _keepalive(self, now: int) -> None:
        st = self.settings
        for session in list(self.sessions.values()):
            if session.half_open:
                if session.half_open_until_ms and now >= session.half_open_until_ms:
                    session.abort()
                continue
            if session.cut is not None and now >= session.cut.at_ms and not session.closed:
                self._cut(session, now)
            elif now - session.connected_ms >= st.max_lifetime_s * 1000:
                session.close(1000, "connection lifetime reached")
            elif session.shutdown_at_ms and now >= session.shutdown_at_ms:
                session.close(1001, "server shutdown")
            elif (
                session.unanswered_ping_since_ms and now - session.unanswered_ping_since_ms >= st.pong_timeout_s * 1000
            ):
                log.info("session %s did not answer a ping within %ss: disconnecting", session.id, st.pong_timeout_s)
                session.abort()
            elif now - session.last_ping_ms >= st.ping_interval_s * 1000:
                session.write(wire.frame(str(now).encode(), wire.OP_PING))
                session.last_ping_ms = now
                if not session.unanswered_ping_since_ms:
                    session.unanswered_ping_since_ms = now

    # ---- hostile mode ------------------------------------------------------------------------------------------
    def set_hostile(self, seed: int | None) -> int:
        """Hostile network on (with ``seed``) or off (None). On: every live session gets a cut 40-100 s from now,
        every new one 40-100 s from its start. Off: planned cuts are forgotten (sessions already cut stay cut).
        Returns the number of sessions whose plan changed."""
        now = self.clock()
        live = [s for s in self.sessions.values() if not s.closed and not s.silenced_for_good]
        if seed is None:
            self.cutter = None
            for s in live:
                s.cut = None
            return len(live)
        if self.cutter is None or self.cutter.seed != seed:
            self.cutter = ConnectionCutter(seed)
            for s in sorted(live, key=lambda s: s.id):
                s.cut = self.cutter.plan(now)
        return len(live)

    def _cut(self, session: Session, now: int) -> None:
        cut, session.cut = session.cut, None
        self.cuts.append(
            {
                "session": session.id,
                "kind": cut.kind,
                "connected_ms": session.connected_ms,
                "planned_ms": cut.at_ms,
                "cut_ms": now,
                "streams": list(session.streams),
            }
        )
        log.info(
            "hostile network: %s on session %s after %.1f s", cut.kind, session.id, (now - session.connected_ms) / 1000
        )
        if cut.kind == "drop":
            session.abort()
        elif cut.kind == "half_open":
            session.half_open, session.half_open_until_ms, session.silenced_for_good = True, 0, True
        else:
            event = payloads.server_shutdown_event(now)
            session.write(wire.frame(payloads.combined("!serverShutdown", event) if session.combined else event))
            session.shutdown_at_ms = now + cut.grace_ms

    # ---- faults on live connections ----------------------------------------------------------------------------
    def select(self, symbol: str | None) -> list[Session]:
        return [s for s in self.sessions.values() if not s.closed and (symbol is None or symbol in s.symbols())]

    def drop(self, symbol: str | None = None) -> int:
        chosen = self.select(symbol)
        for s in chosen:
            s.abort()
        return len(chosen)

    def half_open(self, symbol: str | None = None, duration_s: float | None = None) -> int:
        chosen = self.select(symbol)
        now = self.clock()
        for s in chosen:
            s.half_open = True
            s.half_open_until_ms = now + int(duration_s * 1000) if duration_s else 0
        return len(chosen)

    def server_shutdown(self, grace_s: float = 5.0) -> int:
        now = self.clock()
        chosen = self.select(None)
        for s in chosen:
            event = payloads.server_shutdown_event(now)
            s.write(wire.frame(payloads.combined("!serverShutdown", event) if s.combined else event))
            s.shutdown_at_ms = now + int(grace_s * 1000)
        return len(chosen)

    def describe(self) -> list[dict]:
        return [
            {
                "id": s.id,
                "ip": s.ip,
                "streams": list(s.streams),
                "combined": s.combined,
                "half_open": s.half_open,
                "connected_ms": s.connected_ms,
                "sent_messages": s.sent_messages,
                "hostile_cut": None if s.cut is None else {"at_ms": s.cut.at_ms, "kind": s.cut.kind},
            }
            for s in self.sessions.values()
        ]


def requested_streams(request: wire.Request) -> tuple[list[str], bool] | None:
    """The streams a WebSocket URL asks for and whether it is a combined stream; None for an unknown path."""
    if request.path.startswith("/ws/") and len(request.path) > 4:
        return [request.path[4:]], False
    if request.path in ("/ws", "/ws/"):
        return [], False
    if request.path.rstrip("/") == "/stream":
        return [s for s in request.params.get("streams", "").split("/") if s], True
    return None


def _stream_order(stream: str) -> tuple[int, str]:
    match = STREAM_RE.match(stream)
    return (STREAM_CHANNELS.index(match.group(2)), stream) if match else (len(STREAM_CHANNELS), stream)


def _error(code: int, msg: str, req_id=None) -> bytes:
    body = {"code": code, "msg": msg}
    if req_id is not None:
        body["id"] = req_id
    return json.dumps(body, separators=(",", ":")).encode()
