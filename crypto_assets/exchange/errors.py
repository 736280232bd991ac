"""The errors the Binance clients raise. No Dagster imports.

``ExchangeUnreachable``: nothing answered. ``ExchangeError``: the exchange answered with an error (or with a body
that is not what was asked for); ``ExchangeBanned`` and ``UnknownSymbol`` are the two kinds callers act on.
"""

from __future__ import annotations

import re

import requests

from crypto_assets.minutes import utc_text


class ExchangeUnreachable(Exception):
    """The exchange could not be reached at all (connection refused, DNS failure, TLS failure, timeout).

    ``url`` is the URL that was tried (several, comma-separated, when a client fails over across base URLs: then
    ``urls`` lists them one by one)."""

    def __init__(self, url: str, reason: str, urls: list[str] | None = None):
        self.url = url
        self.reason = reason
        self.urls = urls or [url]
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


class ExchangeBanned(ExchangeError):
    """The exchange banned this IP (HTTP 418) until ``until_ms`` (ms since the epoch, exchange clock).

    Raised by the call that received the 418 and, without contacting the exchange, by every call made in this
    process before the ban ends."""

    def __init__(self, until_ms: int, url: str, msg: str | None = None):
        self.until_ms = until_ms
        until = utc_text(until_ms)
        super().__init__(
            418, -1003, msg or f"IP banned by the exchange until {until}; no request is sent before then", url
        )
        self.until = until
        self.args = (f"{url}: {self.msg}",)  # not "answered": most of these never reached the exchange


class UnknownSymbol(ExchangeError, ValueError):
    """Symbols the exchange does not list (Binance -1121) or does not trade right now (status other than TRADING).

    ``unknown``: symbols the exchange does not know; ``not_trading``: symbol -> its status (HALT, BREAK, ...)."""

    def __init__(self, unknown: list[str], not_trading: dict[str, str], url: str):
        self.unknown = list(unknown)
        self.not_trading = dict(not_trading)
        parts = []
        if self.unknown:
            parts.append("unknown symbol" + ("s " if len(self.unknown) > 1 else " ") + ", ".join(self.unknown))
        if self.not_trading:
            parts.append("not trading: " + ", ".join(f"{s} (status {st})" for s, st in self.not_trading.items()))
        super().__init__(400, -1121 if self.unknown else None, "; ".join(parts), url)


def connection_reason(exc: Exception) -> str:
    """A short reason, e.g. 'Connection refused', instead of urllib3's nested retry message."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if match:
        return match.group(1).strip()
    if "Failed to resolve" in text or "NameResolutionError" in text:
        return "host name could not be resolved"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {snippet(text)}"
    return snippet(text)


def snippet(value: object, limit: int = 200) -> str:
    """``value`` as one line of at most ``limit`` characters, for error messages."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
