"""A small Binance Spot REST client (public market data only). No Dagster imports.

Deliberately minimal: one keep-alive `requests.Session`, three endpoints, two error types. Request-weight
budgeting and retries come later.
"""

from __future__ import annotations

import re
from typing import Any

import requests


class ExchangeUnreachable(Exception):
    """The exchange could not be reached at all (connection refused, DNS failure, TLS failure, timeout)."""

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach {url}: {reason}")


class ExchangeError(Exception):
    """The exchange answered, but with an error (HTTP status >= 400, or a body that is not what was asked for).

    `code` and `msg` come from Binance's error body `{"code": -1121, "msg": "Invalid symbol."}`; `code` is None
    when the body is not a Binance error (for instance an HTML page from a proxy).
    """

    def __init__(self, status: int, code: int | None, msg: str, url: str):
        self.status = status
        self.code = code
        self.msg = msg
        self.url = url
        code_part = f" (Binance code {code})" if code is not None else ""
        super().__init__(f"{url} answered HTTP {status}{code_part}: {msg}")


class BinanceRestClient:
    def __init__(self, base_url: str, timeout: float = 10):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def ping(self) -> None:
        """GET /api/v3/ping: raises unless the exchange answers."""
        self._get("/api/v3/ping")

    def server_time(self) -> int:
        """GET /api/v3/time: the exchange's clock in milliseconds since the epoch."""
        url, body = self._get("/api/v3/time")
        if not isinstance(body, dict) or not isinstance(body.get("serverTime"), int):
            raise ExchangeError(200, None, f"expected {{'serverTime': <int>}}, got {_snippet(body)}", url)
        return body["serverTime"]

    def recent_trades(self, symbol: str, limit: int = 50) -> list[dict[str, Any]]:
        """GET /api/v3/trades: the most recent `limit` (1..1000) trades of `symbol`, oldest first."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit must be between 1 and 1000, got {limit}")
        url, body = self._get("/api/v3/trades", {"symbol": symbol, "limit": limit})
        if not isinstance(body, list):
            raise ExchangeError(200, None, f"expected a list of trades, got {_snippet(body)}", url)
        return body

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> BinanceRestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> tuple[str, Any]:
        url = self.base_url + path
        try:
            response = self._session.get(url, params=params, timeout=self.timeout)
        except requests.Timeout:
            raise ExchangeUnreachable(url, f"no answer within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise ExchangeUnreachable(url, _connection_reason(exc)) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            if isinstance(body, dict) and "msg" in body:
                raise ExchangeError(response.status_code, body.get("code"), str(body["msg"]), url)
            raise ExchangeError(response.status_code, None, _describe_non_binance_body(response), url)
        if body is None:
            raise ExchangeError(response.status_code, None, _describe_non_binance_body(response), url)
        return url, body


def _connection_reason(exc: requests.ConnectionError) -> str:
    """A short reason, e.g. 'Connection refused', instead of urllib3's nested retry message."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if match:
        return match.group(1).strip()
    if "Failed to resolve" in text or "NameResolutionError" in text:
        return "host name could not be resolved"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {_snippet(text)}"
    return _snippet(text)


def _describe_non_binance_body(response: requests.Response) -> str:
    """Name what came back when it is not JSON from Binance (an HTML error page, a proxy's text), briefly."""
    content_type = response.headers.get("Content-Type", "unknown content type")
    text = response.text.strip()
    if "html" in content_type.lower() or not text:
        return f"{response.reason or 'no reason given'} (a {content_type} body, not a Binance API answer)"
    return f"{response.reason or 'no reason given'}: {_snippet(text, 120)}"


def _snippet(value: object, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
