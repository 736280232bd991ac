"""The gap backfill's plan: which ranges of missing `raw_trades/<symbol>` minutes to request, as pure functions of what
the sensor read (``gap_backfill.py``: the instance, the exchange, the clock) and of its state between ticks. No
Dagster, no instance, no clock of its own: the tests call it with plain values.

- What is due: a minute of the window (``GapPolicy.window``: the last ``lookback_hours``, ended ``settle_s`` ago) from
  the symbol's first trade on (``first_trades.py``), neither materialized, nor in a gap run in flight, nor waiting out
  a back-off.
- What is requested (``plan_gaps``): ranges of at most ``GAP_MINUTES_PER_RUN`` (60) due minutes of one symbol, cut
  from the newest end (small runs that end soon and free the weight for the newest gaps; a UI backfill runs whole
  days instead), at most as many as there are free run slots and ``MAX_RUNS_PER_TICK``. Newest first (they feed
  freshness and the next dbt hour), older ones behind them, fair across symbols: round robin by symbol (each
  symbol's newest range first), the turn starting one symbol further each tick.
- Back-off per minute (``account_ended_run``): a minute still missing after the gap run that asked for it ended
  (failed, was canceled, or succeeded without it) waits ``GAP_RETRY_BACKOFF`` (5 min, then 10, 20 ... up to 4 h after
  each further such run), counted from the tick that saw the run end; the other minutes go on meanwhile. Why it waits
  is kept with it as a value (``MissReason``) with its one-line detail.
- Each request's run key (``gap_run_key``) is what is requested: the symbol, the range, and which attempt at that
  range it is (1 + the gap runs of that very range that ended already), never the clock. A tick evaluated again asks
  for the same keys (Dagster skips a run key the sensor used already); a retry after a run of the range ended is a
  new key.

The state between ticks is ``GapCursor`` (JSON in the sensor's cursor): each symbol's first trade, the waiting minutes
(only minutes inside the window that are still missing, stored as ranges), the gap runs already seen ended, and whose
turn it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from crypto_assets.backoff import Backoff
from crypto_assets.defs.raw.miss_reasons import MissReason
from crypto_assets.minutes import MINUTE_MS, contiguous_ranges, floor_minute, minute_key, utc_text

GAP_MINUTES_PER_RUN = 60
MAX_RUNS_PER_TICK = 6
# A minute still missing after the run that asked for it ended waits 5 min, then 10, 20 ... up to 4 h.
GAP_RETRY_BACKOFF = Backoff(first_s=300, max_s=4 * 3600)
SEEN_SLACK_S = 60  # ended runs are read from this long before the newest one seen (and skipped by id): late commits
WAITS_LISTED = 10  # waiting ranges named in a tick's log / skip reason
WHY_MAX_CHARS = 300
CURSOR_VERSION = 2  # 1: a wait's why was text only (read still: its reason is None)


@dataclass(frozen=True)
class GapPolicy:
    """The gap backfill's bounds (from ``CRYPTO_GAP_LOOKBACK_HOURS``, ``CRYPTO_GAP_SETTLE_SECONDS``,
    ``CRYPTO_GAP_MAX_RUNS``)."""

    lookback_hours: int
    settle_s: int
    max_runs: int

    def window(self, now_ms: int, partitions_start_ms: int) -> tuple[int, int]:
        """The minutes that can be gaps now: [start, end), from ``lookback_hours`` ago (not before the first
        partition) to the end of the last minute that ended ``settle_s`` ago."""
        start = max(partitions_start_ms, floor_minute(now_ms - self.lookback_hours * 3600_000))
        end = floor_minute(now_ms - self.settle_s * 1000 - MINUTE_MS) + MINUTE_MS
        return start, end


@dataclass(frozen=True)
class Wait:
    """Why a minute waits, and until when (ms, by the sensor's clock)."""

    failures: int  # runs that asked for the minute and ended without it
    until_ms: int
    run_id: str  # the last of them
    reason: MissReason | None  # None: read from a version 1 cursor, whose detail is the whole why
    detail: str = ""  # one line: the error, the first problem, or the run's own failure message

    @property
    def why(self) -> str:
        """The reason as the tick's log and skip reason say it."""
        text = _why(self.run_id, self.reason, self.detail) if self.reason is not None else self.detail
        return text if len(text) <= WHY_MAX_CHARS else text[: WHY_MAX_CHARS - 3] + "..."


def _why(run_id: str, reason: MissReason, detail: str) -> str:
    if reason == MissReason.RUN_CANCELED:
        return f"run {run_id} was canceled"
    if reason == MissReason.SUCCEEDED_WITHOUT_THEM:
        return f"still missing after run {run_id} (it succeeded without them)"
    if reason == MissReason.RUN_FAILED:
        return f"run {run_id} failed: {detail}" if detail else f"still missing after run {run_id} (failed)"
    return f"run {run_id} failed: {reason.label}" + (f": {detail}" if detail else "")


@dataclass
class GapCursor:
    """The gap sensor's state between ticks, as JSON in its cursor.

    ``first_trades``: symbol -> {"id", "time_ms"} of its first trade, or {"none_checked_ms"} when it had not traded
    at that time; ``waits``: symbol -> {minute start ms -> Wait}, stored as ranges of minutes sharing one Wait;
    ``seen_runs``: ended gap runs already accounted for (run id -> update time, s), newer than ``runs_after`` -
    ``SEEN_SLACK_S``; ``turn``: the symbol index the next round robin starts at; ``scan_from``: the symbol index the
    next tick's scan starts at (``scan_slice``)."""

    first_trades: dict[str, dict[str, int]] = field(default_factory=dict)
    waits: dict[str, dict[int, Wait]] = field(default_factory=dict)
    seen_runs: dict[str, float] = field(default_factory=dict)
    runs_after: float | None = None
    turn: int = 0
    scan_from: int = 0

    @classmethod
    def load(cls, text: str | None) -> GapCursor:
        if not text:
            return cls()
        data = json.loads(text)
        waits: dict[str, dict[int, Wait]] = {}
        for symbol, ranges in data.get("waits", {}).items():
            minutes = waits.setdefault(symbol, {})
            for entry in ranges:
                if len(entry) == 6:  # version 1: [start, count, failures, until, run_id, why]
                    start, count, failures, until, run_id, why = entry
                    wait = Wait(failures, until, run_id, None, why)
                else:
                    start, count, failures, until, run_id, reason, detail = entry
                    wait = Wait(failures, until, run_id, MissReason(reason) if reason else None, detail)
                for i in range(count):
                    minutes[start + i * MINUTE_MS] = wait
        return cls(
            first_trades=data.get("first_trades", {}),
            waits=waits,
            seen_runs=data.get("seen_runs", {}),
            runs_after=data.get("runs_after"),
            turn=data.get("turn", 0),
            scan_from=data.get("scan_from", 0),
        )

    def dump(self) -> str:
        waits: dict[str, list[list]] = {}
        for symbol, minutes in self.waits.items():
            ranges: list[list] = []
            for minute in sorted(minutes):
                w = minutes[minute]
                same = [w.failures, w.until_ms, w.run_id, w.reason.value if w.reason else None, w.detail]
                last = ranges[-1] if ranges else None
                if last and last[0] + last[1] * MINUTE_MS == minute and last[2:] == same:
                    last[1] += 1
                else:
                    ranges.append([minute, 1, *same])
            if ranges:
                waits[symbol] = ranges
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "first_trades": self.first_trades,
                "waits": waits,
                "seen_runs": self.seen_runs,
                "runs_after": self.runs_after,
                "turn": self.turn,
                "scan_from": self.scan_from,
            },
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class EndedRun:
    """A gap run that ended: its symbol and range (first and last minute start; None when its tags lack them) and
    its storage's update time (s)."""

    run_id: str
    symbol: str | None
    first_ms: int | None
    last_ms: int | None
    updated_s: float


