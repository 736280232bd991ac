"""The live half of the Binance client: one combined WebSocket connection carrying every configured symbol's
``<symbol>@trade`` and ``<symbol>@kline_1m`` streams, turned into records.

    stream = BinanceStream("wss://stream.binance.com:9443", ["BTCUSDT", "ETHUSDT"])
    for record in stream.records():   # Trade, Kline (closed only), Connected, Disconnected, MalformedFrame
        ...
    stream.close()                    # from any thread; records() then yields Disconnected("closed") and ends

Continuity contract: every connection starts with ``Connected`` and every loss ends with ``Disconnected`` before
anything from the next connection, so trades between a ``Connected`` and the following ``Disconnected`` are
contiguous per symbol, except around a ``MalformedFrame`` of that symbol (the frame replaced a trade or kline).
Whatever fell between two connections is the REST backfill's job; this module never fetches anything.

Connection rules kept (Binance's WebSocket limits): connection attempts are capped in a sliding window well below
Binance's 300 per 5 minutes per IP, with exponential backoff and jitter between failing attempts; a connection is
renewed before Binance's 24 h cut and at once on ``serverShutdown``; a connection that stays silent (no data and
no ping, Binance pings every 20 s) for ``silence_timeout_s`` is taken for half-open and replaced. Pings are answered
with their own payload by websocket-client while reading.

The reader is consumer-driven (no thread, no queue): ``records()`` reads a frame, parses it and yields.
"""

from __future__ import annotations

import collections
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import websocket
from websocket import ABNF

from crypto_assets.backoff import Backoff
from crypto_assets.exchange.endpoints import KLINE_1M_CHANNEL, TRADE_CHANNEL
from crypto_assets.exchange.models import (
    Connected,
    Disconnected,
    Kline,
    MalformedFrame,
    MalformedPayload,
    ServerShutdown,
    Trade,
    parse_stream_frame,
    stream_symbol,
)

log = logging.getLogger(__name__)

BINANCE_ATTEMPTS_PER_5MIN = 300  # Binance's limit per IP: never configure above it
FRAME_LOG_CHARS = 300  # how much of a malformed frame goes into the log and the record
MAX_STREAMS_PER_CONNECTION = 1024

_TEXT, _BINARY, _CLOSE = ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CLOSE


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class StreamStats:
    frames: int = 0  # data frames read (text or binary), malformed ones included
    trades: int = 0
    klines: int = 0  # closed klines (open kline updates are dropped)
    malformed: int = 0
    attempts: int = 0  # connection attempts, failed ones included
    connects: int = 0  # successful connections
    reconnects: int = 0  # successful connections after the first
    disconnects: int = 0


