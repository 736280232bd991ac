"""Binance's public daily archive (``BINANCE_ARCHIVE_URL``, https://data.binance.vision): downloads verified against
their CHECKSUM, and the trades and 1m klines read back out of the zips. No Dagster imports.

- ``BinanceArchive.download`` streams one daily zip (trades, or 1m klines) into a folder, computing its sha256 on
  the way (never the whole file in memory), and compares it with the zip's ``.CHECKSUM`` sibling
  (``<64 hex>  <zip name>``). A mismatch downloads the file once more; a second mismatch raises
  ``ArchiveChecksumMismatch``. A 404 (a day not published yet, or before the symbol's listing) returns None.
- Each HTTP request is tried at most twice: again after a short back-off on a 5xx, a timeout or a broken
  connection, never on a 4xx. Then ``ExchangeUnreachable`` (nothing answered) or ``ExchangeError``, naming the URL.
  Downloads cost no REST weight: the archive is another host, outside the weight budget.
- ``iter_trades`` streams the CSV inside a trades zip as pyarrow record batches (prices and quantities as exact
  strings; times in milliseconds); ``read_klines`` reads a klines zip into ``Kline`` records.
- A header row (``id,price,...`` / ``open_time,...``), which Binance's spot files do not have but its futures
  files do, is skipped.
- Times: the files of days from 2025-01-01 on give microseconds, those of days before give milliseconds. The unit is
  decided by the file's day (from its name), and every row's time must lie in that day in that unit.
- A verified checksum proves the file is the one Binance published, not that the file holds the whole day, nor that
  it is a readable zip: Binance has published truncated days whose checksum matched. A zip that does not open, or
  whose data breaks off or fails its CRC, raises ``MalformedArchive`` before any row is read. Callers prove the
  minutes themselves.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import hashlib
import io
import logging
import os
import re
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import requests

from crypto_assets.backoff import Backoff
from crypto_assets.exchange import endpoints
from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable, connection_reason, snippet
from crypto_assets.exchange.models import Kline, MalformedPayload
from crypto_assets.minutes import DAY_MS, day_start_ms, day_text

__all__ = [
    "ArchiveChecksumMismatch",
    "ArchiveFile",
    "BinanceArchive",
    "MalformedArchive",
    "TRADE_SCHEMA",
    "iter_trades",
    "read_klines",
    "time_factor",
]

log = logging.getLogger(__name__)

KINDS = ("trades", "klines")
MINUTE_MS = 60_000
CHUNK = 1 << 20  # bytes per read while downloading
DEFAULT_BATCH_ROWS = 1_000_000
# CSV bytes pyarrow reads and converts at a time (~30,000 trades rows): smaller blocks cost no speed, larger ones
# memory (a BTC day read with 2 MiB blocks peaks near 240 MB of RSS, with 80 MiB blocks near 640 MB).
BLOCK_BYTES = 2 << 20

# What reading a broken zip raises: no zip at all or no central directory (a file cut off), deflated data that breaks
# off or is damaged, a CRC that fails at the end of the member.
_BROKEN_ZIP = (zipfile.BadZipFile, zlib.error, EOFError)
_CHECKSUM_LINE = re.compile(r"([0-9a-fA-F]{64})  (\S+)\n?")
_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
_TRADE_COLUMNS = ("trade_id", "price", "qty", "quote_qty", "trade_time", "is_buyer_maker", "is_best_match")
_TRADE_TYPES = {
    "trade_id": pa.int64(),
    "price": pa.string(),
    "qty": pa.string(),
    "quote_qty": pa.string(),
    "trade_time": pa.int64(),
    "is_buyer_maker": pa.bool_(),
    "is_best_match": pa.bool_(),
}
# What iter_trades yields: the archive's columns, trade_time in milliseconds.
TRADE_SCHEMA = pa.schema([(name, _TRADE_TYPES[name]) for name in _TRADE_COLUMNS])
_TRADE_ROW = re.compile(
    r"[0-9]+,[0-9]+(\.[0-9]+)?,[0-9]+(\.[0-9]+)?,[0-9]+(\.[0-9]+)?,[0-9]+,(True|False),(True|False)"
)


class ArchiveChecksumMismatch(ExchangeError):
    """A file did not match its CHECKSUM, twice: ``expected`` is the CHECKSUM's digest, ``actual`` the sha256 of the
    bytes received (both of the last attempt)."""

    def __init__(self, url: str, expected: str, actual: str, attempts: int):
        self.expected = expected
        self.actual = actual
        self.attempts = attempts
        super().__init__(
            200,
            None,
            f"sha256 {actual} of the download does not match its CHECKSUM {expected} ({attempts} attempts)",
            url,
        )


class MalformedArchive(MalformedPayload):
    """An archive file whose content is not what Binance publishes (``line``: 1-based line of the CSV, when known)."""

    def __init__(self, file: str, message: str, line: int | None = None):
        self.file = file
        self.line = line
        super().__init__(f"{file}{f' line {line}' if line is not None else ''}: {message}")


@dataclass(frozen=True)
class ArchiveFile:
    """A downloaded daily zip whose sha256 matched its CHECKSUM."""

    path: Path
    url: str
    sha256: str  # the verified digest (hex, lower case)
    size: int  # bytes
    symbol: str
    day: str  # YYYY-MM-DD (UTC)
    kind: str  # trades or klines (1m)


def time_factor(day_start: int) -> int:
    """What a millisecond time is multiplied by in the archive file of the day starting at ``day_start`` (ms):
    1000 (microseconds) from 2025-01-01 on, 1 (milliseconds) before."""
    return 1000 if day_start >= endpoints.ARCHIVE_MICROSECONDS_FROM_MS else 1


def archive_path(symbol: str, day: str | dt.date, kind: str) -> str:
    """The path of a daily zip under the archive's base URL."""
    if kind not in KINDS:
        raise ValueError(f"unknown archive kind {kind!r}; expected one of {KINDS}")
    if not endpoints.SYMBOL_PATTERN.match(symbol or ""):
        raise ValueError(f"not a symbol: {symbol!r}")
    template = endpoints.ARCHIVE_DAILY_TRADES if kind == "trades" else endpoints.ARCHIVE_DAILY_KLINES_1M
    return template.format(symbol=symbol, day=day_text(day_start_ms(day)))


