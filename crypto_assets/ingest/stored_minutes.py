"""Minutes into the lake, and the lake's minutes verified: what a partition's materialization stands on.

``store_range`` stores a range of whole minutes of one symbol:
1. the range's closed 1m klines: from the daily archive's klines file for complete days it reads from (below),
   over REST for the other minutes (one call per 1000 minutes);
2. minutes already in the lake whose file verifies (checks below, with the kline) are kept and not fetched again,
   unless ``refetch``;
3. with an archive: each complete UTC day (by the exchange's clock) whose minutes still to fetch cost more over REST
   than the day's archive (``fetch_cost``, by the trade counts of the day's klines) is read from the day's trades
   file, and every minute the archive proves is written
   (``archive_backfill``); days not published (404), files failing their checksum twice and the minutes the
   archive cannot prove go on to step 4;
4. the other minutes are fetched over REST per contiguous run of minutes, at most ``REST_MINUTES_PER_PASS`` per
   paging pass (``fetch_minutes``), and every proven minute is written (an unproven one is not written at all);
5. every stored minute of the range is read back and checked (``minute_checks``), neighbours included.

What became of each minute is a value, ``Outcome``, on its ``MinuteResult``. Failures stay with their minute: a
minute whose trades the lake refuses (a value it cannot store exactly) is ``REFUSED`` with a failed ``values_sane``
check naming the trade and the value, and the other minutes go on. A lake that fails (``LakeError``) stops the lake
work of the call: its minutes are ``NOT_STORED`` naming the lake (none is recorded); the files written before the
failure are whole (writes are atomic), and the next run keeps them. A minute that should be in the lake but is not
when read back (a checks-only run over a minute never stored, or a file gone behind the pipeline's back) is
``MISSING``, with no rule result (there is nothing to check) and the path as its reason.

Minutes before the symbol's first trade (before its listing) hold nothing and have no kline, so no proof can be
made of them. When the range's first minute has no closed kline, the symbol's first trade is looked up
(``first_trade``, one request); the minutes before its minute are stored as empty files (like any proven-empty minute)
and come out ``BEFORE_FIRST_TRADE`` with a note "before the symbol's first trade (first trade <id> at <time>)" that
stands in for the kline check. Nothing is fetched for them.

``verify_stored`` is step 5 alone; the live streamer uses it for the minutes it writes. No Dagster imports.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from crypto_assets.exchange.archive import BinanceArchive
from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.ingest.archive_backfill import (
    ArchiveDay,
    ArchiveSource,
    archive_klines,
    store_day_from_archive,
)
from crypto_assets.ingest.fetch_cost import archive_is_cheaper
from crypto_assets.ingest.minute_checks import (
    CheckResult,
    MinuteSummary,
    Rule,
    check_ids,
    check_kline,
    check_values,
    summarize,
)
from crypto_assets.ingest.rest_backfill import RestClient, closed_klines, fetch_minutes
from crypto_assets.lake.store import CorruptMinuteFile, Lake, LakeError
from crypto_assets.minutes import DAY_MS, MINUTE_MS, check_whole_minutes, contiguous_ranges, minute_key, utc_text

REST_MINUTES_PER_PASS = 60  # minutes per REST paging pass: bounds the trades held at once (aggTrades: < 1 hour)
NEIGHBOUR_WALK = 10  # minutes looked at on each side of a range to find the nearest earlier / later trade id


class Outcome(StrEnum):
    """What became of a minute; the value is the ``action`` its partition's metadata shows."""

    WRITTEN = "written"  # fetched, proven and written by this call
    ALREADY_STORED = "already stored"  # in the lake before, verified, not fetched again
    BEFORE_FIRST_TRADE = "before first trade"  # before the symbol's first trade: stored empty, nothing fetched
    UNPROVEN = "unproven"  # could not be proven complete: not written
    REFUSED = "refused"  # proven, but the lake refused a value of it: not written (its values_sane check says why)
    NOT_STORED = "not stored"  # not written: the lake failed, or (stream) the minute's file is unreadable
    MISSING = "missing"  # should be in the lake (stored before, or just written) but is not there when read back


STORED = (Outcome.WRITTEN, Outcome.ALREADY_STORED, Outcome.BEFORE_FIRST_TRADE)  # in the lake, to be checked


