"""The minutes of one complete UTC day of one symbol from Binance's daily archive, every minute with its proof.

A checksum proves the file is the one Binance published, not that it holds the whole day, so every minute is proven
exactly as the REST path proves it (``completeness.prove_arrays``: dense ids, both boundaries, the 1m kline's count
and volume), the kline coming from the day's klines file:
1. the day's 1m klines zip and trades zip are downloaded and verified against their CHECKSUM
   (``exchange.archive.BinanceArchive``: a mismatch is downloaded once more, then given up);
2. the day's boundaries come from REST: the first trade at/after the day's start (the trade before it is the last
   trade before the day) and the first trade at/after the day's end (one aggTrades request each);
3. the trades CSV is streamed in blocks (never the whole day in memory); a minute is proven once the next minute
   holding a trade has begun (its first id is the end boundary), and the wanted minutes that are proven are
   written to the lake at once.
What the archive cannot prove (a truncated day, a hole, a row of the wrong minute, a value the lake refuses, a file
that breaks off) is left to REST: ``ArchiveDay.left`` with the reasons. A day the archive does not have (404: not
published yet, or before the listing), whose file fails its checksum twice, or whose host does not answer, is left to
REST whole (``ArchiveDay.skipped`` says why). No Dagster imports.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets.exchange.archive import (
    ArchiveFile,
    BinanceArchive,
    MalformedArchive,
    iter_trades,
    read_klines,
)
from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable
from crypto_assets.exchange.models import Kline
from crypto_assets.ingest.completeness import prove_arrays
from crypto_assets.lake.schema import TRADE_SCHEMA, TradeValueError, columns_to_table
from crypto_assets.lake.store import Lake, LakeError
from crypto_assets.minutes import DAY_MS, HOUR_MS, MINUTE_MS, day_start_ms, day_text, minute_key

_LAKE_COLUMNS = ("trade_id", "price", "qty", "trade_time", "is_buyer_maker")  # of the archive's columns
PROGRESS_STEP = 0.1  # a progress line each time another tenth of the day has been read
# Lake writes (Parquet encoding, fsync or an S3 PUT: the GIL released) overlap the reading, in threads.
WRITERS = 2
MAX_WRITES_IN_FLIGHT = 8  # minutes proven and waiting for their write: bounds memory


class BoundaryClient(Protocol):  # what the archive path needs of crypto_assets.exchange.rest.BinanceRestClient
    def first_trade_id(self, symbol: str, start_ms: int, end_ms: int) -> int | None: ...


@dataclass(frozen=True)
class ArchiveSource:
    """The verified files a day's minutes came from (URL and sha256 of the trades zip and of the klines zip)."""

    trades_url: str
    trades_sha256: str
    klines_url: str
    klines_sha256: str


@dataclass
class ArchiveDay:
    """What the archive did for one day: the minutes it wrote (minute start -> written at, ms), the minutes it left
    to REST with why, the day's klines (for the checks of the stored files) and the files it read."""

    day: str
    written: dict[int, int] = field(default_factory=dict)
    left: dict[int, tuple[str, ...]] = field(default_factory=dict)
    klines: dict[int, Kline] = field(default_factory=dict)
    source: ArchiveSource | None = None
    klines_file: ArchiveFile | None = None
    skipped: str | None = None  # why the whole day was left to REST
    trades: int = 0  # trades read from the file
    seconds: float = 0.0  # reading, proving and writing


def archive_klines(archive: BinanceArchive, symbol: str, start_ms: int, folder: Path) -> ArchiveDay:
    """Step 1 for the klines: the day's 1m klines from its verified klines zip (``ArchiveDay.klines``), or
    ``ArchiveDay.skipped`` saying why the archive cannot serve the day. ``start_ms``: the day's first millisecond."""
    day = ArchiveDay(day_text(start_ms))
    file = _download(archive, symbol, day, "klines", folder)
    if file is not None:
        try:
            day.klines = {k.open_time: k for k in read_klines(file, symbol)}
            day.klines_file = file
        except MalformedArchive as exc:
            day.skipped = f"unreadable klines file: {exc}"
    return day


