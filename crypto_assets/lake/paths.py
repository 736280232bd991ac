"""Where a minute of trades lives in the lake.

Layout (hive-style, readable by DuckDB/pyarrow with ``hive_partitioning``)::

    <root>/raw_trades/symbol=<SYMBOL>/date=<YYYY-MM-DD>/<HH-MM>.parquet

``<root>`` is a local folder or ``s3://bucket/prefix``; this module only builds the part below it. A symbol is
validated before it ever becomes part of a path, and a minute must be given by its exact start (ms, UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime

from crypto_assets.exchange.endpoints import SYMBOL_PATTERN
from crypto_assets.minutes import MINUTE_MS

TABLE = "raw_trades"


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` if it is 5 to 20 upper-case letters or digits (like BTCUSDT); raise ValueError otherwise."""
    if not isinstance(symbol, str) or not SYMBOL_PATTERN.fullmatch(symbol):
        raise ValueError(f"invalid symbol {symbol!r}: a symbol is 5 to 20 upper-case letters or digits, like BTCUSDT")
    return symbol


def validate_minute(minute_start_ms: int) -> int:
    """Return ``minute_start_ms`` if it is a non-negative int on a minute boundary; raise ValueError otherwise."""
    if isinstance(minute_start_ms, bool) or not isinstance(minute_start_ms, int):
        raise ValueError(f"minute start must be an int of milliseconds, got {minute_start_ms!r}")
    if minute_start_ms < 0 or minute_start_ms % MINUTE_MS:
        raise ValueError(
            f"minute start {minute_start_ms} ms is not minute-aligned "
            f"(must be a non-negative multiple of {MINUTE_MS} ms)"
        )
    return minute_start_ms


def minute_file_path(symbol: str, minute_start_ms: int) -> str:
    """The path of a minute's file relative to the lake root, with '/' separators."""
    validate_symbol(symbol)
    validate_minute(minute_start_ms)
    at = datetime.fromtimestamp(minute_start_ms // 1000, tz=UTC)
    return f"{TABLE}/symbol={symbol}/date={at:%Y-%m-%d}/{at:%H-%M}.parquet"