class _NotFound:
    pass


_NOT_FOUND = _NotFound()


class BinanceArchive:
    """A client of the daily archive at ``base_url`` (``https://data.binance.vision``, or the simulator's REST URL).

    ``timeout``: seconds to connect and between bytes; ``max_attempts``: tries of one HTTP request (5xx, timeouts,
    broken connections; default 2), the first ``backoff_s`` seconds apart, doubling; ``session``: a
    ``requests.Session`` to use (the client then does not close it). A context manager, like ``BinanceRestClient``."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 30,
        session: requests.Session | None = None,
        *,
        max_attempts: int = 2,
        backoff_s: float = 0.5,
    ):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.retry = Backoff(backoff_s, 8 * backoff_s)
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()

    def __enter__(self) -> BinanceArchive:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def url(self, symbol: str, day: str | dt.date, kind: str) -> str:
        """The URL of the zip of ``kind`` (trades, klines) for ``symbol`` on ``day``."""
        return self.base_url + archive_path(symbol, day, kind)

    # ---- downloads ------------------------------------------------------------------------------------------------
    def download(self, symbol: str, day: str | dt.date, kind: str, folder: str | Path) -> ArchiveFile | None:
        """Download the zip of ``kind`` for ``symbol`` on ``day`` into ``folder`` (as its archive name) and verify it
        against its CHECKSUM; None when the archive does not have it (404: not published yet, or before the listing).
        A mismatch is downloaded once more; a second raises ``ArchiveChecksumMismatch``."""
        url = self.url(symbol, day, kind)
        name = url.rsplit("/", 1)[1]
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        expected = actual = ""
        for attempt in (1, 2):
            checksum = self._fetch(url + endpoints.ARCHIVE_CHECKSUM_SUFFIX, lambda r: self._checksum_of(r, name))
            if checksum is _NOT_FOUND:
                return None
            expected = checksum
            fd, part = tempfile.mkstemp(dir=folder, prefix=f"{name}.", suffix=".part")
            os.close(fd)
            try:
                got = self._fetch(url, functools.partial(_save, path=part))
                if got is _NOT_FOUND:
                    return None
                actual, size = got
                if actual == expected:
                    final = folder / name
                    os.replace(part, final)
                    return ArchiveFile(final, url, actual, size, symbol, day_text(day_start_ms(day)), kind)
            finally:
                Path(part).unlink(missing_ok=True)
            log.warning(
                "%s: sha256 %s does not match its CHECKSUM %s (attempt %d of 2)", url, actual, expected, attempt
            )
        raise ArchiveChecksumMismatch(url, expected, actual, 2)

    def _checksum_of(self, response: requests.Response, name: str) -> str:
        """The digest of a CHECKSUM body ``<64 hex>  <name>`` (a trailing newline tolerated), lower case."""
        body = response.content[:1000]
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            text = None
        m = _CHECKSUM_LINE.fullmatch(text) if text is not None else None
        if m is None or m[2] != name:
            raise ExchangeError(
                response.status_code,
                None,
                f"expected a CHECKSUM line '<sha256 hex>  {name}', got {body[:200]!r}",
                response.url,
            )
        return m[1].lower()

    def _fetch(self, url: str, read: Callable[[requests.Response], Any]) -> Any:
        """``read(response)`` of a 200 answer to GET ``url``, or ``_NOT_FOUND`` on a 404; at most ``max_attempts``
        tries, for 5xx answers, timeouts and broken connections."""
        error: Exception | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                with self._session.get(url, timeout=self.timeout, stream=True) as response:
                    status = response.status_code
                    if status == 200:
                        return read(response)
                    if status == 404:
                        return _NOT_FOUND
                    error = ExchangeError(status, None, snippet(response.text), url)
                    if status < 500:
                        raise error
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                error = ExchangeUnreachable(url, connection_reason(exc))
            if attempt < self.max_attempts:
                delay = self.retry.delay_s(attempt)
                log.warning("%s (attempt %d of %d); trying again in %.1f s", error, attempt, self.max_attempts, delay)
                time.sleep(delay)
        assert error is not None
        raise error


def _save(response: requests.Response, path: str) -> tuple[str, int]:
    """Write the body to ``path`` block by block; (sha256 hex, size)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "wb") as out:
        for block in response.iter_content(CHUNK):
            digest.update(block)
            out.write(block)
            size += len(block)
    return digest.hexdigest(), size


