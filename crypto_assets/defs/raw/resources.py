"""Dagster resources. Their values come from `Settings.from_env()` when the definitions load."""

from dagster import ConfigurableResource

from crypto_assets.exchange.archive import BinanceArchive
from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.exchange.weight_budget import URGENT_RESERVE, WeightBudget
from crypto_assets.ingest.universe import Selection, Universe, configured, kept
from crypto_assets.lake import Lake, lake_from_url
from crypto_assets.settings import (
    DEFAULT_METRICS_HOST,
    DEFAULT_METRICS_PORT,
    DEFAULT_SPOOL_DIR,
    DEFAULT_SPOOL_MAX_MB,
    DEFAULT_SYMBOLS_PER_CONNECTION,
    DEFAULT_WEIGHT_BUDGET_DIR,
    Settings,
)


class ExchangeResource(ConfigurableResource):
    """Where the Binance (or simulator) endpoints are, which symbols this deployment captures, the folder of the
    REST weight budget that every process of the machine shares (``CRYPTO_WEIGHT_BUDGET_DIR``), and how the live
    stream runs (symbols per connection, shards, the capture process's metrics endpoint).
    ``archive_url``: Binance's public daily archive (``BINANCE_ARCHIVE_URL``); None: every minute over REST."""

    rest_url: str
    ws_url: str
    symbols: list[str]  # the symbols defined when the code location loaded (the universe's ``defined()``)
    weight_budget_dir: str = DEFAULT_WEIGHT_BUDGET_DIR
    archive_url: str | None = None
    symbols_per_connection: int = DEFAULT_SYMBOLS_PER_CONNECTION  # the live stream's, CRYPTO_SYMBOLS_PER_CONNECTION
    quote_asset: str | None = None  # CRYPTO_SYMBOLS=quote:<ASSET>: the universe is every pair quoted in it
    stream_shards: int = 1  # CRYPTO_STREAM_SHARDS
    # where each stream shard's capture process serves its Prometheus metrics (CRYPTO_METRICS_HOST, _PORT): shard
    # i on metrics_port + i; 0: none
    metrics_host: str = DEFAULT_METRICS_HOST
    metrics_port: int = DEFAULT_METRICS_PORT

    @classmethod
    def from_settings(cls, settings: Settings, symbols: list[str] | None = None) -> "ExchangeResource":
        """``symbols``: the universe's symbols once resolved (a quote selection has no explicit ones)."""
        return cls(
            rest_url=settings.binance_rest_url,
            ws_url=settings.binance_ws_url,
            symbols=list(settings.symbols if symbols is None else symbols),
            weight_budget_dir=settings.weight_budget_dir,
            archive_url=settings.binance_archive_url,
            symbols_per_connection=settings.symbols_per_connection,
            quote_asset=settings.quote_asset,
            stream_shards=settings.stream_shards,
            metrics_host=settings.metrics_host,
            metrics_port=settings.metrics_port,
        )

    def selection(self) -> Selection:
        """What CRYPTO_SYMBOLS selects: the explicit list, or every pair of the quote asset."""
        return Selection(quote_asset=self.quote_asset) if self.quote_asset else Selection(tuple(self.symbols))

    def universe(self, lake: Lake) -> Universe:
        """The universe as last resolved and kept in ``lake`` (the universe sensor refreshes it); before the first
        resolution, the symbols this code location loaded with."""
        known = kept(self.selection(), lake)
        return known if known is not None else configured(Selection(tuple(self.symbols)))

    def rest_client(self, timeout: float = 10) -> BinanceRestClient:
        """A new REST client spending the machine's one weight budget of the exchange host (shared through
        ``weight_budget_dir`` with every other run and the capture process); the caller closes it (it is a
        context manager)."""
        return BinanceRestClient(
            self.rest_url,
            timeout=timeout,
            budget=WeightBudget.for_host(
                self.rest_url, state_dir=self.weight_budget_dir, urgent_reserve=URGENT_RESERVE
            ),
        )

    def archive(self) -> BinanceArchive | None:
        """A new client of the daily archive (a context manager), or None when none is configured."""
        return BinanceArchive(self.archive_url) if self.archive_url else None


class LakeResource(ConfigurableResource):
    """The trade lake: a local folder, or ``s3://bucket/prefix`` (boto3's usual credential chain; ``endpoint_url``
    for S3-compatible stores, from AWS_ENDPOINT_URL)."""

    url: str
    endpoint_url: str | None = None
    # Where the live stream's decided minutes wait while the lake does not answer (local disk of the stream's run).
    spool_dir: str = DEFAULT_SPOOL_DIR
    spool_max_mb: int = DEFAULT_SPOOL_MAX_MB

    @classmethod
    def from_settings(cls, settings: Settings) -> "LakeResource":
        return cls(
            url=settings.lake_url,
            endpoint_url=settings.aws_endpoint_url,
            spool_dir=str(settings.spool_dir),
            spool_max_mb=settings.spool_max_mb,
        )

    def lake(self) -> Lake:
        """The lake, built as the capture process builds it (``lake_from_url``: one S3 client configuration)."""
        return lake_from_url(self.url, self.endpoint_url)
