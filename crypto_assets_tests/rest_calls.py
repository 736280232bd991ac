"""A REST client that counts its requests per endpoint, for tests that check what a path spent."""

import collections

from crypto_assets.exchange.rest import BinanceRestClient


class CountingClient(BinanceRestClient):
    """Counts requests per endpoint (``calls[path]``), to check the weight spent."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: collections.Counter[str] = collections.Counter()

    def _request(self, path, params=None):
        self.calls[path] += 1
        return super()._request(path, params)
