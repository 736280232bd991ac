from decimal import Context, Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_assets.lake.schema import (
    TRADE_SCHEMA,
    TradeValueError,
    parquet_to_table,
    quote_amounts,
    table_to_parquet,
    trades_to_table,
)
from crypto_assets_tests.lake.trades import MINUTE, simulated_minute, trade

EXACT = Context(prec=60)  # Python's default context rounds products to 28 digits


def product(price: str, qty: str) -> Decimal:
    return EXACT.multiply(Decimal(price), Decimal(qty))


def as_strings(column) -> list[str]:
    return [format(value, "f") for value in column.to_pylist()]


def test_schema_types():
    assert TRADE_SCHEMA.field("trade_id").type == pa.int64()
    for name in ("price", "qty"):
        assert TRADE_SCHEMA.field(name).type == pa.decimal128(19, 8)
    assert "quote_qty" not in TRADE_SCHEMA.names  # derived, computed exactly where it is needed
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


INT64_MAX_E8 = "92233720368.54775807"  # Binance's largest price or qty: an int64 count of 1e-8


def test_extreme_decimals_round_trip():
    trades = [
        trade(1, INT64_MAX_E8, INT64_MAX_E8),
        trade(2, "0.00000001", "0.00000001"),
        trade(3, "100", "0.001"),
        trade(4, "0.00001234", "45000000000"),
    ]  # a meme coin's tens of billions
    table = parquet_to_table(table_to_parquet(trades_to_table(trades)))
    assert as_strings(table.column("price")) == [INT64_MAX_E8, "0.00000001", "100.00000000", "0.00001234"]
    assert as_strings(table.column("qty")) == [INT64_MAX_E8, "0.00000001", "0.00100000", "45000000000.00000000"]


def test_quote_amounts_are_exact_up_to_16_decimals():
    trades = simulated_minute() + [trade(10**12, INT64_MAX_E8, INT64_MAX_E8), trade(10**12 + 1, "0.00000001", "0.5")]
    amounts = quote_amounts(trades_to_table(trades)).to_pylist()
    assert amounts == [product(t.price, t.qty) for t in trades]
    assert str(amounts[-2]) == "8507059173023461584739.6907784232501249"  # 22 integer digits, 16 decimals
    assert amounts[-1] == Decimal("0.000000005")


_units = st.integers(min_value=1, max_value=2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_units, _units), min_size=1, max_size=20))
def test_any_binance_price_and_qty_round_trip_exactly(pairs):
    """Every pair of int64 counts of 1e-8 Binance can send is stored exactly, and its quote amount is exact."""
    texts = [("%d.%08d" % divmod(p, 10**8), "%d.%08d" % divmod(q, 10**8)) for p, q in pairs]
    trades = [trade(i + 1, price, qty) for i, (price, qty) in enumerate(texts)]
    table = parquet_to_table(table_to_parquet(trades_to_table(trades)))
    assert as_strings(table.column("price")) == [p for p, _ in texts]
    assert as_strings(table.column("qty")) == [q for _, q in texts]
    assert quote_amounts(table).to_pylist() == [product(p, q) for p, q in texts]


def test_files_of_the_first_layout_still_read(tmp_path):
    """Minute files written before the representation changed (decimal(18, 8) and a stored quote_qty) read as
    today's schema, exactly."""
    old = pa.table(
        {
            "trade_id": pa.array([1], pa.int64()),
            "price": pa.array([Decimal("96748.61")], pa.decimal128(18, 8)),
            "qty": pa.array([Decimal("0.00012")], pa.decimal128(18, 8)),
            "quote_qty": pa.array([Decimal("11.6098332")], pa.decimal128(18, 8)),
            "trade_time": pa.array([MINUTE], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "is_buyer_maker": [True],
            "received_at": pa.array([None], pa.timestamp("ms", tz="UTC")),
        }
    )
    pq.write_table(old, tmp_path / "old.parquet")
    table = parquet_to_table((tmp_path / "old.parquet").read_bytes())
    assert table.schema == TRADE_SCHEMA
    assert as_strings(table.column("price")) == ["96748.61000000"]


@pytest.mark.parametrize("price", ["1.000000001", "abc", "", "999999999999", "NaN", "-"])
def test_bad_price_raises_naming_the_trade(price):
    with pytest.raises(TradeValueError, match=r"price .* #5 "):
        trades_to_table([trade(4), trade(5, price=price)])


def test_sorted_and_deduplicated_by_trade_id():
    table = trades_to_table(
        [
            trade(3, offset_ms=3),
            trade(1, offset_ms=1, received_at=MINUTE + 9),
            trade(2),
            trade(1, offset_ms=1, received_at=None),
            trade(3, offset_ms=3),
        ]
    )
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
