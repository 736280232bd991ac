"""Check the configuration and that the exchange is reachable, before `dagster dev` starts.

    python -m crypto_assets.preflight

Exit codes: 0 all reachable, 1 the exchange could not be reached (REST or WebSocket), 2 the configuration is invalid.
Failures are printed plainly on stderr, without a stack trace.
"""

from __future__ import annotations

import re
import sys

import websocket

from crypto_assets.exchange.rest import BinanceRestClient, ExchangeError, ExchangeUnreachable
from crypto_assets.settings import Settings, SettingsError

TIMEOUT_SECONDS = 5


def check_rest(rest_url: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """GET /api/v3/ping. Return None when it answers, else a one-line problem description."""
    with BinanceRestClient(rest_url, timeout=timeout) as client:
        try:
            client.ping()
        except ExchangeUnreachable as exc:
            return f"REST API (BINANCE_REST_URL) could not be reached at {exc.url}: {exc.reason}"
        except ExchangeError as exc:
            return f"REST API (BINANCE_REST_URL) did not answer the ping as Binance would: {exc}"
    return None


def check_websocket(ws_url: str, symbol: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """Open (and close) a WebSocket to `<ws_url>/ws/<symbol>@trade`. Return None on success, else the problem."""
    url = f"{ws_url}/ws/{symbol.lower()}@trade"
    try:
        connection = websocket.create_connection(url, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is reported, never raised
        return f"WebSocket API (BINANCE_WS_URL) could not be reached at {url}: {_reason(exc)}"
    try:
        connection.close(timeout=1)
    except Exception:  # noqa: BLE001 - the connection was established; a messy close does not matter here
        pass
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return f"the WebSocket handshake was answered with HTTP {exc.status_code}"
    if isinstance(exc, TimeoutError | websocket.WebSocketTimeoutException):
        return f"no answer within {TIMEOUT_SECONDS} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = re.sub(r"\[Errno -?\d+\]\s*", "", " ".join(str(exc).split()))
    return text or type(exc).__name__


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"preflight: configuration error: {exc}", file=sys.stderr)
        return 2

    problems = [
        problem
        for problem in (
            check_rest(settings.binance_rest_url),
            # a quote selection names no symbol yet: any listed pair proves the WebSocket reachable
            check_websocket(settings.binance_ws_url, settings.symbols[0] if settings.symbols else "BTCUSDT"),
        )
        if problem
    ]
    if problems:
        for problem in problems:
            print(f"preflight: {problem}", file=sys.stderr)
        print(
            "preflight: check your network, or set BINANCE_REST_URL / BINANCE_WS_URL (environment or .env).\n"
            "preflight: to run everything offline against the bundled exchange simulator, use `make demo`.",
            file=sys.stderr,
        )
        return 1

    print(
        f"preflight: OK - REST {settings.binance_rest_url} and WebSocket {settings.binance_ws_url} reachable; "
        f"symbols {','.join(settings.symbols) or f'quote:{settings.quote_asset} (resolved from exchangeInfo)'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