def account_ended_runs(
    state: GapCursor,
    ended: Sequence[EndedRun],
    materialized: Mapping[str, set[int]],
    window_start: int,
    now_ms: int,
    explain: Callable[[str], tuple[MissReason, str]],
) -> list[str]:
    """Each run of ``ended`` (ascending by update time) not accounted for yet, once: the minutes of its range still
    missing (inside the window, not in ``materialized``) start, or go on, waiting, for the reason and detail
    ``explain(run_id)`` gives (asked only for runs that left minutes missing). Advances ``runs_after`` and forgets
    the seen runs older than it. Returns a log line per run that left minutes missing."""
    lines = []
    for run in ended:
        state.runs_after = max(state.runs_after or run.updated_s, run.updated_s)
        if run.run_id in state.seen_runs:
            continue
        state.seen_runs[run.run_id] = run.updated_s
        if run.symbol not in materialized or run.first_ms is None or run.last_ms is None:
            continue
        stored = materialized[run.symbol]
        missing = [
            m for m in range(run.first_ms, run.last_ms + MINUTE_MS, MINUTE_MS) if m >= window_start and m not in stored
        ]
        if not missing:
            continue
        reason, detail = explain(run.run_id)
        detail = detail if len(detail) <= WHY_MAX_CHARS else detail[: WHY_MAX_CHARS - 3] + "..."  # a bounded cursor
        waits = state.waits.setdefault(run.symbol, {})
        for minute in missing:
            previous = waits.get(minute)
            failures = previous.failures + 1 if previous else 1
            until = now_ms + int(GAP_RETRY_BACKOFF.delay_s(failures) * 1000)
            waits[minute] = Wait(failures, until, run.run_id, reason, detail)
        lines.append(
            f"{run.symbol}: {len(missing)} minute(s) of run {run.run_id} "
            f"({minute_key(run.first_ms)}..{minute_key(run.last_ms)}) still missing: {waits[missing[0]].why}"
        )
    if state.runs_after is not None:
        state.seen_runs = {
            run_id: ts for run_id, ts in state.seen_runs.items() if ts >= state.runs_after - SEEN_SLACK_S
        }
    return lines


