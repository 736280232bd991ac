"""Binance spot market-data endpoints and channels, declared once for the client and the simulator."""

import re

# A spot symbol as this project accepts it (configuration, lake paths): 5 to 20 upper-case letters or digits.
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{5,20}$")

PING = "/api/v3/ping"
TIME = "/api/v3/time"
EXCHANGE_INFO = "/api/v3/exchangeInfo"
TRADES = "/api/v3/trades"
HISTORICAL_TRADES = "/api/v3/historicalTrades"
AGG_TRADES = "/api/v3/aggTrades"
KLINES = "/api/v3/klines"

# REQUEST_WEIGHT of each endpoint as Binance documents it (see ../shared/binance-api.md).
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

# Stream channels: `<symbol lower case>@<channel>`.
TRADE_CHANNEL = "trade"
AGG_TRADE_CHANNEL = "aggTrade"
KLINE_1M_CHANNEL = "kline_1m"
