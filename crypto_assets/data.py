"""The data outside Dagster, for notebooks and scripts: trades of a time range from the lake, candles from the
warehouse, with the project's configuration (``Settings.from_env()``: CRYPTO_LAKE_URL, DBT_DUCKDB_PATH, ...) unless
given. No Dagster imports.

    from crypto_assets import data
    trades = data.trades(["BTCUSDT", "ETHUSDT"], "2026-12-07 10:00", "2026-12-07 11:00")  # pyarrow Table
    candles = data.candles("BTCUSDT", "2026-12-07", "2026-12-08", interval="1h")

Times are UTC: a ``datetime`` (naive ones are taken as UTC) or text ``datetime.fromisoformat`` reads
("2026-12-07 10:00", "2026-12-07T10:00Z", "2026-12-07"); ``start`` is inclusive, ``end`` exclusive. Tables are
pyarrow with exact decimals; ``.to_pandas(types_mapper=pandas.ArrowDtype)`` keeps them exact in pandas."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from crypto_assets.lake import Lake, lake_from_url
from crypto_assets.lake.ranges import read_range
from crypto_assets.settings import Settings

Moment = dt.datetime | str
INTERVALS = {"1m": ("candles_1m", "minute_start"), "1h": ("candles_1h", "hour_start")}


def trades(symbols: str | Sequence[str], start: Moment, end: Moment, *, lake: Lake | None = None) -> pa.Table:
    """Every trade of ``symbols`` with start <= trade_time < end (whole minutes), as one table: a ``symbol`` column,
    then the lake's columns (``crypto_assets.lake.schema.TRADE_SCHEMA``), by symbol and trade id. A minute the lake
    does not hold yet raises ``MinutesNotInLake`` naming it."""
    lake = lake or _lake()
    start_ms, end_ms = _ms(start, "start"), _ms(end, "end")
    tables = []
    for symbol in _symbols(symbols):
        table = read_range(lake, symbol, start_ms, end_ms)
        tables.append(table.add_column(0, "symbol", pa.array([symbol] * table.num_rows, pa.string())))
    return pa.concat_tables(tables)


def candles(
    symbols: str | Sequence[str], start: Moment, end: Moment, *, interval: str = "1h", duckdb_path: str | None = None
) -> pa.Table:
    """The gold candles (``interval`` "1m" or "1h") of ``symbols`` opening in [start, end), from the warehouse dbt
    builds (read-only, closed again at once: DuckDB lets dbt write only while no one holds the file)."""
    if interval not in INTERVALS:
        raise ValueError(f"interval {interval!r}: expected one of {', '.join(INTERVALS)}")
    table, column = INTERVALS[interval]
    path = duckdb_path or Settings.from_env().duckdb_path
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(
            f"select * from {table} where symbol in (select unnest($symbols)) and {column} >= $start "
            f"and {column} < $end order by symbol, {column}",
            {"symbols": list(_symbols(symbols)), "start": _utc(start, "start"), "end": _utc(end, "end")},
        ).to_arrow_table()


def _lake() -> Lake:
    settings = Settings.from_env()
    return lake_from_url(settings.lake_url, settings.aws_endpoint_url)


def _symbols(symbols: str | Sequence[str]) -> list[str]:
    return [s.upper() for s in ([symbols] if isinstance(symbols, str) else symbols)]


def _utc(moment: Moment, name: str) -> dt.datetime:
    """``moment`` as a naive UTC datetime (DuckDB's timestamps here are UTC, without a zone)."""
    if isinstance(moment, str):
        try:
            moment = dt.datetime.fromisoformat(moment)
        except ValueError:
            raise ValueError(f"{name} {moment!r} is not a time: expected e.g. '2026-12-07 10:00' (UTC)") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _ms(moment: Moment, name: str) -> int:
    return int(_utc(moment, name).replace(tzinfo=dt.UTC).timestamp() * 1000)
