"""The live half of the Binance client: every configured symbol's ``<symbol>@trade`` and ``<symbol>@kline_1m``
streams, over as many combined WebSocket connections as it takes (at most ``symbols_per_connection`` symbols each,
512 by default: Binance carries at most 1024 streams per connection), turned into records.

    stream = BinanceStream("wss://stream.binance.com:9443", ["BTCUSDT", "ETHUSDT"])
    for record in stream.records():   # Trade, Kline (closed only), Connected, Disconnected, MalformedFrame
        ...
    stream.close()                    # from any thread; records() then yields each connection's
                                      # Disconnected("closed") and ends, every connection closed

Continuity contract, per connection: every connection starts with ``Connected`` and every loss ends with
``Disconnected`` before anything from its next connection, both naming the connection's ``symbols``, so trades of
those symbols between a ``Connected`` and that connection's following ``Disconnected`` are contiguous per symbol,
except around a ``MalformedFrame`` of that symbol (or one without a readable symbol, which names the connection's
symbols). Records of different connections interleave. Whatever fell between two connections is the REST backfill's
job; this module never fetches anything.

Connection rules kept (Binance's WebSocket limits): the connection attempts of all the stream's connections share
one sliding window, capped well below Binance's 300 per 5 minutes per IP; with several connections, attempts are
also paced at least ``attempt_window_s / max_attempts`` apart, so connections starting together open one after the
other instead of in a burst. Each connection has its own exponential backoff with jitter between failing attempts
(``crypto_assets.backoff``), is renewed before Binance's 24 h cut and at once on ``serverShutdown``, and when it stays
silent (no data and no ping, Binance pings every 20 s) for ``silence_timeout_s`` is taken for half-open and
replaced. Pings are answered with their own payload by websocket-client while reading.

With one connection the reader is consumer-driven (no thread, no queue): ``records()`` reads a frame, parses it and
yields. With several, one reader thread per connection feeds one bounded queue (batches of the records already
received) that ``records()`` yields from.
"""

from __future__ import annotations

import collections
import logging
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Protocol

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
DEFAULT_SYMBOLS_PER_CONNECTION = MAX_STREAMS_PER_CONNECTION // 2  # @trade and @kline_1m each
BATCH_RECORDS = 256  # with several connections: at most this many records per queued batch ...
QUEUE_BATCHES = 64  # ... and at most this many batches waiting for the consumer (a reader blocks past it)
LONG_URL_CHARS = 300  # a connection whose URL is longer is named by its symbols in the log

_TEXT, _BINARY, _CLOSE = ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CLOSE
_DONE = object()  # a reader thread's last item in the queue


class StreamMetrics(Protocol):  # what the stream tells crypto_assets.ingest.metrics.CaptureMetrics
    def trade(self, symbol: str, price: str, time_ms: int) -> None: ...
    def kline(self, symbol: str) -> None: ...
    def malformed(self) -> None: ...
    def connected(self) -> None: ...
    def disconnected(self) -> None: ...
    def reconnected(self, cause: str) -> None: ...


def reconnect_cause(reason: str) -> str:
    """Why a connection ended, as a bounded cause: ``closed`` (by the server, or by us), ``silent`` (half-open),
    ``server_shutdown``, ``renewal`` (before the 24 h cut) or ``error`` (the connection was lost)."""
    if reason.startswith("silent"):
        return "silent"
    if reason == "server shutdown":
        return "server_shutdown"
    if reason == "renewal":
        return "renewal"
    if reason.startswith("closed"):
        return "closed"
    return "error"


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
    reconnects: int = 0  # successful connections after the first (of the same connection)
    disconnects: int = 0


