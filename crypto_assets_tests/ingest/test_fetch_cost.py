"""fetch_cost: a day's wanted minutes go to the archive exactly when their REST pages cost more than the day's zip."""

from crypto_assets.exchange.models import Kline
from crypto_assets.ingest.fetch_cost import archive_is_cheaper, archive_seconds, rest_seconds

MINUTE_MS = 60_000


def day_of(trades_per_minute: int) -> dict[int, Kline]:
    return {
        m: Kline("BTCUSDT", m, m + MINUTE_MS - 1, "1", "1", "1", "1", "1", "1", trades_per_minute, "1", "1")
        for m in range(0, 1440 * MINUTE_MS, MINUTE_MS)
    }


def test_rest_is_priced_by_the_page():
    assert rest_seconds(0) == 0
    assert rest_seconds(1) == rest_seconds(1000) == 0.25
    assert rest_seconds(1001) == 0.5


def test_a_busy_day_goes_to_the_archive_after_about_25_minutes():
    btc = day_of(2_570)  # ~3.7 million trades a day
    assert 16 < archive_seconds(3_700_800) < 17
    assert not archive_is_cheaper(btc, range(0, 20 * MINUTE_MS, MINUTE_MS))
    assert archive_is_cheaper(btc, range(0, 30 * MINUTE_MS, MINUTE_MS))
    assert archive_is_cheaper(btc, range(0, 60 * MINUTE_MS, MINUTE_MS))  # a gap run's hour: the zip, not 155 pages


def test_a_quiet_day_stays_on_rest_unless_most_of_it_is_wanted():
    quiet = day_of(7)  # ~10,000 trades a day
    assert not archive_is_cheaper(quiet, range(0, 240 * MINUTE_MS, MINUTE_MS))  # 1,680 trades: two pages
    assert archive_is_cheaper(quiet, range(0, 720 * MINUTE_MS, MINUTE_MS))


def test_minutes_without_trades_or_without_a_kline_cost_nothing():
    assert not archive_is_cheaper(day_of(0), range(0, 1440 * MINUTE_MS, MINUTE_MS))
    assert not archive_is_cheaper({}, range(0, 60 * MINUTE_MS, MINUTE_MS))
