"""The lake's trade schema, and the conversion of ``Trade`` records into an Arrow table and Parquet bytes.

Prices and quantities stay exact over Binance's whole range: Binance keeps each as an int64 count of 1e-8 (at most
92,233,720,368.54775807, 19 digits), so the decimal strings it sends become ``decimal128(19, 8)``. The quote amount
``price x qty`` (up to 16 decimals and 22 integer digits) is not stored: it is derived, and whoever needs it computes
it exactly from the two (``quote_volume`` below; dbt silver as ``decimal(38, 16)``). A price or qty that is not an
exact decimal of at most 8 decimals and 11 integer digits raises ``TradeValueError`` naming the trade and the value:
nothing is ever rounded.

The conversion works on whole columns (pyarrow casts in C): a Python pass only runs to name the bad trade once a
column cast has failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crypto_assets.exchange.models import Trade

DECIMAL = pa.decimal128(19, 8)  # Binance's int64 counts of 1e-8
QUOTE_DECIMAL = pa.decimal256(39, 16)  # price x qty, exact (a product of two decimal(19, 8))
TIMESTAMP = pa.timestamp("ms", tz="UTC")

TRADE_SCHEMA = pa.schema(
    [
        pa.field("trade_id", pa.int64(), nullable=False),
        pa.field("price", DECIMAL, nullable=False),
        pa.field("qty", DECIMAL, nullable=False),
        pa.field("trade_time", TIMESTAMP, nullable=False),
        pa.field("is_buyer_maker", pa.bool_(), nullable=False),
        pa.field("received_at", TIMESTAMP, nullable=True),  # null for trades fetched over REST
    ]
)

# Columns that identify a trade's content: two rows with one trade_id must agree on these (received_at may differ,
# e.g. the same trade seen on the stream and over REST).
_CONTENT_COLUMNS = ("price", "qty", "trade_time", "is_buyer_maker")

_EIGHT_DECIMALS = Decimal("1e-8")
_DECIMAL_LIMIT = Decimal(10) ** 11  # decimal128(19, 8): at most 11 integer digits


class TradeValueError(ValueError):
    """A trade whose values cannot be stored exactly (or at all)."""


def trades_to_table(trades: Sequence[Trade]) -> pa.Table:
    """``trades`` (all of one symbol) as a ``TRADE_SCHEMA`` table, sorted by trade_id, one row per trade_id.

    Raises TradeValueError naming the trade when a price or qty is not an exact decimal of at most 8 decimals and 11
    integer digits, and ValueError when the trades mix symbols or repeat a trade_id with
    different content."""
    if not trades:
        return TRADE_SCHEMA.empty_table()
    symbols = {t.symbol for t in trades}
    if len(symbols) > 1:
        raise ValueError(f"trades of several symbols in one table: {sorted(symbols)}")
    try:
        ids = pa.array([t.trade_id for t in trades], pa.int64())
        times = pa.array([t.trade_time for t in trades], pa.int64()).cast(TIMESTAMP)
        received = pa.array([t.received_at for t in trades], pa.int64()).cast(TIMESTAMP)
        makers = pa.array([t.is_buyer_maker for t in trades], pa.bool_())
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TradeValueError(f"trades with a non-integer id or time or a non-bool is_buyer_maker: {exc}") from None
    for name, column in (("trade_id", ids), ("trade_time", times), ("is_buyer_maker", makers)):
        if column.null_count:
            raise TradeValueError(f"{name} missing in {_first_null(trades, column)}")
    price = _decimal_column(trades, "price")
    qty = _decimal_column(trades, "qty")
    table = pa.Table.from_arrays([ids, price, qty, times, makers, received], schema=TRADE_SCHEMA)
    return normalize(table)


def columns_to_table(
    symbol: str,
    trade_id: pa.Array,
    price: pa.Array,
    qty: pa.Array,
    trade_time: pa.Array,
    is_buyer_maker: pa.Array,
) -> pa.Table:
    """Trades of ``symbol`` given as columns (int64 ids, price and qty as decimal strings, int64 times in ms, bools;
    fetched, not streamed: no received_at) as a ``TRADE_SCHEMA`` table, sorted by trade_id, one row per trade_id.
    The same errors as ``trades_to_table``; the conversion stays in C for a day of millions of trades."""

    def describe(i: int) -> str:
        return f"trade {symbol} #{trade_id[i].as_py()} at {trade_time[i].as_py()}"

    price_column = _to_decimal(price, price.to_pylist, "price", describe)
    qty_column = _to_decimal(qty, qty.to_pylist, "qty", describe)
    received = pa.nulls(len(trade_id), pa.int64()).cast(TIMESTAMP)
    table = pa.Table.from_arrays(
        [trade_id, price_column, qty_column, trade_time.cast(TIMESTAMP), is_buyer_maker, received],
        schema=TRADE_SCHEMA,
    )
    return normalize(table)


def normalize(table: pa.Table) -> pa.Table:
    """``table`` sorted by trade_id with one row per trade_id (the first one met, so an existing file's rows win
    over a later write's). Raises ValueError when two rows with one trade_id disagree on price, qty, trade_time
    or is_buyer_maker: that is corruption, not a repeat."""
    n = table.num_rows
    if n == 0:
        return table
    ids = table.column("trade_id").to_numpy()
    if n > 1 and np.all(ids[1:] > ids[:-1]):
        return table
    order = np.argsort(ids, kind="stable")
    table = table.take(pa.array(order))
    ids = ids[order]
    dup = np.zeros(n, dtype=bool)
    dup[1:] = ids[1:] == ids[:-1]
    if not dup.any():
        return table
    positions = np.arange(n)
    first_of_run = np.maximum.accumulate(np.where(dup, 0, positions))
    repeats = np.nonzero(dup)[0]
    originals = first_of_run[repeats]
    for name in _CONTENT_COLUMNS:
        column = table.column(name)
        same = pc.equal(column.take(pa.array(repeats)), column.take(pa.array(originals)))
        if not pc.all(same).as_py():
            bad = repeats[np.nonzero(~same.to_numpy(zero_copy_only=False))[0][0]]
            raise ValueError(
                f"trade_id {int(ids[bad])} appears twice with different {name}: "
                f"{column[int(first_of_run[bad])].as_py()} and {column[int(bad)].as_py()}"
            )
    return table.filter(pa.array(~dup))


# ---- Parquet ------------------------------------------------------------------------------------------------------
# Measured on 10 BTC-like minutes at 40 trades/s (simulator model), bytes per trade: snappy defaults 29.4; zstd with
# dictionaries 20.0; zstd without dictionaries 13.8; zstd, no dictionaries, delta for the monotonic ids and times
# 12.3 (10.4 at 400 trades/s). Dictionary pages lose here: zstd already compresses the repeated INT64 decimals.
_DELTA_COLUMNS = {
    "trade_id": "DELTA_BINARY_PACKED",
    "trade_time": "DELTA_BINARY_PACKED",
    "received_at": "DELTA_BINARY_PACKED",
}


def table_to_parquet(table: pa.Table, metadata: dict[str, str] | None = None) -> bytes:
    """The whole Parquet file for ``table`` (a ``TRADE_SCHEMA`` table) as bytes."""
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=3,
        use_dictionary=False,
        column_encoding=_DELTA_COLUMNS,
        write_statistics=True,
    )
    return sink.getvalue().to_pybytes()


def parquet_to_table(data: bytes) -> pa.Table:
    """A minute file's bytes back as a ``TRADE_SCHEMA`` table (file metadata dropped). Files of the first lake
    layout (``decimal(18, 8)`` and a stored ``quote_qty``) read the same: the decimals widen exactly and the
    derived column is left out."""
    # ParquetFile.read, one thread: a third of pq.read_table's cost per small file (no dataset set up for each file;
    # the caller reads many files at once), bench/data_loading.py
    table = pq.ParquetFile(pa.BufferReader(data)).read(columns=TRADE_SCHEMA.names, use_threads=False)
    table = table.replace_schema_metadata(None)
    return table if table.schema.equals(TRADE_SCHEMA) else table.cast(TRADE_SCHEMA)


def quote_amounts(table: pa.Table) -> pa.ChunkedArray:
    """``price x qty`` of every trade, exactly (``QUOTE_DECIMAL``: up to 16 decimals, never rounded)."""
    wide = pa.decimal256(DECIMAL.precision, DECIMAL.scale)
    return pc.multiply(table.column("price").cast(wide), table.column("qty").cast(wide))


# ---- helpers ------------------------------------------------------------------------------------------------------
def _decimal_column(trades: Sequence[Trade], name: str) -> pa.Array:
    values = [getattr(t, name) for t in trades]
    try:
        strings = pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        strings = None
    return _to_decimal(strings, lambda: values, name, lambda i: _describe(trades[i]))


def _to_decimal(
    strings: pa.Array | None, values: Callable[[], list], name: str, describe: Callable[[int], str]
) -> pa.Array:
    """``strings`` cast to ``DECIMAL`` exactly; else TradeValueError naming the first bad value (``values()``, the
    column as Python values) and its trade (``describe(i)``)."""
    column = None
    if strings is not None:
        try:
            column = strings.cast(DECIMAL)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            column = None
    if column is None or column.null_count:
        for i, value in enumerate(values()):
            problem = _decimal_problem(value)
            if problem:
                raise TradeValueError(f"{name} {value!r} of {describe(i)} {problem}")
        raise TradeValueError(f"{name} column could not be converted to {DECIMAL}")  # pragma: no cover
    return column


def _decimal_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "is not a decimal string"
    try:
        number = Decimal(value)
    except InvalidOperation:
        return "is not a decimal number"
    if not number.is_finite():
        return "is not a finite number"
    if number != number.quantize(_EIGHT_DECIMALS, rounding="ROUND_DOWN"):
        return "has more than 8 decimals (it cannot be stored exactly)"
    if abs(number) >= _DECIMAL_LIMIT:
        return "has more than 11 integer digits (beyond Binance's int64 counts of 1e-8)"
    return None


def _first_null(trades: Sequence[Trade], column: pa.Array) -> str:
    index = int(np.nonzero(column.is_null().to_numpy(zero_copy_only=False))[0][0])
    return _describe(trades[index])


def _describe(trade: Trade) -> str:
    return f"trade {trade.symbol} #{trade.trade_id} at {trade.trade_time}"