class AttemptWindow:
    """At most ``max_attempts`` connection attempts in any ``window_s`` (a sliding window of attempt times), and
    none sooner than ``min_interval_s`` after the previous one. Safe to share between threads."""

    def __init__(
        self,
        max_attempts: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        min_interval_s: float = 0.0,
    ):
        if max_attempts < 1 or window_s <= 0 or min_interval_s < 0:
            raise ValueError("the attempt window needs max_attempts >= 1, window_s > 0 and min_interval_s >= 0")
        self.max_attempts, self.window_s, self.clock = max_attempts, window_s, clock
        self.min_interval_s = min_interval_s
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def wait_s(self) -> float:
        """How long to wait before the window allows the next attempt (0: now); the pacing not included."""
        with self._lock:
            return self._wait_s(self.clock())

    def pace_s(self) -> float:
        """How long to wait before ``min_interval_s`` has passed since the last attempt (0: now)."""
        with self._lock:
            return self._pace_s(self.clock())

    def take(self) -> bool:
        """Record an attempt now if both the window and the pacing allow it; False (nothing recorded) otherwise."""
        with self._lock:
            now = self.clock()
            if self._wait_s(now) > 0 or self._pace_s(now) > 0:
                return False
            self._times.append(now)
            return True

    def record(self) -> None:
        with self._lock:
            self._times.append(self.clock())

    def __len__(self) -> int:
        with self._lock:
            self._wait_s(self.clock())  # forget expired attempts
            return len(self._times)

    def _wait_s(self, now: float) -> float:
        times = self._times
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) < self.max_attempts:
            return 0.0
        return times[0] + self.window_s - now

    def _pace_s(self, now: float) -> float:
        if not self._times or not self.min_interval_s:
            return 0.0
        return max(0.0, self._times[-1] + self.min_interval_s - now)


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
    """Trades and closed 1m klines of ``symbols`` from combined streams, reconnecting forever until closed.

    ``symbols_per_connection``: the symbols are spread in their order over connections of at most this many
    (``@trade`` and ``@kline_1m`` each: at most 512, 1024 with ``klines`` off).
    ``silence_timeout_s``: no frame at all (data or ping) for this long means a half-open connection.
    ``max_age_s``: renew a connection after this long (Binance cuts at 24 h).
    ``backoff_initial_s`` / ``backoff_max_s``: the delay before a connection's attempt after its failures (failed
    connects, or connections that died within ``stable_after_s``) doubles from the first up to the second, drawn in
    [delay/2, delay] (jitter). The first attempt, and the first after a renewal or a connection that lived at least
    ``stable_after_s``, goes out at once (with several connections: once the pacing allows).
    ``max_attempts`` per ``attempt_window_s``: this client's own cap on connection attempts, all connections
    together (Binance: 300 / 5 min per IP); with several connections attempts are at least
    ``attempt_window_s / max_attempts`` apart.
    ``klines``: also carry ``<symbol>@kline_1m`` (default); off, the connections carry trades only.
    ``clock``: ms since the epoch for the ``at`` of Connected / Disconnected / MalformedFrame (tests pass the
    simulator's clock).
    ``metrics``: told of every trade, closed kline and malformed frame, each connection opened and closed, and each
    reconnect with its cause (``crypto_assets.ingest.metrics.CaptureMetrics``); None: no metrics.
    """

    def __init__(
        self,
        ws_url: str,
        symbols: list[str],
        *,
        symbols_per_connection: int = DEFAULT_SYMBOLS_PER_CONNECTION,
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
        metrics: StreamMetrics | None = None,
    ):
        symbols = list(dict.fromkeys(s.upper() for s in symbols))
        if not symbols:
            raise ValueError("BinanceStream needs at least one symbol")
        streams_per_symbol = 2 if klines else 1
        most = MAX_STREAMS_PER_CONNECTION // streams_per_symbol
        if not 1 <= symbols_per_connection <= most:
            raise ValueError(
                f"symbols_per_connection={symbols_per_connection}: a connection carries 1 to {most} symbols "
                f"({streams_per_symbol} streams each, at most {MAX_STREAMS_PER_CONNECTION} streams)"
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
        self.metrics = metrics
        self.silence_timeout_s = silence_timeout_s
        self.max_age_s = max_age_s
        self.connect_timeout_s = connect_timeout_s
        self.reconnect = Backoff(backoff_initial_s, backoff_max_s, jitter=True)
        self.stable_after_s = stable_after_s
        # The socket timeout: how often a blocked read wakes to check silence, age and close().
        self.poll_s = min(poll_s, silence_timeout_s)
        groups = [symbols[i : i + symbols_per_connection] for i in range(0, len(symbols), symbols_per_connection)]
        self.attempts = AttemptWindow(
            max_attempts, attempt_window_s, min_interval_s=attempt_window_s / max_attempts if len(groups) > 1 else 0.0
        )
        self.connections = [
            _Connection(self, stream_url(ws_url, group, klines), group, f"{n + 1}/{len(groups)}")
            for n, group in enumerate(groups)
        ]
        # what the log names the stream by: the one connection's URL, or the base URL and the connection count
        self.url = (
            self.connections[0].url
            if len(groups) == 1
            else f"{ws_url.rstrip('/')}/stream ({len(groups)} connections of up to {symbols_per_connection} symbols)"
        )
        self._closed = False
        self._wake = threading.Event()
        self._abandoned = False  # the consumer left records(): reader threads stop putting

    # ---- public -------------------------------------------------------------------------------------------------
    def records(self) -> Iterator[Trade | Kline | Connected | Disconnected | MalformedFrame]:
        """Records until ``close()``; blocks while the exchange is unreachable (backing off)."""
        if len(self.connections) == 1:
            return self.connections[0].records()  # the fast path: read by the consumer itself
        return self._merged()

    def close(self) -> None:
        """Stop: safe from any thread. A blocked ``records()`` yields each connection's Disconnected("closed") and
        ends."""
        self._closed = True
        self._wake.set()
        for connection in self.connections:
            ws = connection.ws
            if ws is not None:
                ws.abort()  # wakes a read blocked in another thread

    @property
    def stats(self) -> StreamStats:
        """The counts of every connection together."""
        if len(self.connections) == 1:
            return self.connections[0].stats
        total = StreamStats()
        for connection in self.connections:
            for f in fields(StreamStats):
                setattr(total, f.name, getattr(total, f.name) + getattr(connection.stats, f.name))
        return total

    def __enter__(self) -> BinanceStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- several connections: one reader thread each, one bounded queue ----------------------------------------
    def _merged(self) -> Iterator[Trade | Kline | Connected | Disconnected | MalformedFrame]:
        batches: queue.Queue = queue.Queue(QUEUE_BATCHES)
        readers = [
            threading.Thread(target=self._pump, args=(c, batches), name=f"stream-{c.label}", daemon=True)
            for c in self.connections
        ]
        for reader in readers:
            reader.start()
        running = len(readers)
        try:
            while running:
                batch = batches.get()
                if batch is _DONE:
                    running -= 1
                elif isinstance(batch, BaseException):
                    raise batch  # a reader failed unexpectedly: the consumer sees it, the others are closed
                else:
                    yield from batch
        finally:
            self._abandoned = True
            self.close()
            for reader in readers:
                reader.join(self.poll_s + self.connect_timeout_s)

    def _pump(self, connection: _Connection, batches: queue.Queue) -> None:
        """A reader thread: the connection's records into the queue, in batches of what was already received."""
        put, buffered = self._put, connection.buffered
        batch: list = []
        try:
            for record in connection.records():
                batch.append(record)
                if len(batch) >= BATCH_RECORDS or not buffered():
                    put(batches, batch)
                    batch = []
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            if batch:
                put(batches, batch)
            put(batches, exc)
        finally:
            put(batches, _DONE)

    def _put(self, batches: queue.Queue, item) -> None:
        """Put, waiting while the queue is full (back-pressure on the connection), unless the consumer has left."""
        while not self._abandoned:
            try:
                batches.put(item, timeout=self.poll_s)
                return
            except queue.Full:
                continue


class _Connection:
    """One combined connection of the stream, carrying ``symbols``: its own backoff, silence timeout, renewal and
    serverShutdown handling; the stream's shared attempt window and close()."""

    def __init__(self, stream: BinanceStream, url: str, symbols: list[str], label: str):
        self.stream = stream
        self.url = url
        self.symbols = tuple(symbols)
        self.label = label
        # what the log names it by: its URL, or when that is long its symbols
        self.name = url if len(url) <= LONG_URL_CHARS else f"connection {label} ({symbols[0]}..{symbols[-1]})"
        self.stats = StreamStats()
        self.failures = 0  # consecutive failed attempts / short-lived connections: drives the backoff
        self.last_cause = "error"  # why the last connection ended (reconnect_cause), told with the reconnect
        self.ws: websocket.WebSocket | None = None
        self._reader: _BufferedRecv | None = None

    def records(self) -> Iterator[Trade | Kline | Connected | Disconnected | MalformedFrame]:
        stream = self.stream
        try:
            while not stream._closed:
                ws = self._connect()
                if ws is None:
                    return
                connected_at = time.monotonic()
                yield Connected(stream.clock(), self.url, self.symbols)
                reason = yield from self._read(ws)
                self._disconnect(ws, polite=reason in ("renewal", "closed", "server shutdown"))
                lived = time.monotonic() - connected_at
                if reason == "renewal" or lived >= stream.stable_after_s:
                    self.failures = 0
                elif reason != "closed":
                    self.failures += 1
                self.stats.disconnects += 1
                self.last_cause = reconnect_cause(reason)
                level = logging.INFO if reason in ("renewal", "closed") else logging.WARNING
                log.log(level, "stream %s disconnected after %.1fs: %s", self.name, lived, reason)
                yield Disconnected(stream.clock(), reason, self.symbols)
        finally:
            if self.ws is not None:
                self._disconnect(self.ws, polite=True)

    def backoff_s(self) -> float:
        """The delay before the next attempt: 0 after a healthy connection, else doubling with jitter."""
        return self.stream.reconnect.delay_s(self.failures)

    def buffered(self) -> bool:
        """Bytes already received and not read yet (more records follow without waiting)."""
        reader = self._reader
        return reader is not None and reader.pos < len(reader.buf)

    # ---- connecting ---------------------------------------------------------------------------------------------
    def _connect(self) -> websocket.WebSocket | None:
        """A new connection, after the backoff and within the attempt cap and pacing; None once closed."""
        stream = self.stream
        attempts = stream.attempts
        while not stream._closed:
            delay = self.backoff_s()
            capped = attempts.wait_s()
            if capped > delay:
                log.warning(
                    "stream %s: %d connection attempts in the last %.0fs (own cap; Binance allows %d per "
                    "5 min): waiting %.1fs",
                    self.name,
                    len(attempts),
                    attempts.window_s,
                    BINANCE_ATTEMPTS_PER_5MIN,
                    capped,
                )
                delay = capped
            delay = max(delay, attempts.pace_s())
            if delay > 0 and stream._wake.wait(delay):
                return None
            if not attempts.take():
                continue  # another connection took the slot: wait for the next
            self.stats.attempts += 1
            try:
                ws = websocket.create_connection(
                    self.url,
                    timeout=stream.connect_timeout_s,
                    skip_utf8_validation=True,  # msgspec validates UTF-8 itself
                    enable_multithread=False,
                )
            except (OSError, websocket.WebSocketException) as exc:
                self.failures += 1
                log.warning(
                    "stream %s: cannot connect (attempt %d, %d in a row): %s: %s; next attempt in up to %.1fs",
                    self.name,
                    self.stats.attempts,
                    self.failures,
                    type(exc).__name__,
                    exc,
                    stream.reconnect.ceiling_s(self.failures),
                )
                continue
            ws.settimeout(stream.poll_s)
            self._reader = None
            if getattr(ws, "frame_buffer", None) is not None and hasattr(ws.frame_buffer, "recv"):
                self._reader = ws.frame_buffer.recv = _BufferedRecv(ws.sock)
            self.ws = ws
            if stream.metrics is not None:
                stream.metrics.connected()
            if stream._closed:  # close() raced with the connect
                self._disconnect(ws, polite=True)
                return None
            self.stats.connects += 1
            if self.stats.connects > 1:
                self.stats.reconnects += 1
                if stream.metrics is not None:
                    stream.metrics.reconnected(self.last_cause)
            log.info("stream connected: %s", self.name)
            return ws
        return None

    def _disconnect(self, ws: websocket.WebSocket, polite: bool) -> None:
        if polite:
            try:
                ws.send_close(websocket.STATUS_NORMAL)
            except (OSError, websocket.WebSocketException):
                pass
        ws.shutdown()
        if self.ws is ws:
            self.ws = None
            self._reader = None
            if self.stream.metrics is not None:
                self.stream.metrics.disconnected()

    # ---- reading ------------------------------------------------------------------------------------------------
    def _read(self, ws: websocket.WebSocket):
        """Yield the connection's records; return why it ended."""
        stream = self.stream
        recv = ws.recv_data_frame  # answers pings with their payload; returns control frames with True
        parse = parse_stream_frame
        monotonic = time.monotonic
        time_ns = time.time_ns
        stats = self.stats
        silence_timeout_s = stream.silence_timeout_s
        metrics = stream.metrics
        trade_seen = metrics.trade if metrics is not None else None  # bound once: called per trade
        last_heard = monotonic()
        renew_at = last_heard + stream.max_age_s
        while True:
            try:
                opcode, frame = recv(True)
            except websocket.WebSocketTimeoutException:
                now = monotonic()
                if stream._closed:
                    return "closed"
                if now - last_heard >= silence_timeout_s:
                    return (
                        f"silent for {now - last_heard:.1f}s (no data, no ping): half-open connection "
                        f"(silence_timeout_s={silence_timeout_s})"
                    )
                if now >= renew_at:
                    return "renewal"
                continue
            except (OSError, websocket.WebSocketException) as exc:
                if stream._closed:
                    return "closed"
                return f"connection lost: {type(exc).__name__}: {exc}"
            last_heard = now = monotonic()
            if stream._closed:
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
                    if trade_seen is not None:
                        trade_seen(record.symbol, record.price, record.trade_time)
                    yield record
                elif kind is Kline:
                    stats.klines += 1
                    if metrics is not None:
                        metrics.kline(record.symbol)
                    yield record
                elif kind is ServerShutdown:
                    return "server shutdown"
                elif record is not None:  # a ControlReply: this client sends no control messages
                    log.debug("stream %s: unexpected control reply %r", self.name, record)
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
        if self.stream.metrics is not None:
            self.stream.metrics.malformed()
        text = data[:FRAME_LOG_CHARS]
        text = text if isinstance(text, str) else text.decode("utf-8", "replace")
        symbol = stream_symbol(data)
        log.warning(
            "stream %s: malformed frame (%s) for %s: %s: %r",
            self.name,
            self.stats.malformed,
            symbol or "unknown symbol",
            error,
            text,
        )
        return MalformedFrame(self.stream.clock(), symbol, error, text, self.symbols)


def _close_detail(payload: bytes) -> str:
    if len(payload) < 2:
        return ""
    code = struct.unpack("!H", payload[:2])[0]
    reason = payload[2:].decode("utf-8", "replace")
    return f" (code {code}{': ' + reason if reason else ''})"
