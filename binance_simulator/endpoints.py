"""What the simulator serves: Binance's spot market-data paths, the REQUEST_WEIGHT of each, row limits and stream
channels, and the minute its clocks count in.

The Binance client declares the same facts for itself in ``crypto_assets.exchange.endpoints``. The simulator keeps
its own copy on purpose, and ``crypto_assets_tests/simulator/test_client_agrees.py`` compares the two entry by entry:
a wrong entry on either side fails that test instead of being served back to the client that holds it.
"""

MINUTE_MS = 60_000  # Binance's clock minute (weight windows, 1m klines), in milliseconds

PING = "/api/v3/ping"
TIME = "/api/v3/time"
EXCHANGE_INFO = "/api/v3/exchangeInfo"
TRADES = "/api/v3/trades"
HISTORICAL_TRADES = "/api/v3/historicalTrades"
AGG_TRADES = "/api/v3/aggTrades"
KLINES = "/api/v3/klines"

# REQUEST_WEIGHT of each endpoint as Binance documents it; none of these depends on the request's limit.
REST_WEIGHTS = {
    PING: 1,
    TIME: 1,
    EXCHANGE_INFO: 20,
    TRADES: 25,
    HISTORICAL_TRADES: 25,
    AGG_TRADES: 4,
    KLINES: 2,
}
# Binance's legal range for a `symbol` parameter, as its -1100 error message quotes it: a symbol outside it is refused
# before any lookup (-1121 is for legal names of unknown symbols).
LEGAL_SYMBOL_PARAMETER = "^[A-Z0-9-_.]{1,20}$"
DEFAULT_LIMIT = 500  # rows when a trades / historicalTrades / aggTrades / klines request sends no limit
MAX_LIMIT = 1000  # a larger limit is served as this many rows
# aggTrades with both startTime and endTime: the window must be shorter than an hour (-1127 otherwise).
AGG_TRADES_MAX_WINDOW_MS = 3_600_000

# Stream channels: `<symbol lower case>@<channel>`, in the order their payloads go out within one tick.
TRADE_CHANNEL = "trade"
AGG_TRADE_CHANNEL = "aggTrade"
KLINE_1M_CHANNEL = "kline_1m"
STREAM_CHANNELS = (TRADE_CHANNEL, AGG_TRADE_CHANNEL, KLINE_1M_CHANNEL)


class ServedAt:
    """The base URLs of a simulator listening on ``host``:``port``: REST (``/api/v3/...``), streams (``/ws/...``,
    ``/stream?streams=...``) and the daily archive (``/data/...``) share the port."""

    host: str
    port: int

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def archive_url(self) -> str:
        """The base URL of the daily archive (``/data/spot/daily/...``), Binance's ``https://data.binance.vision``:
        served on the same port."""
        return self.rest_url
