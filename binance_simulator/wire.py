"""HTTP/1.1 requests and WebSocket (RFC 6455) frames on asyncio streams: just what the simulator serves.

Own framing instead of a web framework: the stream pump writes thousands of pre-encoded frames with one
``transport.write`` (the simulator must outrun any client at 100k+ trades/s), and faults such as a half-open
socket or a connection dropped without a close frame need direct control of the transport.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 64 * 1024  # a /stream?streams= URL of 1024 streams takes about 25 kB
MAX_BODY = 1024 * 1024

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

REASONS = {
    200: "OK",
    101: "Switching Protocols",
    206: "Partial Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    416: "Range Not Satisfiable",
    418: "I'm a teapot",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class BadRequest(Exception):
    pass


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    path: str = field(init=False)
    query: list[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = parts.path
        self.query = parse_qsl(parts.query, keep_blank_values=True)

    @property
    def params(self) -> dict[str, str]:
        """Query parameters; a repeated name keeps its last value."""
        return dict(self.query)

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"

    @property
    def is_websocket(self) -> bool:
        return "websocket" in self.headers.get("upgrade", "").lower()


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a keep-alive connection, or None when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest("connection closed inside a request head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise BadRequest(f"malformed request line {lines[0]!r}") from exc
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    if length > MAX_BODY:
        raise BadRequest("request body too large")
    body = await reader.readexactly(length) if length else b""
    return Request(method.upper(), target, headers, body)


def http_response(
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json;charset=UTF-8",
    keep_alive: bool = True,
) -> bytes:
    return http_head(status, len(body), headers, content_type, keep_alive) + body


def http_head(
    status: int,
    content_length: int,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json;charset=UTF-8",
    keep_alive: bool = True,
) -> bytes:
    """The status line and headers of a response whose body (``content_length`` bytes) is sent apart, or not at all
    (HEAD)."""
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {content_length}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def websocket_accept(request: Request) -> bytes:
    """The 101 response that completes the handshake (raises BadRequest for a broken handshake)."""
    key = request.headers.get("sec-websocket-key")
    if not key or request.headers.get("sec-websocket-version") != "13":
        raise BadRequest("websocket handshake needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13")
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    return (
        f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode()


def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One unmasked server frame (FIN set)."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def text_frames(payloads) -> bytes:
    """Many text frames joined into one buffer, for a single transport write."""
    out = []
    for p in payloads:
        n = len(p)
        out.append(
            bytes((0x81, n))
            if n < 126
            else struct.pack("!BBH", 0x81, 126, n)
            if n < 65536
            else struct.pack("!BBQ", 0x81, 127, n)
        )
        out.append(p)
    return b"".join(out)


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    return frame(struct.pack("!H", code) + reason.encode()[:120], OP_CLOSE)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(opcode, unmasked payload) of the next client frame; fragments are reassembled."""
    chunks: list[bytes] = []
    first_opcode = None
    while True:
        b0, b1 = await reader.readexactly(2)
        fin, opcode = b0 & 0x80, b0 & 0x0F
        masked, n = b1 & 0x80, b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        if n > MAX_BODY:
            raise BadRequest("websocket frame too large")
        mask = await reader.readexactly(4) if masked else b""
        data = await reader.readexactly(n)
        if masked:
            data = _unmask(data, mask)
        if opcode >= OP_CLOSE:  # control frames may arrive between fragments
            return opcode, data
        if first_opcode is None:
            first_opcode = opcode
        chunks.append(data)
        if fin:
            return first_opcode, b"".join(chunks)


def _unmask(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")