def store_day_from_archive(
    archive: BinanceArchive,
    client: BoundaryClient,
    lake: Lake,
    symbol: str,
    day: ArchiveDay,
    wanted: Sequence[int],
    folder: Path,
    *,
    report: Callable[[str], None] = lambda _: None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Steps 1 to 3 for the trades: write the ``wanted`` minutes (ascending minute starts of ``day``, whose klines
    ``archive_klines`` read) that the archive proves, into ``day.written``; the others into ``day.left``.
    ``report`` gets the progress lines (share of the day, trades/s). Raises ``LakeError`` when the lake fails (what
    was written before is whole)."""
    start = day_start_ms(day.day)
    trades_file = None if day.skipped else _download(archive, symbol, day, "trades", folder)
    if trades_file is None or day.klines_file is None:
        day.left = {m: (f"from the archive: {day.skipped}",) for m in wanted}
        return
    day.source = ArchiveSource(trades_file.url, trades_file.sha256, day.klines_file.url, day.klines_file.sha256)
    try:
        _DayReader(day, client, lake, symbol, start, wanted, report, clock).run(trades_file)
    finally:
        trades_file.path.unlink(missing_ok=True)  # hundreds of MB for a busy day: not kept past its reading


def _download(archive: BinanceArchive, symbol: str, day: ArchiveDay, kind: str, folder: Path) -> ArchiveFile | None:
    """The verified file of ``kind``, or None with ``day.skipped`` saying why the archive cannot serve the day."""
    try:
        file = archive.download(symbol, day.day, kind, folder)
    except (ExchangeError, ExchangeUnreachable) as exc:  # a checksum that failed twice, a host that did not answer
        day.skipped = f"the {kind} file of {day.day} is not usable: {exc}"
        return None
    if file is None:
        day.skipped = f"the {kind} file of {day.day} is not published (404)"
    return file


class _DayReader:
    """One pass over a day's trades file, proving each minute as soon as the next trade after it is known."""

    def __init__(
        self,
        day: ArchiveDay,
        client: BoundaryClient,
        lake: Lake,
        symbol: str,
        day_start_ms: int,
        wanted: Sequence[int],
        report: Callable[[str], None],
        clock: Callable[[], float],
    ):
        self.day, self.client, self.lake, self.symbol = day, client, lake, symbol
        self.start = day_start_ms
        self.wanted = set(wanted)
        self.report, self.clock = report, clock
        self.prev_id: int | None = None  # last trade id before the minutes not yet proven
        self.held_minute: int | None = None  # the minute whose trades are being gathered
        self.held: list[pa.RecordBatch] = []
        self.proven_until = day_start_ms  # minutes before this are proven (or left)
        self.spoiled: dict[int, str] = {}  # minutes the file itself disqualifies, with why
        self.next_progress = PROGRESS_STEP
        self.writes: deque[tuple[int, Future]] = deque()  # (minute, its write) in flight, oldest first

    def run(self, file: ArchiveFile) -> None:
        started = time.monotonic()
        pool = ThreadPoolExecutor(WRITERS, thread_name_prefix=f"lake-{self.symbol}")
        try:
            first = self.client.first_trade_id(self.symbol, self.start, self.start + DAY_MS)
            self.prev_id = None if first is None else first - 1
            try:
                for batch in iter_trades(file, self.symbol):
                    self._take(batch, pool)
                    self.day.trades += batch.num_rows
                    self._progress(started)
            except MalformedArchive as exc:  # the minutes proven so far stay; the rest of the day goes to REST
                reason = f"the archive file breaks off: {exc}"
                self.day.left.update({m: (reason,) for m in self.wanted if m >= self.proven_until})
                while self.writes:
                    self._settle_oldest()
                return
            following = self.client.first_trade_id(self.symbol, self.start + DAY_MS, self.start + DAY_MS + HOUR_MS)
            self._prove_until(self.start + DAY_MS, following, pool)
            while self.writes:
                self._settle_oldest()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.day.seconds = time.monotonic() - started

    def _take(self, batch: pa.RecordBatch, pool: ThreadPoolExecutor) -> None:
        minutes = (batch.column(4).to_numpy() - self.start) // MINUTE_MS * MINUTE_MS + self.start
        cuts = np.flatnonzero(np.diff(minutes)) + 1
        for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [minutes.size]])):
            minute = int(minutes[lo])
            part = batch.slice(int(lo), int(hi - lo))
            if self.held_minute is None or minute > self.held_minute:
                if self.held_minute is not None or minute > self.proven_until:
                    self._prove_until(minute, part.column(0)[0].as_py(), pool)
                self.held_minute, self.held = minute, [part]
            elif minute == self.held_minute:
                self.held.append(part)
            else:  # a row of an earlier minute: the file is out of order here
                self.spoiled[self.held_minute] = (
                    f"the archive file holds trade {part.column(0)[0].as_py()} of minute {minute_key(minute)} "
                    f"among the trades of minute {minute_key(self.held_minute)}"
                )

    def _prove_until(self, end: int, next_id: int | None, pool: ThreadPoolExecutor) -> None:
        """Prove the held minute and the empty minutes after it up to ``end`` (exclusive), ``next_id`` being the first
        trade at/after ``end``; write the wanted ones that are proven."""
        for minute in range(self.proven_until, end, MINUTE_MS):
            trades = self.held if minute == self.held_minute else []
            table = pa.Table.from_batches(trades) if trades else None
            self._prove(minute, table, next_id, pool)
            if table is not None and table.num_rows:
                self.prev_id = table.column("trade_id")[-1].as_py()
        self.proven_until = end
        self.held_minute, self.held = None, []

    def _prove(self, minute: int, table: pa.Table | None, next_id: int | None, pool: ThreadPoolExecutor) -> None:
        if minute not in self.wanted:
            return
        if minute in self.spoiled:
            self.day.left[minute] = (self.spoiled[minute],)
            return
        try:
            stored = self._lake_table(table)
        except TradeValueError as exc:
            self.day.left[minute] = (f"the lake cannot hold a value of the archive: {exc}",)
            return
        ids = stored.column("trade_id").to_numpy()
        volume = pc.sum(stored.column("qty")).as_py()
        proof = prove_arrays(
            minute,
            ids,
            stored.column("trade_time").cast(pa.int64()).to_numpy(),
            Decimal(0) if volume is None else Decimal(volume),
            prev_trade_id=self.prev_id,
            next_trade_id=next_id,
            kline=self.day.klines.get(minute),
        )
        if not proof.complete:
            self.day.left[minute] = tuple(proof.reasons)
            return
        self.writes.append((minute, pool.submit(self.lake.write_table, self.symbol, minute, stored)))
        while len(self.writes) > MAX_WRITES_IN_FLIGHT:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        """Wait for the oldest write in flight; a LakeError stops the day (raised), a refused minute goes to REST."""
        minute, write = self.writes.popleft()
        try:
            write.result()
        except LakeError:
            raise
        except ValueError as exc:  # a trade the lake refuses: REST fetches the minute and names the value
            self.day.left[minute] = (f"the lake refused the archive's minute: {exc}",)
            return
        self.day.written[minute] = int(self.clock() * 1000)

    def _lake_table(self, table: pa.Table | None) -> pa.Table:
        """The minute's rows of the file as the lake stores them (``TRADE_SCHEMA``; TradeValueError for a value it
        cannot hold exactly)."""
        if table is None or not table.num_rows:
            return TRADE_SCHEMA.empty_table()
        return columns_to_table(self.symbol, *(table.column(name).combine_chunks() for name in _LAKE_COLUMNS))

    def _progress(self, started: float) -> None:
        share = (self.proven_until - self.start) / DAY_MS
        if share < self.next_progress:
            return
        elapsed = max(time.monotonic() - started, 1e-9)
        self.report(
            f"{self.symbol} {self.day.day}: {share:.0%} of the day read from the archive "
            f"({self.day.trades:,} trades, {self.day.trades / elapsed:,.0f} trades/s)"
        )
        while self.next_progress <= share:
            self.next_progress += PROGRESS_STEP
