"""Dagster resources. Their values come from `Settings.from_env()` when the definitions load."""

from dagster import ConfigurableResource

from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.settings import Settings


class ExchangeResource(ConfigurableResource):
    """Where the Binance (or simulator) endpoints are, and which symbols this deployment captures."""

    rest_url: str
    ws_url: str
    symbols: list[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> "ExchangeResource":
        return cls(rest_url=settings.binance_rest_url, ws_url=settings.binance_ws_url, symbols=list(settings.symbols))

    def rest_client(self, timeout: float = 10) -> BinanceRestClient:
        """A new REST client; the caller closes it (it is a context manager)."""
        return BinanceRestClient(self.rest_url, timeout=timeout)
