"""Which way a day's wanted minutes are cheaper to fetch: its daily archive zips, or REST. Decided here only.

Both ways are priced in seconds from the trade counts of the day's 1m klines (which the klines zip gives for free):
- REST pages 1000 trades per ``historicalTrades`` call of weight 25; 6000 weight a minute allows 4 pages a second, so
  a page costs a quarter of a second of the IP's budget, the budget the live stream's repairs also draw on.
- The archive reads the whole day whatever is wanted of it: the trades zip (about 20 bytes a trade, downloaded at a
  modest 20 MB/s), parsed and proven at ~300,000 trades/s (``bench/archive_backfill.py``: 310k-700k per step), plus
  a fixed half second (the zip's CHECKSUM and the day's two boundary calls).

So a BTC day of 3.7 million trades goes to the archive once ~66,000 of its trades are wanted (about 25 minutes), a
quiet symbol of 10,000 trades a day once ~2,200 are (most of the day); an hour of BTC is 38 s of REST budget against
16 s of archive."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from crypto_assets.exchange.models import Kline

TRADES_PER_PAGE = 1000
REST_SECONDS_PER_PAGE = 0.25  # weight 25 of 6000 a minute
ARCHIVE_FIXED_SECONDS = 0.5
ARCHIVE_BYTES_PER_TRADE = 20
ARCHIVE_BYTES_PER_SECOND = 20e6
ARCHIVE_TRADES_PER_SECOND = 300_000


def rest_seconds(trades: int) -> float:
    """The REST budget ``trades`` trades cost (the pages of them, rounded up)."""
    return -(-trades // TRADES_PER_PAGE) * REST_SECONDS_PER_PAGE


def archive_seconds(day_trades: int) -> float:
    """What reading a day of ``day_trades`` trades from its archive zip costs."""
    per_trade = ARCHIVE_BYTES_PER_TRADE / ARCHIVE_BYTES_PER_SECOND + 1 / ARCHIVE_TRADES_PER_SECOND
    return ARCHIVE_FIXED_SECONDS + day_trades * per_trade


def archive_is_cheaper(day_klines: Mapping[int, Kline], wanted: Iterable[int]) -> bool:
    """Whether the day's archive costs less than REST for the ``wanted`` minute starts, by the day's klines (minute
    start -> kline). A minute without a kline counts as no trades (a truncated klines file: REST proves those)."""
    wanted_trades = sum(day_klines[m].trade_count for m in wanted if m in day_klines)
    day_trades = sum(k.trade_count for k in day_klines.values())
    return wanted_trades > 0 and archive_seconds(day_trades) < rest_seconds(wanted_trades)