# ---- reading the files ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _open_zip(path: str) -> Iterator[zipfile.ZipFile]:
    """The zip at ``path``, its members' CRCs checked first; ``MalformedArchive`` naming it when it is not a zip or
    its data is damaged. The CRC is checked before a row is read because a damaged deflate stream can inflate to rows
    that look right (a changed digit in a price) for a while before the CRC fails at the end; the check inflates the
    file once more (~1 s for a BTC day) and keeps nothing."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise MalformedArchive(path, f"{bad} fails its CRC-32: the zip is damaged")
            yield zf
    except _BROKEN_ZIP as exc:
        raise MalformedArchive(path, f"not a readable zip: {exc}") from None


def _member(zf: zipfile.ZipFile, path: str, symbol: str, label: str) -> tuple[zipfile.ZipInfo, str]:
    """The zip's one CSV, named ``<symbol>-<label>-<YYYY-MM-DD>.csv``, and its day."""
    infos = zf.infolist()
    pattern = re.compile(rf"{re.escape(symbol)}-{re.escape(label)}-([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})\.csv")
    m = pattern.fullmatch(infos[0].filename) if len(infos) == 1 else None
    if m is None:
        raise MalformedArchive(path, f"expected one member {symbol}-{label}-YYYY-MM-DD.csv, got {zf.namelist()}")
    try:
        day_start_ms(m[1])
    except ValueError:
        raise MalformedArchive(path, f"{infos[0].filename} names no real day") from None
    return infos[0], m[1]


def _path_of(file: ArchiveFile | str | Path) -> str:
    return str(file.path if isinstance(file, ArchiveFile) else file)


