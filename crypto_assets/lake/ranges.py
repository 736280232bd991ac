"""A range of minutes of one symbol read back from the lake: as one Arrow table, or as a stream of record batches
(one minute file at a time, memory bounded by the files in flight). Every minute of the range must have its file:
a minute the lake does not hold raises ``MinutesNotInLake`` naming it, never a table with rows silently missing.

Files are read by a small thread pool (``READERS``): decoding Parquet releases the GIL, and on S3 the requests
overlap. The rows keep ``TRADE_SCHEMA`` exactly (decimal128(19, 8) prices and quantities), ordered by minute and by
trade id within each minute (the files are sorted), so by trade id overall. No Dagster imports."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq

from crypto_assets.lake.schema import TRADE_SCHEMA
from crypto_assets.lake.store import Lake, LakeError, LocalLake
from crypto_assets.minutes import MINUTE_MS, check_whole_minutes, minute_key

READERS = 4  # minute files read at once (each decoded on one thread: bench/data_loading.py)
SHOWN = 10  # missing minutes named in an error (then how many more)


class MinutesNotInLake(LakeError):
    """Minutes of a range whose files the lake does not hold (not recorded yet, or never)."""

    def __init__(self, lake: Lake, symbol: str, missing: list[int]):
        self.symbol, self.missing = symbol, missing
        keys = ", ".join(minute_key(m) for m in missing[:SHOWN])
        more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
        super().__init__(f"{len(missing)} minute(s) of {symbol} are not in lake {lake.url}: {keys}{more}")


def read_range(lake: Lake, symbol: str, start_ms: int, end_ms: int) -> pa.Table:
    """Every trade of ``symbol`` in the minutes [start_ms, end_ms) as one ``TRADE_SCHEMA`` table. A local lake's
    files are read as one Parquet dataset (a day of BTC at 5-6 million trades/s on 2 cores, bench/data_loading.py);
    should that fail (a file of an older layout, or a damaged one), or on S3, file by file."""
    if isinstance(lake, LocalLake):
        _check_held(lake, symbol, start_ms, end_ms)
        paths = [lake.path_of(symbol, m) for m in range(start_ms, end_ms, MINUTE_MS)]
        try:
            return pq.read_table(paths, schema=TRADE_SCHEMA, pre_buffer=False)
        except (pa.ArrowException, OSError):
            pass  # file by file below: the same rows, or an error naming the minute
    batches = list(iter_range(lake, symbol, start_ms, end_ms))
    return pa.Table.from_batches(batches, schema=TRADE_SCHEMA)


def iter_range(lake: Lake, symbol: str, start_ms: int, end_ms: int) -> Iterator[pa.RecordBatch]:
    """The trades of the minutes [start_ms, end_ms) as record batches, minute after minute; at most ``READERS``
    minute files are held at once. Raises ``MinutesNotInLake`` here, before any batch, when a minute has no file (a
    check of every key first: cheap locally, a HEAD request each on S3)."""
    _check_held(lake, symbol, start_ms, end_ms)
    return _batches(lake, symbol, range(start_ms, end_ms, MINUTE_MS))


def _check_held(lake: Lake, symbol: str, start_ms: int, end_ms: int) -> None:
    """``MinutesNotInLake`` unless every minute of the range has its file."""
    check_whole_minutes(start_ms, end_ms)
    minutes = range(start_ms, end_ms, MINUTE_MS)
    with ThreadPoolExecutor(READERS, thread_name_prefix=f"lake-check-{symbol}") as pool:
        held = list(pool.map(lambda m: lake.exists(symbol, m), minutes))
    missing = [m for m, there in zip(minutes, held) if not there]
    if missing:
        raise MinutesNotInLake(lake, symbol, missing)


def _batches(lake: Lake, symbol: str, minutes: range) -> Iterator[pa.RecordBatch]:
    with ThreadPoolExecutor(READERS, thread_name_prefix=f"lake-read-{symbol}") as pool:
        for minute, table in zip(minutes, _read_ahead(pool, lake, symbol, minutes)):
            if table is None:  # removed since the check
                raise MinutesNotInLake(lake, symbol, [minute])
            yield from table.to_batches()


def _read_ahead(pool: ThreadPoolExecutor, lake: Lake, symbol: str, minutes: range) -> Iterator[pa.Table | None]:
    """The minutes' tables in order, ``READERS`` reads in flight ahead of the consumer."""
    pending = []
    for minute in minutes:
        pending.append(pool.submit(lake.read_minute, symbol, minute))
        if len(pending) > READERS:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()
