"""Test helpers: a tiny Binance-shaped HTTP (and WebSocket handshake) server on 127.0.0.1, and a closed port.

Not the exchange simulator: just enough to answer fixed JSON per path, so tests of the REST client, the preflight
and `market_snapshot` run offline without depending on it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

WS_MAGIC = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

TRADE_ROW = {
    "id": 28457,
    "price": "4.00000100",
    "qty": "12.00000000",
    "quoteQty": "48.000012",
    "time": 1499865549590,
    "isBuyerMaker": True,
    "isBestMatch": True,
}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StubExchange:
    """Serves `routes`: {path: (status, json_body)} for GET requests (query strings ignored when matching, but
    recorded in `.requests`). GET /ws/<anything> with an Upgrade header completes a WebSocket handshake."""

    def __init__(self, routes: dict[str, tuple[int, Any]] | None = None):
        self.routes = dict(routes or {})
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path)
                stub.requests.append((parts.path, parse_qs(parts.query)))
                if parts.path.startswith("/ws/") and self.headers.get("Upgrade", "").lower() == "websocket":
                    self._websocket_handshake()
                    return
                status, body = stub.routes.get(parts.path, (404, {"code": -1, "msg": f"no stub for {parts.path}"}))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _websocket_handshake(self) -> None:
                key = self.headers["Sec-WebSocket-Key"]
                accept = base64.b64encode(hashlib.sha1((key + WS_MAGIC).encode()).digest()).decode()
                self.send_response(101, "Switching Protocols")
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept)
                self.end_headers()
                self.wfile.flush()
                self.connection.settimeout(5)
                try:
                    self.connection.recv(1024)  # the client's close frame (or EOF)
                    self.connection.sendall(b"\x88\x00")  # our close frame, empty payload
                except OSError:
                    pass
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StubExchange:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