def prune_waits(
    state: GapCursor,
    symbols: Collection[str],
    materialized: Mapping[str, set[int]],
    window_start: int,
    window_end: int,
) -> None:
    """The cursor stays bounded: only the waits of ``symbols`` (those chased) are kept, and of the symbols looked
    at (``materialized``) only their minutes inside the window that are still missing."""
    for symbol in list(state.waits):
        if symbol not in symbols:
            del state.waits[symbol]
            continue
        if symbol not in materialized:
            continue
        minutes = state.waits[symbol]
        for minute in [m for m in minutes if not window_start <= m < window_end or m in materialized[symbol]]:
            del minutes[minute]


@dataclass(frozen=True)
class GapRange:
    """A requested range: ``start_ms`` to ``end_ms`` (exclusive) of one symbol."""

    symbol: str
    start_ms: int
    end_ms: int

    @property
    def first_key(self) -> str:
        return minute_key(self.start_ms)

    @property
    def last_key(self) -> str:
        return minute_key(self.end_ms - MINUTE_MS)


@dataclass(frozen=True)
class GapPlan:
    requests: list[GapRange]
    turn: int  # where the next tick's round robin starts
    due_minutes: int  # due now, requested or not
    due_ranges: int


def plan_gaps(
    symbols: Sequence[str],
    starts: Mapping[str, int],
    window_end: int,
    materialized: Mapping[str, set[int]],
    busy: Mapping[str, set[int]],
    waits: Mapping[str, Mapping[int, Wait]],
    now_ms: int,
    slots: int,
    turn: int,
) -> GapPlan:
    """The ranges to request now: the due minutes of each symbol of ``starts`` (its first minute that can be a gap)
    up to ``window_end`` (not ``materialized``, not ``busy`` in a run in flight, not waiting past ``now_ms``), cut
    into ranges newest first and taken round robin from ``turn``, at most ``slots``."""
    queues: dict[str, list[tuple[int, int]]] = {}  # symbol -> ranges (start, end exclusive), newest first
    due_total = 0
    for symbol, start in starts.items():
        stored, in_flight, waiting = materialized.get(symbol, set()), busy.get(symbol, set()), waits.get(symbol, {})
        due = [
            m
            for m in range(start, window_end, MINUTE_MS)
            if m not in stored and m not in in_flight and not (m in waiting and waiting[m].until_ms > now_ms)
        ]
        due_total += len(due)
        if due:
            queues[symbol] = newest_first_ranges(due, GAP_MINUTES_PER_RUN)
    picked, next_turn = round_robin(symbols, queues, slots, turn)
    return GapPlan(
        [GapRange(s, a, b) for s, a, b in picked], next_turn, due_total, sum(len(q) for q in queues.values())
    )


