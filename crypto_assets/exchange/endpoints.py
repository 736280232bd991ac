"""Binance spot market-data endpoints and channels, as the client calls them.

The simulator declares what it serves in its own ``binance_simulator.endpoints``, on purpose: a test
(``crypto_assets_tests/simulator/test_client_agrees.py``) compares the two tables entry by entry.
"""

import re

# A spot symbol as this project accepts it (configuration, lake paths, spool file names): 5 to 20 upper-case letters
# or digits. SYMBOL is the bare expression, for patterns that embed a symbol.
SYMBOL = r"[A-Z0-9]{5,20}"
SYMBOL_PATTERN = re.compile(rf"^{SYMBOL}$")
# What Binance itself accepts in a `symbol` parameter (wider): anything else is answered -1100 without a lookup.
LEGAL_SYMBOL_PARAMETER = re.compile(r"^[A-Z0-9-_.]{1,20}$")

PING = "/api/v3/ping"
TIME = "/api/v3/time"
EXCHANGE_INFO = "/api/v3/exchangeInfo"
TRADES = "/api/v3/trades"
HISTORICAL_TRADES = "/api/v3/historicalTrades"
AGG_TRADES = "/api/v3/aggTrades"
KLINES = "/api/v3/klines"

# REQUEST_WEIGHT of each endpoint as Binance documents it.
REST_WEIGHTS = {
    PING: 1,
    TIME: 1,
    EXCHANGE_INFO: 20,
    TRADES: 25,
    HISTORICAL_TRADES: 25,
    AGG_TRADES: 4,
    KLINES: 2,
}
MAX_LIMIT = 1000  # rows per trades / historicalTrades / aggTrades / klines request
# aggTrades with both startTime and endTime: Binance refuses a window of an hour or more (-1127).
AGG_TRADES_MAX_WINDOW_MS = 3_600_000

# Stream channels: `<symbol lower case>@<channel>`.
TRADE_CHANNEL = "trade"
AGG_TRADE_CHANNEL = "aggTrade"
KLINE_1M_CHANNEL = "kline_1m"

# Binance's public daily archive (BINANCE_ARCHIVE_URL, https://data.binance.vision): one zip per symbol and UTC day,
# beside a `<zip>.CHECKSUM` file (`<sha256 hex>  <zip name>`). Path templates for
# `str.format(symbol=..., day="YYYY-MM-DD")`; the simulator serves the same paths (its tests spell them out).
ARCHIVE_DAILY_TRADES = "/data/spot/daily/trades/{symbol}/{symbol}-trades-{day}.zip"
ARCHIVE_DAILY_KLINES_1M = "/data/spot/daily/klines/{symbol}/1m/{symbol}-1m-{day}.zip"
ARCHIVE_CHECKSUM_SUFFIX = ".CHECKSUM"
# The first UTC day (2025-01-01) whose spot archive files give times in microseconds; days before it give milliseconds.
ARCHIVE_MICROSECONDS_FROM_MS = 1_735_689_600_000
