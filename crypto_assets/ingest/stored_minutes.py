"""Minutes into the lake, and the lake's minutes verified: what a partition's materialization stands on.

``store_range_from_rest`` is the REST path for a range of whole minutes of one symbol:
1. the range's closed 1m klines (one call per 1000 minutes);
2. minutes already in the lake whose file verifies (checks below, with the kline) are kept and not fetched again,
   unless ``refetch``;
3. the other minutes are fetched per contiguous run of minutes in one paging pass each (``fetch_minutes``), and
   every proven minute is written (an unproven one is not written at all);
4. every stored minute of the range is read back and checked (``minute_checks``), neighbours included.

Failures stay with their minute: a minute whose trades the lake refuses (a value it cannot store exactly) is
``REFUSED`` with a failed ``values_sane`` check naming the trade and the value, and the other minutes go on. A lake
that fails (``LakeError``) stops the lake work of the call: its minutes are ``NOT_STORED`` naming the lake (none is
recorded); the files written before the failure are whole (writes are atomic), and the next run keeps them.

Minutes before the symbol's first trade (before its listing) hold nothing and have no kline, so no proof can be
made of them. When the range's first minute has no closed kline, the symbol's first trade is looked up
(``first_trade``, one request); the minutes before its minute are stored as empty files (like any proven-empty minute)
and come out ``BEFORE_FIRST_TRADE`` with a note "before the symbol's first trade (first trade <id> at <time>)" that
stands in for the kline check. Nothing is fetched for them.

``verify_stored`` is step 4 alone; the live streamer uses it for the minutes it writes. No Dagster imports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import pyarrow as pa

from crypto_assets.exchange.errors import utc_text
from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.ingest.minute_checks import (
    KLINE_AGREEMENT,
    SANE_VALUES,
    CheckResult,
    MinuteSummary,
    check_ids,
    check_kline,
    check_values,
    summarize,
)
from crypto_assets.ingest.rest_backfill import RestClient, closed_klines, fetch_minutes
from crypto_assets.lake.store import CorruptMinuteFile, Lake, LakeError
from crypto_assets.minutes import MINUTE_MS, check_whole_minutes, contiguous_ranges, minute_key

WRITTEN = "written"  # fetched, proven and written by this call
ALREADY_STORED = "already stored"  # in the lake before, verified, not fetched again
UNPROVEN = "unproven"  # could not be proven complete: not written
REFUSED = "refused"  # proven, but the lake refused a value of it: not written (its values_sane check says why)
NOT_STORED = "not stored"  # the lake failed before the minute was written and verified
BEFORE_FIRST_TRADE = "before first trade"  # before the symbol's first trade: stored empty, nothing fetched
NEIGHBOUR_WALK = 10  # minutes looked at on each side of a range to find the nearest earlier / later trade id


@dataclass(frozen=True)
class StoredMinute:
    """The outcome for one minute. ``ok``: stored and every check passed, so its partition may be recorded."""

    minute_start_ms: int
    action: str
    path: str | None = None
    summary: MinuteSummary | None = None
    checks: tuple[CheckResult, ...] = ()
    reasons: tuple[str, ...] = ()  # why an UNPROVEN minute could not be proven
    written_at_ms: int | None = None
    note: str | None = None  # BEFORE_FIRST_TRADE: "before the symbol's first trade (first trade <id> at <time>)"

    @property
    def ok(self) -> bool:
        return (
            self.action in (WRITTEN, ALREADY_STORED, BEFORE_FIRST_TRADE)
            and bool(self.checks)
            and all(c.passed for c in self.checks)
        )

    @property
    def problems(self) -> list[str]:
        return list(self.reasons) + [c.description for c in self.checks if not c.passed]


class ListingClient(RestClient, Protocol):  # the REST client, with the symbol's first trade
    def first_trade(self, symbol: str) -> Trade | None: ...


def store_range_from_rest(
    client: ListingClient,
    lake: Lake,
    symbol: str,
    start_ms: int,
    end_ms: int,
    *,
    refetch: bool = False,
    clock: Callable[[], float] = time.time,
) -> list[StoredMinute]:
    """Every minute of [start_ms, end_ms) of ``symbol``, stored and verified (or why not), in order."""
    check_whole_minutes(start_ms, end_ms)
    starts = list(range(start_ms, end_ms, MINUTE_MS))
    klines = closed_klines(client, symbol, start_ms, end_ms)
    notes = _before_first_trade(client, symbol, starts, klines)
    tables: dict[int, pa.Table] = {}  # the minutes kept as stored (verified, not fetched again)
    if not refetch:
        for minute in starts:
            if minute in notes:
                continue
            table = lake.read_minute(symbol, minute)
            if table is not None and _verifies_alone(minute, table, klines.get(minute)):
                tables[minute] = table

    written_at: dict[int, int] = {}
    failed: dict[int, StoredMinute] = {}  # unproven or refused
    lake_error: LakeError | None = None
    for minute in notes:  # before the first trade: nothing to fetch, an empty file like any proven-empty minute
        try:
            lake.write_minute(symbol, minute, [])
            written_at[minute] = int(clock() * 1000)
        except LakeError as exc:
            lake_error = exc
            break
    for run_start, run_end in contiguous_ranges([m for m in starts if m not in tables and m not in notes]):
        if lake_error is not None:
            break  # nothing more will be written: spend no more REST weight
        for batch in fetch_minutes(client, symbol, run_start, run_end, klines):
            minute = batch.minute_start_ms
            if not batch.proof.complete:
                failed[minute] = StoredMinute(minute, UNPROVEN, reasons=tuple(batch.proof.reasons))
            elif lake_error is None:
                try:
                    lake.write_minute(symbol, minute, batch.trades)
                    written_at[minute] = int(clock() * 1000)
                except LakeError as exc:
                    lake_error = exc
                except ValueError as exc:  # TradeValueError included: a value the lake cannot hold exactly
                    failed[minute] = refused(symbol, minute, exc)

    checked: dict[int, StoredMinute] = {}
    if lake_error is None:
        try:
            checked = verify_stored(
                lake, symbol, [m for m in starts if m not in failed], klines, tables=tables, notes=notes
            )
        except LakeError as exc:
            lake_error = exc
    out: list[StoredMinute] = []
    for minute in starts:
        if minute in failed:
            out.append(failed[minute])
        elif minute not in checked:
            out.append(
                StoredMinute(
                    minute,
                    NOT_STORED,
                    reasons=(f"the lake failed, so this run stored and recorded nothing more: {lake_error}",),
                )
            )
        else:
            stored = checked[minute]
            action = BEFORE_FIRST_TRADE if minute in notes else WRITTEN if minute in written_at else ALREADY_STORED
            out.append(replace(stored, action=action, written_at_ms=written_at.get(minute)))
    return out


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


def refused(symbol: str, minute_start_ms: int, error: ValueError) -> StoredMinute:
    """A proven minute the lake would not take (``error`` names the trade and the value), as a failed check."""
    description = f"{symbol} minute {minute_key(minute_start_ms)} cannot be stored: {error}"
    return StoredMinute(minute_start_ms, REFUSED, checks=(CheckResult(SANE_VALUES, False, description),))


def verify_range(client: ListingClient, lake: Lake, symbol: str, start_ms: int, end_ms: int) -> list[StoredMinute]:
    """The minutes of [start_ms, end_ms) as stored, checked against the exchange's klines (an empty file before the
    symbol's first trade against its note); nothing is fetched or written. A minute not in the lake fails (its
    first check says so)."""
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
    tables: dict[int, pa.Table] | None = None,
    notes: dict[int, str] | None = None,
) -> dict[int, StoredMinute]:
    """Read back each of ``minutes`` (ascending minute starts) and run the three checks, continuity with the
    neighbouring minutes in the lake included. ``tables``: files already read (not read again). ``notes``: minutes
    before the symbol's first trade; an empty file of one passes the kline check with the note (there is no kline)."""
    notes = notes or {}
    known: dict[int, pa.Table | None] = dict(tables or {})

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

    out: dict[int, StoredMinute] = {}
    for minute in minutes:
        table = table_of(minute)
        path = lake.path_of(symbol, minute)
        if table is None:
            out[minute] = StoredMinute(
                minute, ALREADY_STORED, path, checks=(CheckResult("stored", False, f"{path} is not in the lake"),)
            )
            continue
        prev_last = _nearest_id(neighbour, minute, -1)
        next_first = _nearest_id(neighbour, minute, +1)
        ids = check_ids(minute, table, prev_last, next_first)
        kline = check_kline(minute, table, klines.get(minute), prev_last, next_first)  # rule 6: maybe none needed
        if not table.num_rows and minute not in klines and minute in notes:
            kline = CheckResult(
                KLINE_AGREEMENT,
                True,
                f"minute {minute_key(minute)}: {notes[minute]}: no trade and no kline, as expected",
                {"note": notes[minute]},
            )
        checks = (ids, kline, check_values(minute, table))
        out[minute] = StoredMinute(
            minute, ALREADY_STORED, path, summarize(minute, table), checks, note=notes.get(minute)
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