@dataclass(frozen=True)
class MinuteResult:
    """What became of one minute, and what its checks found. ``ok``: stored and every check passed, so its
    partition may be recorded."""

    minute_start_ms: int
    outcome: Outcome
    path: str | None = None
    summary: MinuteSummary | None = None
    checks: tuple[CheckResult, ...] = ()
    reasons: tuple[str, ...] = ()  # why a minute that is not stored (or MISSING) is not
    written_at_ms: int | None = None
    note: str | None = None  # BEFORE_FIRST_TRADE: "before the symbol's first trade (first trade <id> at <time>)"
    archive: ArchiveSource | None = None  # the verified archive files a WRITTEN minute came from

    @property
    def ok(self) -> bool:
        return self.outcome in STORED and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return list(self.reasons) + [c.description for c in self.checks if not c.passed]


class ListingClient(RestClient, Protocol):  # the REST client, with the symbol's first trade
    def first_trade(self, symbol: str) -> Trade | None: ...
    def first_trade_id(self, symbol: str, start_ms: int, end_ms: int) -> int | None: ...


def store_range(
    client: ListingClient,
    lake: Lake,
    symbol: str,
    start_ms: int,
    end_ms: int,
    *,
    archive: BinanceArchive | None = None,
    refetch: bool = False,
    report: Callable[[str], None] = lambda _: None,
    clock: Callable[[], float] = time.time,
) -> list[MinuteResult]:
    """Every minute of [start_ms, end_ms) of ``symbol``, stored and verified (or why not), in order. With an
    ``archive``, the minutes of complete days it has published come from it where that is cheaper than REST
    (``fetch_cost``); the rest over REST. ``report`` gets progress lines."""
    check_whole_minutes(start_ms, end_ms)
    starts = list(range(start_ms, end_ms, MINUTE_MS))
    with tempfile.TemporaryDirectory(prefix=f"{symbol}-archive-") as folder:
        days = _archive_days(client, archive, symbol, starts, Path(folder))
        klines: dict[int, Kline] = {}
        for day in days.values():
            klines.update(day.klines)
        for run_start, run_end in contiguous_ranges([m for m in starts if m not in klines]):
            klines.update(closed_klines(client, symbol, run_start, run_end))
        notes = _before_first_trade(client, symbol, starts, klines)
        kept: set[int] = set()  # stored before, verified, not fetched again
        if not refetch:
            for minute in starts:
                if minute in notes:
                    continue
                table = lake.read_minute(symbol, minute)
                if table is not None and _verifies_alone(minute, table, klines.get(minute)):
                    kept.add(minute)
        to_fetch = [m for m in starts if m not in kept and m not in notes]

        written_at: dict[int, int] = {}
        sources: dict[int, ArchiveSource] = {}
        failed: dict[int, MinuteResult] = {}  # unproven or refused
        lake_error: LakeError | None = None
        try:
            for minute in notes:  # before the first trade: nothing to fetch, an empty file like any proven-empty one
                lake.write_minute(symbol, minute, [])
                written_at[minute] = int(clock() * 1000)
            for day_start, day in days.items():
                wanted = [m for m in to_fetch if day_start <= m < day_start + DAY_MS]
                if not wanted:
                    continue
                if day.skipped is None and not archive_is_cheaper(day.klines, wanted):
                    report(f"{symbol} {day.day}: {len(wanted)} minute(s) over REST, cheaper than the day's archive")
                    continue
                store_day_from_archive(
                    archive, client, lake, symbol, day, wanted, Path(folder), report=report, clock=clock
                )
                report(archive_summary(symbol, day))
                written_at.update(day.written)
                sources.update(dict.fromkeys(day.written, day.source))
        except LakeError as exc:
            lake_error = exc
        rest_minutes = [m for m in to_fetch if m not in written_at]
        if lake_error is None and rest_minutes:
            lake_error = _store_over_rest(client, lake, symbol, rest_minutes, klines, written_at, failed, clock)

    checked: dict[int, MinuteResult] = {}
    if lake_error is None:
        try:
            checked = verify_stored(lake, symbol, [m for m in starts if m not in failed], klines, notes=notes)
        except LakeError as exc:
            lake_error = exc
    out: list[MinuteResult] = []
    for minute in starts:
        if minute in failed:
            out.append(failed[minute])
        elif minute not in checked:
            out.append(
                MinuteResult(
                    minute,
                    Outcome.NOT_STORED,
                    reasons=(f"the lake failed, so this run stored and recorded nothing more: {lake_error}",),
                )
            )
        else:
            stored = checked[minute]
            if stored.outcome == Outcome.MISSING:  # written or kept, yet not there when read back
                out.append(stored)
                continue
            outcome = (
                Outcome.BEFORE_FIRST_TRADE
                if minute in notes
                else Outcome.WRITTEN
                if minute in written_at
                else Outcome.ALREADY_STORED
            )
            out.append(
                replace(stored, outcome=outcome, written_at_ms=written_at.get(minute), archive=sources.get(minute))
            )
    return out