def newest_first_ranges(minutes: Sequence[int], max_len: int) -> list[tuple[int, int]]:
    """Contiguous runs of ``minutes`` (ascending minute starts) cut into ranges (start, end exclusive) of at most
    ``max_len`` minutes from their newest end, newest range first."""
    out: list[tuple[int, int]] = []
    for start, end in reversed(contiguous_ranges(list(minutes))):
        while end > start:
            cut = max(start, end - max_len * MINUTE_MS)
            out.append((cut, end))
            end = cut
    return out


def scan_slice(symbols: Sequence[str], start: int, size: int) -> tuple[list[str], int]:
    """The ``size`` symbols a tick looks at, from index ``start`` on (wrapping), and where the next tick starts: a
    tick's instance queries stay bounded however many symbols there are, and every symbol comes round."""
    if len(symbols) <= size:
        return list(symbols), 0
    start %= len(symbols)
    picked = [symbols[(start + i) % len(symbols)] for i in range(size)]
    return picked, (start + size) % len(symbols)


def round_robin(
    symbols: Sequence[str], queues: dict[str, list[tuple[int, int]]], count: int, turn: int
) -> tuple[list[tuple[str, int, int]], int]:
    """Up to ``count`` ranges taken one symbol at a time from the symbol at ``turn`` on, each symbol's queue in
    order; and the turn of the next call (the symbol after the last one served)."""
    picked: list[tuple[str, int, int]] = []
    queues = {s: list(q) for s, q in queues.items()}
    n = len(symbols)
    next_turn = turn % n if n else 0
    i = next_turn
    while len(picked) < count and any(queues.values()):
        symbol = symbols[i % n]
        if queues.get(symbol):
            start, end = queues[symbol].pop(0)
            picked.append((symbol, start, end))
            next_turn = (i + 1) % n
        i += 1
    return picked, next_turn


def gap_run_key(gap: GapRange, attempt: int) -> str:
    """The run key of a request: the symbol, the range, and the attempt at that range (1 + the gap runs of that very
    range that ended already). Nothing of the clock: a tick evaluated again repeats it, and Dagster skips a run key
    the sensor used already."""
    return f"gap:{gap.symbol}:{gap.first_key}..{gap.last_key}#{attempt}"


@dataclass(frozen=True)
class WaitingRange:
    symbol: str
    start_ms: int
    end_ms: int  # exclusive
    wait: Wait


def waiting_ranges(
    waits: Mapping[str, Mapping[int, Wait]], symbols: Sequence[str], busy: Mapping[str, set[int]], now_ms: int
) -> list[WaitingRange]:
    """The minutes waiting out a back-off now (not in flight), as ranges of minutes sharing one Wait."""
    out: list[WaitingRange] = []
    for symbol in symbols:
        minutes = waits.get(symbol, {})
        for minute in sorted(minutes):
            wait = minutes[minute]
            if wait.until_ms <= now_ms or minute in busy.get(symbol, ()):
                continue
            last = out[-1] if out else None
            if last and last.symbol == symbol and last.end_ms == minute and last.wait == wait:
                out[-1] = WaitingRange(symbol, last.start_ms, minute + MINUTE_MS, wait)
            else:
                out.append(WaitingRange(symbol, minute, minute + MINUTE_MS, wait))
    return out


def waits_text(waiting: Sequence[WaitingRange]) -> str:
    """The waiting ranges as the tick's log and skip reason end: the first ``WAITS_LISTED``, why and until when."""
    if not waiting:
        return ""
    listed = "; ".join(
        f"{w.symbol} {minute_key(w.start_ms)}..{minute_key(w.end_ms - MINUTE_MS)} "
        f"({(w.end_ms - w.start_ms) // MINUTE_MS} min) waits until {utc_text(w.wait.until_ms)} after "
        f"{w.wait.failures} run(s) without it: {w.wait.why}"
        for w in waiting[:WAITS_LISTED]
    )
    more = f"; and {len(waiting) - WAITS_LISTED} more range(s)" if len(waiting) > WAITS_LISTED else ""
    return f". {len(waiting)} range(s) wait: {listed}{more}"
