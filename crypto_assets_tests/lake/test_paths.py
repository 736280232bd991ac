import re

import pytest

from crypto_assets.lake.paths import minute_file_path, validate_minute, validate_symbol

MINUTE = 1_763_708_460_000  # 2025-11-21 07:01 UTC


def test_layout():
    assert minute_file_path("BTCUSDT", MINUTE) == "raw_trades/symbol=BTCUSDT/date=2025-11-21/07-01.parquet"
    assert minute_file_path("ETHUSDT", 0) == "raw_trades/symbol=ETHUSDT/date=1970-01-01/00-00.parquet"
    assert minute_file_path("BTCUSDT", MINUTE - 7 * 3_600_000 - 2 * 60_000).endswith("date=2025-11-20/23-59.parquet")


@pytest.mark.parametrize(
    "symbol", ["btcusdt", "BTC", "BTC/USDT", "../../etc", "BTCUSDT ", "", "A" * 21, "BTC-USDT", None, 12345]
)
def test_invalid_symbol_is_refused_before_any_path(symbol):
    with pytest.raises(ValueError, match="invalid symbol"):
        minute_file_path(symbol, MINUTE)
    with pytest.raises(ValueError, match=re.escape(repr(symbol))):
        validate_symbol(symbol)


@pytest.mark.parametrize("minute", [MINUTE + 1, MINUTE + 59_999, MINUTE // 1000, -60_000, 1.5, "0", True])
def test_minute_must_be_aligned(minute):
    with pytest.raises(ValueError, match="minute"):
        minute_file_path("BTCUSDT", minute)


def test_valid_values_pass_through():
    assert validate_symbol("1000SATSUSDT") == "1000SATSUSDT"
    assert validate_minute(MINUTE) == MINUTE