def _archive_days(
    client: ListingClient, archive: BinanceArchive | None, symbol: str, starts: list[int], folder: Path
) -> dict[int, ArchiveDay]:
    """The archive's klines (a small zip, no REST weight) of each complete day (by the exchange's clock) holding a
    minute of ``starts``, by day start; a day the archive cannot serve comes back with ``skipped`` set and no
    klines."""
    if archive is None or not starts:
        return {}
    now = client.server_time()
    days = dict.fromkeys(minute - minute % DAY_MS for minute in starts)
    return {
        day_start: archive_klines(archive, symbol, day_start, folder) for day_start in days if day_start + DAY_MS <= now
    }


def archive_summary(symbol: str, day: ArchiveDay) -> str:
    """The run log's line for a day read from the archive (or why it was not)."""
    if day.source is None:
        return f"{symbol} {day.day}: not from the archive, over REST instead: {day.skipped}"
    rate = day.trades / day.seconds if day.seconds else 0.0
    return (
        f"{symbol} {day.day}: archive import: {day.trades:,} trades, {len(day.written)} minute(s) proven in "
        f"{day.seconds:.1f} s ({rate:,.0f} trades/s); {len(day.left)} minute(s) left to REST"
    )


def _store_over_rest(
    client: ListingClient,
    lake: Lake,
    symbol: str,
    minutes: list[int],
    klines: dict[int, Kline],
    written_at: dict[int, int],
    failed: dict[int, MinuteResult],
    clock: Callable[[], float],
) -> LakeError | None:
    """Fetch ``minutes`` over REST, at most REST_MINUTES_PER_PASS per paging pass (bounded memory), and write the
    proven ones; unproven and refused minutes go into ``failed``. The lake's error, if it failed."""
    for run_start, run_end in contiguous_ranges(minutes):
        for pass_start in range(run_start, run_end, REST_MINUTES_PER_PASS * MINUTE_MS):
            pass_end = min(run_end, pass_start + REST_MINUTES_PER_PASS * MINUTE_MS)
            for batch in fetch_minutes(client, symbol, pass_start, pass_end, klines):
                minute = batch.minute_start_ms
                if not batch.proof.complete:
                    failed[minute] = MinuteResult(minute, Outcome.UNPROVEN, reasons=tuple(batch.proof.reasons))
                    continue
                try:
                    lake.write_minute(symbol, minute, batch.trades)
                    written_at[minute] = int(clock() * 1000)
                except LakeError as exc:
                    return exc  # nothing more will be written: spend no more REST weight
                except ValueError as exc:  # TradeValueError included: a value the lake cannot hold exactly
                    failed[minute] = refused(symbol, minute, exc)
    return None


def _before_first_trade(
    client: ListingClient, symbol: str, starts: list[int], klines: dict[int, Kline]
) -> dict[int, str]:
    """The minutes of ``starts`` before the symbol's first trade's minute (without a kline), with their note. The
    first trade is asked for only when the first minute has no closed kline (with one, the symbol was listed)."""
    if not starts or starts[0] in klines:
        return {}
    first = client.first_trade(symbol)
    if first is None:
        return {}
    note = before_first_trade_note(first)
    first_minute = first.trade_time - first.trade_time % MINUTE_MS
    return {m: note for m in starts if m < first_minute and m not in klines}


def before_first_trade_note(first: Trade) -> str:
    return f"before the symbol's first trade (first trade {first.trade_id} at {utc_text(first.trade_time)})"