def iter_trades(
    file: ArchiveFile | str | Path, symbol: str, batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """The trades of a daily trades zip as record batches (``TRADE_SCHEMA``: trade_time in milliseconds) of at most
    ``batch_rows`` rows, one per ``BLOCK_BYTES`` of CSV or less, streamed from the zip (memory bounded by a block,
    whatever the day's size).

    Raises ``MalformedArchive`` naming the file and the line for a row that is not a trades row (columns, numbers,
    ``True``/``False``) or whose time is not of the file's day in the file's unit (µs from 2025-01-01, ms before)."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    path = _path_of(file)
    with _open_zip(path) as zf:
        info, day = _member(zf, path, symbol, "trades")
        where = f"{path}:{info.filename}"
        if info.file_size == 0:
            return
        start = day_start_ms(day)
        factor = time_factor(start)
        low, high = start * factor, (start + DAY_MS) * factor
        unit = "microseconds" if factor == 1000 else "milliseconds"
        header = _has_header(zf, info)
        read = pacsv.ReadOptions(column_names=list(_TRADE_COLUMNS), block_size=BLOCK_BYTES, skip_rows=int(header))
        convert = pacsv.ConvertOptions(
            column_types=_TRADE_TYPES,
            true_values=["True"],
            false_values=["False"],
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        done = int(header)  # lines read so far (rows yielded, and the header row)
        with zf.open(info) as stream:
            try:
                reader = pacsv.open_csv(stream, read_options=read, convert_options=convert)
                for batch in reader:
                    for offset in range(0, batch.num_rows, batch_rows):
                        part = batch.slice(offset, batch_rows)
                        yield _checked_trades(part, where, done, low, high, factor, unit, day)
                        done += part.num_rows
            except pa.ArrowInvalid as exc:
                raise _located(zf, info, where, done, exc) from None


def _has_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """Whether the CSV starts with a header row (``id,price,...``). Binance's spot files have none, its futures files
    and some re-uploads do: a first line that starts with a letter is taken for one."""
    with zf.open(info) as stream:
        return stream.read(1).isalpha()


def _checked_trades(
    batch: pa.RecordBatch, where: str, done: int, low: int, high: int, factor: int, unit: str, day: str
) -> pa.RecordBatch:
    times = batch.column(4)
    bounds = pc.min_max(times)
    if bounds["min"].as_py() < low or bounds["max"].as_py() >= high:
        outside = pc.or_(pc.less(times, low), pc.greater_equal(times, high))
        row = pc.index(outside, True).as_py()
        value = times[row].as_py()
        raise MalformedArchive(
            where, f"time {value} is not a time of {day} in {unit} (the file's unit)", done + row + 1
        )
    for column in (1, 2):
        ok = pc.match_substring_regex(batch.column(column), _DECIMAL)
        if not pc.all(ok).as_py():
            row = pc.index(ok, False).as_py()
            name = _TRADE_COLUMNS[column]
            raise MalformedArchive(
                where, f"{name} {batch.column(column)[row].as_py()!r} is not a decimal", done + row + 1
            )
    if factor != 1:
        times = pc.divide(times, factor)  # integer division: the millisecond holding the microsecond
    return pa.RecordBatch.from_arrays([*batch.columns[:4], times, *batch.columns[5:]], schema=TRADE_SCHEMA)


def _located(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, done: int, exc: Exception) -> MalformedArchive:
    """The first line from ``done`` on that is not a trades row, found by reading the CSV again (only after pyarrow
    refused a block, which it reports without a line number)."""
    with zf.open(info) as stream:
        for number, raw in enumerate(io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""), 1):
            if number <= done:
                continue
            line = raw.rstrip("\n")
            if not _TRADE_ROW.fullmatch(line):
                return MalformedArchive(where, f"not a trades row: {line[:200]!r} ({exc})", number)
    return MalformedArchive(where, f"unreadable after row {done}: {exc}")


def read_klines(file: ArchiveFile | str | Path, symbol: str) -> list[Kline]:
    """The 1m klines of a daily klines zip (times in milliseconds; no first / last trade id: None). Raises
    ``MalformedArchive`` naming the file and the line for a row that is not a 1m kline of the file's day."""
    path = _path_of(file)
    with _open_zip(path) as zf:
        info, day = _member(zf, path, symbol, "1m")
        where = f"{path}:{info.filename}"
        start = day_start_ms(day)
        factor = time_factor(start)
        with zf.open(info) as stream:
            rows = enumerate(csv.reader(io.TextIOWrapper(stream, encoding="utf-8", newline="")), 1)
            return [
                _kline(row, number, symbol, where, start, factor)
                for number, row in rows
                if not (number == 1 and row and row[0].isidentifier())  # a header row (open_time,...)
            ]


def _kline(row: list[str], number: int, symbol: str, where: str, start: int, factor: int) -> Kline:
    if len(row) != 12:
        raise MalformedArchive(where, f"expected 12 columns, got {len(row)}: {','.join(row)[:200]!r}", number)
    decimals = (row[1], row[2], row[3], row[4], row[5], row[7], row[9], row[10])
    if not all(re.fullmatch(r"[0-9]+(\.[0-9]+)?", d) for d in decimals) or not all(
        c.isascii() and c.isdigit() for c in (row[0], row[6], row[8])
    ):
        raise MalformedArchive(where, f"not a kline row: {','.join(row)[:200]!r}", number)
    open_raw, close_raw = int(row[0]), int(row[6])
    open_time, close_time = open_raw // factor, close_raw // factor
    if (
        open_raw % factor
        or (close_raw + 1) % factor
        or not start <= open_time < start + DAY_MS
        or open_time % MINUTE_MS
        or close_time != open_time + MINUTE_MS - 1
    ):
        unit = "microseconds" if factor == 1000 else "milliseconds"
        raise MalformedArchive(
            where, f"open {open_raw} / close {close_raw} are not a 1m kline of the file's day in {unit}", number
        )
    return Kline(
        symbol, open_time, close_time, row[1], row[2], row[3], row[4], row[5], row[7], int(row[8]), row[9], row[10]
    )
