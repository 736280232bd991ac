"""Small, dependency-free clients for the simulator tests: HTTP with a chosen source address, a raw WebSocket
that never answers pings on its own, a frame collector for websocket-client, and a hand-driven clock."""

from __future__ import annotations

import base64
import decimal
import hashlib
import json
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.client import HTTPConnection
from urllib.parse import urlencode

import websocket

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ManualClock:
    """A simulated clock the test moves by hand (milliseconds)."""

    def __init__(self, start_ms: int):
        self.ms = start_ms
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self.ms

    def advance(self, ms: int) -> None:
        with self._lock:
            self.ms += ms


# ---- HTTP ------------------------------------------------------------------------------------------------------
@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    elapsed_s: float

    def json(self):
        return json.loads(self.body)


def http(
    sim,
    path: str,
    params: dict | None = None,
    method: str = "GET",
    body: dict | None = None,
    source_ip: str | None = None,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> HttpResult:
    """One request on a fresh connection (from ``source_ip`` when given)."""
    target = path + ("?" + urlencode(params) if params else "")
    conn = HTTPConnection(sim.host, sim.port, timeout=timeout, source_address=(source_ip, 0) if source_ip else None)
    data = json.dumps(body).encode() if body is not None else None
    headers = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
    started = time.monotonic()
    try:
        conn.request(method, target, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        return HttpResult(
            resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload, time.monotonic() - started
        )
    finally:
        conn.close()


def api(sim, endpoint: str, source_ip: str | None = None, **params) -> HttpResult:
    """``GET /api/v3/<endpoint>``."""
    return http(sim, "/api/v3/" + endpoint, params or None, source_ip=source_ip)


def weight(result: HttpResult) -> int:
    return int(result.headers["x-mbx-used-weight-1m"])


# ---- WebSocket: a raw client that answers nothing unless told to -----------------------------------------------
class Closed(Exception):
    """The peer closed the TCP connection."""


class RawWebSocket:
    def __init__(self, host: str, port: int, path: str, source_ip: str | None = None, timeout: float = 5.0):
        self.sock = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source_ip, 0) if source_ip else None
        )
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self._buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buf:
            self._fill(deadline)
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        self.status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        self.status = int(self.status_line.split()[1])
        if self.status == 101:
            expected = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
            assert self.headers.get("sec-websocket-accept") == expected

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError from None
        except ConnectionError as exc:
            raise Closed(str(exc)) from exc
        if not chunk:
            raise Closed("EOF")
        self._buf += chunk

    def _take(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            self._fill(deadline)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def recv_frame(self, timeout: float) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next frame; None on timeout; raises Closed on EOF. A frame cut by a timeout
        stays buffered in full, so the next call reads it."""
        deadline = time.monotonic() + timeout
        try:
            b0, b1 = self._peek(2, deadline)
            n, offset = b1 & 0x7F, 2
            if n == 126:
                (n,) = struct.unpack("!H", self._peek(4, deadline)[2:4])
                offset = 4
            elif n == 127:
                (n,) = struct.unpack("!Q", self._peek(10, deadline)[2:10])
                offset = 10
            frame = self._take(offset + n, deadline)
        except TimeoutError:
            return None
        return b0 & 0x0F, frame[offset:]

    def _peek(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            self._fill(deadline)
        return self._buf[:n]

    def frames_for(self, seconds: float) -> list[tuple[float, int, bytes]]:
        """Every frame that arrives within ``seconds`` as (monotonic time, opcode, payload); stops at EOF."""
        out, deadline = [], time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            got = self.recv_frame(remaining)
            if got is not None:
                out.append((time.monotonic(), *got))
        return out

    def send(self, payload: bytes, opcode: int = OP_TEXT) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes((0x80 | opcode,))
        if n < 126:
            head += bytes((0x80 | n,))
        elif n < 65536:
            head += struct.pack("!BH", 0x80 | 126, n)
        else:
            head += struct.pack("!BQ", 0x80 | 127, n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- websocket-client ------------------------------------------------------------------------------------------
def connect(sim, path: str, timeout: float = 5.0) -> websocket.WebSocket:
    return websocket.create_connection(sim.ws_url + path, timeout=timeout)


def collect(ws: websocket.WebSocket, seconds: float, until=None) -> list[tuple[int, bytes]]:
    """(opcode, payload) of the data frames that arrive within ``seconds`` (pings are answered by websocket-client
    and not returned), stopping early once ``until(frames)`` is true. A close frame ends the collection."""
    frames, deadline = [], time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        ws.settimeout(remaining)
        try:
            # recv_frame, not recv_data_frame: the latter answers a close frame and raises if the server has
            # already shut the socket, which would hide the close frame (and its code) from the test.
            frame = ws.recv_frame()
        except websocket.WebSocketTimeoutException:
            break
        if frame.opcode == OP_PING:
            ws.pong(frame.data)
            continue
        if frame.opcode == OP_PONG:
            continue
        frames.append((frame.opcode, frame.data))
        if frame.opcode == OP_CLOSE or (until is not None and until(frames)):
            break
    return frames


def messages(frames: list[tuple[int, bytes]]) -> list[dict]:
    """The JSON text messages among ``frames``."""
    return [json.loads(data) for opcode, data in frames if opcode == OP_TEXT]


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


# ---- exact decimal arithmetic ------------------------------------------------------------------------------------
def truncated_product(*factors: str) -> str:
    """Binance's 8-decimal rendering of an exact product (or sum of products, see ``truncated_sum``): the exact
    value truncated toward zero, computed with Decimal at 80 digits so nothing rounds on the way."""
    with decimal.localcontext(prec=80):
        exact = decimal.Decimal(1)
        for f in factors:
            exact *= decimal.Decimal(f)
        return _eight(exact)


def truncated_sum(pairs) -> str:
    """The 8-decimal rendering of sum(price x qty) over (price text, qty text) pairs, truncated toward zero."""
    with decimal.localcontext(prec=80):
        return _eight(sum((decimal.Decimal(p) * decimal.Decimal(q) for p, q in pairs), decimal.Decimal(0)))


def _eight(value: decimal.Decimal) -> str:
    with decimal.localcontext(prec=80):
        return format(value.quantize(decimal.Decimal("0.00000001"), rounding=decimal.ROUND_DOWN), "f")
