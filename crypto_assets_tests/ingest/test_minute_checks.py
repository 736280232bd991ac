"""The three checks of a stored minute, on tables built from hand-made trades."""

from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.ingest.minute_checks import check_ids, check_kline, check_values, summarize
from crypto_assets.lake.schema import trades_to_table

M = 1_700_000_040_000  # a minute start


def trades(*ids, price="100.5", qty="0.1", at=M + 1_000):
    return [Trade("BTCUSDT", i, price, qty, at + n, False) for n, i in enumerate(ids)]


def kline(n, volume, first=None, last=None, open_time=M):
    return Kline("BTCUSDT", open_time, open_time + 59_999, "1", "1", "1", "1", volume, "0", n, "0", "0", first, last)


def test_dense_and_continuous():
    table = trades_to_table(trades(11, 12, 13))
    result = check_ids(M, table, prev_last_id=10, next_first_id=14)
    assert result.passed and "unchecked" not in result.description
    assert check_ids(M, table, None, None).passed
    assert "unchecked" in check_ids(M, table, None, None).description


def test_hole_and_broken_continuity_are_named():
    table = trades_to_table(trades(11, 12, 15))
    result = check_ids(M, table, prev_last_id=9, next_first_id=17)
    assert not result.passed
    assert "12 -> 15" in result.description
    assert "does not follow the previous minute's last id 9" in result.description
    assert "next minute starts at id 17, not at 16" in result.description


def test_empty_minute_continuity():
    empty = trades_to_table([])
    assert check_ids(M, empty, 10, 11).passed
    assert "jump" in check_ids(M, empty, 10, 13).description


def test_kline_agreement():
    table = trades_to_table(trades(11, 12, 13))
    assert check_kline(M, table, kline(3, "0.30000000")).passed
    assert check_kline(M, table, kline(3, "0.3", first=11, last=13)).passed
    wrong = check_kline(M, table, kline(4, "0.4", first=10, last=13))
    assert not wrong.passed
    for text in ("trade count 4 != 3 rows", "volume 0.4 != sum of qty 0.3", "first id 10 != 11"):
        assert text in wrong.description
    assert not check_kline(M, table, None).passed


def test_values_sane():
    assert check_values(M, trades_to_table(trades(1, 2))).passed
    assert "price <= 0" in check_values(M, trades_to_table(trades(1, price="0"))).description
    outside = check_values(M, trades_to_table(trades(1, at=M + 60_000)))
    assert "outside the minute" in outside.description


def test_summary_is_exact():
    summary = summarize(M, trades_to_table(trades(7, 8, price="0.00000003", qty="3")))
    assert (summary.rows, summary.first_trade_id, summary.last_trade_id) == (2, 7, 8)
    assert (summary.base_volume, summary.quote_volume, summary.source) == ("6", "0.00000018", "rest")
    empty = summarize(M, trades_to_table([]))
    assert (empty.rows, empty.first_trade_id, empty.base_volume, empty.quote_volume) == (0, None, "0", "0")