def refused(symbol: str, minute_start_ms: int, error: ValueError) -> MinuteResult:
    """A proven minute the lake would not take (``error`` names the trade and the value), as a failed check."""
    description = f"{symbol} minute {minute_key(minute_start_ms)} cannot be stored: {error}"
    return MinuteResult(minute_start_ms, Outcome.REFUSED, checks=(CheckResult(Rule.SANE_VALUES, False, description),))


def verify_range(client: ListingClient, lake: Lake, symbol: str, start_ms: int, end_ms: int) -> list[MinuteResult]:
    """The minutes of [start_ms, end_ms) as stored, checked against the exchange's klines (an empty file before the
    symbol's first trade against its note); nothing is fetched or written. A minute not in the lake is
    ``MISSING``."""
    check_whole_minutes(start_ms, end_ms)
    starts = list(range(start_ms, end_ms, MINUTE_MS))
    klines = closed_klines(client, symbol, start_ms, end_ms)
    checked = verify_stored(lake, symbol, starts, klines, notes=_before_first_trade(client, symbol, starts, klines))
    return list(checked.values())


def verify_stored(
    lake: Lake,
    symbol: str,
    minutes: Sequence[int],
    klines: dict[int, Kline],
    *,
    notes: dict[int, str] | None = None,
) -> dict[int, MinuteResult]:
    """Read back each of ``minutes`` (ascending minute starts) and run the three checks, continuity with the
    neighbouring minutes in the lake included: ``ALREADY_STORED`` with the checks' results, or ``MISSING`` (not in
    the lake). ``notes``: minutes before the symbol's first trade; an empty file of one passes the kline check with
    the note (there is no kline)."""
    notes = notes or {}
    known: dict[int, pa.Table | None] = {}

    def table_of(minute: int) -> pa.Table | None:
        if minute not in known:
            known[minute] = lake.read_minute(symbol, minute)
        return known[minute]

    def neighbour(minute: int) -> pa.Table | None:
        """A neighbouring minute's table; an unreadable one is no neighbour (its side stays unchecked)."""
        try:
            return table_of(minute)
        except CorruptMinuteFile:
            known[minute] = None
            return None

    out: dict[int, MinuteResult] = {}
    for minute in minutes:
        for old in [m for m in known if m < minute - NEIGHBOUR_WALK * MINUTE_MS]:  # memory: a day holds millions
            del known[old]
        table = table_of(minute)
        path = lake.path_of(symbol, minute)
        if table is None:
            out[minute] = MinuteResult(minute, Outcome.MISSING, path, reasons=(f"{path} is not in the lake",))
            continue
        prev_last = _nearest_id(neighbour, minute, -1)
        next_first = _nearest_id(neighbour, minute, +1)
        ids = check_ids(minute, table, prev_last, next_first)
        kline = check_kline(minute, table, klines.get(minute), prev_last, next_first)  # rule 6: maybe none needed
        if not table.num_rows and minute not in klines and minute in notes:
            kline = CheckResult(
                Rule.KLINE_AGREEMENT,
                True,
                f"minute {minute_key(minute)}: {notes[minute]}: no trade and no kline, as expected",
                {"note": notes[minute]},
            )
        checks = (ids, kline, check_values(minute, table))
        out[minute] = MinuteResult(
            minute, Outcome.ALREADY_STORED, path, summarize(minute, table), checks, note=notes.get(minute)
        )
    return out


def _nearest_id(table_of: Callable[[int], pa.Table | None], minute: int, step: int) -> int | None:
    """The last trade id before ``minute`` (step -1) or the first after it (step +1) in the lake, walking over
    empty minutes; None when a file is missing first (or after NEIGHBOUR_WALK empty minutes)."""
    for i in range(1, NEIGHBOUR_WALK + 1):
        table = table_of(minute + step * i * MINUTE_MS)
        if table is None:
            return None
        if table.num_rows:
            ids = table.column("trade_id")
            return ids[-1].as_py() if step < 0 else ids[0].as_py()
    return None


def _verifies_alone(minute: int, table: pa.Table, kline: Kline | None) -> bool:
    """A stored file good enough not to fetch again: dense inside, sane, and as the closed kline says."""
    return all(
        c.passed
        for c in (check_ids(minute, table, None, None), check_kline(minute, table, kline), check_values(minute, table))
    )
