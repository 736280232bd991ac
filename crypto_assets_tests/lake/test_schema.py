from decimal import Decimal

import pyarrow as pa
import pytest

from crypto_assets.lake.schema import TRADE_SCHEMA, TradeValueError, parquet_to_table, table_to_parquet, trades_to_table
from crypto_assets_tests.lake.trades import MINUTE, simulated_minute, trade


def as_strings(column) -> list[str]:
    return [format(value, "f") for value in column.to_pylist()]


def test_schema_types():
    assert TRADE_SCHEMA.field("trade_id").type == pa.int64()
    for name in ("price", "qty", "quote_qty"):
        assert TRADE_SCHEMA.field(name).type == pa.decimal128(18, 8)
    for name in ("trade_time", "received_at"):
        assert TRADE_SCHEMA.field(name).type == pa.timestamp("ms", tz="UTC")
    assert TRADE_SCHEMA.field("is_buyer_maker").type == pa.bool_()
    assert TRADE_SCHEMA.field("received_at").nullable


def test_prices_round_trip_exactly_through_parquet():
    trades = simulated_minute()
    assert len(trades) > 1000
    table = parquet_to_table(table_to_parquet(trades_to_table(trades)))
    assert table.schema == TRADE_SCHEMA
    assert as_strings(table.column("price")) == [t.price for t in trades]
    assert as_strings(table.column("qty")) == [t.qty for t in trades]
    assert table.column("trade_id").to_pylist() == [t.trade_id for t in trades]
    assert table.column("trade_time").cast(pa.int64()).to_pylist() == [t.trade_time for t in trades]
    assert table.column("received_at").cast(pa.int64()).to_pylist() == [t.received_at for t in trades]
    assert table.column("is_buyer_maker").to_pylist() == [t.is_buyer_maker for t in trades]


def test_extreme_decimals_round_trip():
    trades = [trade(1, "9999999999.99999999", "1.00000000"), trade(2, "0.00000001", "1.00000000"),
              trade(3, "100", "0.001")]
    table = parquet_to_table(table_to_parquet(trades_to_table(trades)))
    assert as_strings(table.column("price")) == ["9999999999.99999999", "0.00000001", "100.00000000"]
    assert as_strings(table.column("qty")) == ["1.00000000", "1.00000000", "0.00100000"]


def test_quote_qty_is_exact():
    trades = simulated_minute()
    table = trades_to_table(trades)
    expected = [Decimal(t.price) * Decimal(t.qty) for t in trades]
    assert table.column("quote_qty").to_pylist() == expected
    assert trades_to_table([trade(1, "96748.61000000", "0.00012000")]).column("quote_qty")[0].as_py() == \
        Decimal("11.6098332")


def test_quote_qty_not_representable_raises_naming_the_trade():
    with pytest.raises(TradeValueError, match=r"= 0\.000000005 of trade BTCUSDT #7 .*refusing to round"):
        trades_to_table([trade(6, "1.00", "1.00"), trade(7, "0.00000001", "0.50000000")])
    with pytest.raises(TradeValueError, match="#8"):
        trades_to_table([trade(8, "9999999999.00000000", "2.00000000")])  # overflows 10 integer digits


@pytest.mark.parametrize("price", ["1.000000001", "abc", "", "99999999999", "NaN", "-"])
def test_bad_price_raises_naming_the_trade(price):
    with pytest.raises(TradeValueError, match=r"price .* #5 "):
        trades_to_table([trade(4), trade(5, price=price)])


def test_sorted_and_deduplicated_by_trade_id():
    table = trades_to_table([trade(3, offset_ms=3), trade(1, offset_ms=1, received_at=MINUTE + 9), trade(2),
                             trade(1, offset_ms=1, received_at=None), trade(3, offset_ms=3)])
    assert table.column("trade_id").to_pylist() == [1, 2, 3]
    assert table.column("received_at")[0].as_py() is not None  # the first occurrence is kept


def test_conflicting_duplicate_is_refused():
    with pytest.raises(ValueError, match="trade_id 1 appears twice with different price"):
        trades_to_table([trade(1, "1.00"), trade(1, "2.00")])


def test_mixed_symbols_refused_and_empty_table():
    with pytest.raises(ValueError, match="several symbols"):
        trades_to_table([trade(1), trade(2, symbol="ETHUSDT")])
    assert trades_to_table([]).schema == TRADE_SCHEMA
    assert trades_to_table([]).num_rows == 0


def test_rest_trades_have_null_received_at():
    table = trades_to_table([trade(1, received_at=None)])
    assert table.column("received_at").null_count == 1