class AttemptWindow:
    """At most ``max_attempts`` connection attempts in any ``window_s`` (a sliding window of attempt times)."""

    def __init__(self, max_attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        if max_attempts < 1 or window_s <= 0:
            raise ValueError("the attempt window needs max_attempts >= 1 and window_s > 0")
        self.max_attempts, self.window_s, self.clock = max_attempts, window_s, clock
        self._times: collections.deque[float] = collections.deque()

    def wait_s(self) -> float:
        """How long to wait before the next attempt is allowed (0: now)."""
        now = self.clock()
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        if len(self._times) < self.max_attempts:
            return 0.0
        return self._times[0] + self.window_s - now

    def record(self) -> None:
        self._times.append(self.clock())

    def __len__(self) -> int:
        self.wait_s()  # forget expired attempts
        return len(self._times)


def stream_url(ws_url: str, symbols: list[str], klines: bool = True) -> str:
    """``<ws_url>/stream?streams=btcusdt@trade/btcusdt@kline_1m/...``."""
    kinds = (TRADE_CHANNEL, KLINE_1M_CHANNEL) if klines else (TRADE_CHANNEL,)
    names = [f"{s.lower()}@{kind}" for s in symbols for kind in kinds]
    return ws_url.rstrip("/") + "/stream?streams=" + "/".join(names)


class _BufferedRecv:
    """websocket-client reads each frame with two or three ``recv()`` calls of exact sizes (header, length,
    payload), each a system call (two with a socket timeout). This serves them from one large ``recv()``: the
    same bytes in the same order, a fraction of the system calls. Installed as the connection's frame reader."""

    __slots__ = ("sock", "buf", "pos")

    def __init__(self, sock: socket.socket):
        self.sock, self.buf, self.pos = sock, b"", 0

    def __call__(self, size: int) -> bytes:
        buf, pos = self.buf, self.pos
        if pos >= len(buf):
            try:
                buf = self.sock.recv(1 << 18)
            except TimeoutError:
                raise websocket.WebSocketTimeoutException("timed out") from None
            if not buf:
                raise websocket.WebSocketConnectionClosedException("Connection to remote host was lost.")
            pos = 0
        self.buf, self.pos = buf, pos + size
        return buf[pos : pos + size]


class BinanceStream:
    """Trades and closed 1m klines of ``symbols`` from one combined stream, reconnecting forever until closed.

    ``silence_timeout_s``: no frame at all (data or ping) for this long means a half-open connection.
    ``max_age_s``: renew the connection after this long (Binance cuts at 24 h).
    ``backoff_initial_s`` / ``backoff_max_s``: the delay before an attempt after failures (failed connects, or
    connections that died within ``stable_after_s``) doubles from the first up to the second, drawn in
    [delay/2, delay] (jitter). The first attempt, and the first after a renewal or a connection that lived at least
    ``stable_after_s``, goes out at once.
    ``max_attempts`` per ``attempt_window_s``: this client's own cap on connection attempts (Binance: 300 / 5 min).
    ``klines``: also carry ``<symbol>@kline_1m`` (default); off, the connection carries trades only.
    ``clock``: ms since the epoch for the ``at`` of Connected / Disconnected / MalformedFrame (tests pass the
    simulator's clock).
    """

    def __init__(
        self,
        ws_url: str,
        symbols: list[str],
        *,
        silence_timeout_s: float = 30.0,
        max_age_s: float = 23 * 3600 + 50 * 60,
        connect_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        stable_after_s: float = 60.0,
        max_attempts: int = 60,
        attempt_window_s: float = 300.0,
        poll_s: float = 1.0,
        klines: bool = True,
        clock: Callable[[], int] = _now_ms,
    ):
        symbols = [s.upper() for s in symbols]
        if not symbols:
            raise ValueError("BinanceStream needs at least one symbol")
        if 2 * len(symbols) > MAX_STREAMS_PER_CONNECTION:
            raise ValueError(
                f"{len(symbols)} symbols need {2 * len(symbols)} streams; a connection carries at most "
                f"{MAX_STREAMS_PER_CONNECTION}"
            )
        if max_attempts * 300.0 / attempt_window_s > BINANCE_ATTEMPTS_PER_5MIN:
            raise ValueError(
                f"{max_attempts} attempts per {attempt_window_s}s exceeds Binance's "
                f"{BINANCE_ATTEMPTS_PER_5MIN} per 5 minutes"
            )
        if silence_timeout_s <= 0 or max_age_s <= 0:
            raise ValueError("timeouts must be positive")
        self.symbols = symbols
        self.clock = clock
        self.url = stream_url(ws_url, symbols, klines)
        self.silence_timeout_s = silence_timeout_s
        self.max_age_s = max_age_s
        self.connect_timeout_s = connect_timeout_s
        self.reconnect = Backoff(backoff_initial_s, backoff_max_s, jitter=True)
        self.stable_after_s = stable_after_s
        # The socket timeout: how often a blocked read wakes to check silence, age and close().
        self.poll_s = min(poll_s, silence_timeout_s)
        self.attempts = AttemptWindow(max_attempts, attempt_window_s)
        self.stats = StreamStats()
        self._failures = 0  # consecutive failed attempts / short-lived connections: drives the backoff
        self._closed = False
        self._wake = threading.Event()
        self._ws: websocket.WebSocket | None = None

    # ---- public -------------------------------------------------------------------------------------------------
    def records(self) -> Iterator[Trade | Kline | Connected | Disconnected | MalformedFrame]:
        """Records until ``close()``; blocks while the exchange is unreachable (backing off)."""
        try:
            while not self._closed:
                ws = self._connect()
                if ws is None:
                    return
                connected_at = time.monotonic()
                yield Connected(self.clock(), self.url)
                reason = yield from self._read(ws)
                self._disconnect(ws, polite=reason in ("renewal", "closed", "server shutdown"))
                lived = time.monotonic() - connected_at
                if reason == "renewal" or lived >= self.stable_after_s:
                    self._failures = 0
                elif reason != "closed":
                    self._failures += 1
                self.stats.disconnects += 1
                level = logging.INFO if reason in ("renewal", "closed") else logging.WARNING
                log.log(level, "stream %s disconnected after %.1fs: %s", self.url, lived, reason)
                yield Disconnected(self.clock(), reason)
        finally:
            if self._ws is not None:
                self._disconnect(self._ws, polite=True)

    def close(self) -> None:
        """Stop: safe from any thread. A blocked ``records()`` yields Disconnected("closed") and ends."""
        self._closed = True
        self._wake.set()
        ws = self._ws
        if ws is not None:
            ws.abort()  # wakes a read blocked in another thread

    def __enter__(self) -> BinanceStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- connecting ---------------------------------------------------------------------------------------------
    def backoff_s(self) -> float:
        """The delay before the next attempt: 0 after a healthy connection, else doubling with jitter."""
        return self.reconnect.delay_s(self._failures)

    def _connect(self) -> websocket.WebSocket | None:
        """A new connection, after the backoff and within the attempt cap; None once closed."""
        while not self._closed:
            delay = self.backoff_s()
            capped = self.attempts.wait_s()
            if capped > delay:
                log.warning(
                    "stream %s: %d connection attempts in the last %.0fs (own cap; Binance allows %d per "
                    "5 min): waiting %.1fs",
                    self.url,
                    len(self.attempts),
                    self.attempts.window_s,
                    BINANCE_ATTEMPTS_PER_5MIN,
                    capped,
                )
                delay = capped
            if delay > 0 and self._wake.wait(delay):
                return None
            if self.attempts.wait_s() > 0:
                continue
            self.attempts.record()
            self.stats.attempts += 1
            try:
                ws = websocket.create_connection(
                    self.url,
                    timeout=self.connect_timeout_s,
                    skip_utf8_validation=True,  # msgspec validates UTF-8 itself
                    enable_multithread=False,
                )
            except (OSError, websocket.WebSocketException) as exc:
                self._failures += 1
                log.warning(
                    "stream %s: cannot connect (attempt %d, %d in a row): %s: %s; next attempt in up to %.1fs",
                    self.url,
                    self.stats.attempts,
                    self._failures,
                    type(exc).__name__,
                    exc,
                    self.reconnect.ceiling_s(self._failures),
                )
                continue
            ws.settimeout(self.poll_s)
            if getattr(ws, "frame_buffer", None) is not None and hasattr(ws.frame_buffer, "recv"):
                ws.frame_buffer.recv = _BufferedRecv(ws.sock)
            self._ws = ws
            if self._closed:  # close() raced with the connect
                self._disconnect(ws, polite=True)
                return None
            self.stats.connects += 1
            if self.stats.connects > 1:
                self.stats.reconnects += 1
            log.info("stream connected: %s", self.url)
            return ws
        return None

    def _disconnect(self, ws: websocket.WebSocket, polite: bool) -> None:
        if polite:
            try:
                ws.send_close(websocket.STATUS_NORMAL)
            except (OSError, websocket.WebSocketException):
                pass
        ws.shutdown()
        if self._ws is ws:
            self._ws = None

    # ---- reading ------------------------------------------------------------------------------------------------
    def _read(self, ws: websocket.WebSocket):
        """Yield the connection's records; return why it ended."""
        recv = ws.recv_data_frame  # answers pings with their payload; returns control frames with True
        parse = parse_stream_frame
        monotonic = time.monotonic
        time_ns = time.time_ns
        stats = self.stats
        last_heard = monotonic()
        renew_at = last_heard + self.max_age_s
        while True:
            try:
                opcode, frame = recv(True)
            except websocket.WebSocketTimeoutException:
                now = monotonic()
                if self._closed:
                    return "closed"
                if now - last_heard >= self.silence_timeout_s:
                    return (
                        f"silent for {now - last_heard:.1f}s (no data, no ping): half-open connection "
                        f"(silence_timeout_s={self.silence_timeout_s})"
                    )
                if now >= renew_at:
                    return "renewal"
                continue
            except (OSError, websocket.WebSocketException) as exc:
                if self._closed:
                    return "closed"
                return f"connection lost: {type(exc).__name__}: {exc}"
            last_heard = now = monotonic()
            if self._closed:
                return "closed"
            if opcode == _TEXT:
                stats.frames += 1
                data = frame.data
                try:
                    record = parse(data, time_ns() // 1_000_000)
                except MalformedPayload as exc:
                    yield self._malformed(data, str(exc))
                    continue
                kind = type(record)
                if kind is Trade:
                    stats.trades += 1
                    yield record
                elif kind is Kline:
                    stats.klines += 1
                    yield record
                elif kind is ServerShutdown:
                    return "server shutdown"
                elif record is not None:  # a ControlReply: this client sends no control messages
                    log.debug("stream %s: unexpected control reply %r", self.url, record)
            elif opcode == _BINARY:
                stats.frames += 1
                yield self._malformed(frame.data, "binary frame (Binance streams send text)")
            elif opcode == _CLOSE:
                return "closed by the server" + _close_detail(frame.data)
            # ping (already answered) or pong: just proof of life
            if now >= renew_at:
                return "renewal"

    def _malformed(self, data: bytes | str, error: str) -> MalformedFrame:
        self.stats.malformed += 1
        text = data[:FRAME_LOG_CHARS]
        text = text if isinstance(text, str) else text.decode("utf-8", "replace")
        symbol = stream_symbol(data)
        log.warning(
            "stream %s: malformed frame (%s) for %s: %s: %r",
            self.url,
            self.stats.malformed,
            symbol or "unknown symbol",
            error,
            text,
        )
        return MalformedFrame(self.clock(), symbol, error, text)


def _close_detail(payload: bytes) -> str:
    if len(payload) < 2:
        return ""
    code = struct.unpack("!H", payload[:2])[0]
    reason = payload[2:].decode("utf-8", "replace")
    return f" (code {code}{': ' + reason if reason else ''})"
