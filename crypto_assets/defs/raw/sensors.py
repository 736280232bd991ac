"""The gap backfill sensor, on by default (``dagster dev`` needs no click). (The keep-alive is ``keepalive.py``.)

- ``raw_trades_gap_backfill`` looks back over the last ``CRYPTO_GAP_LOOKBACK_HOURS`` for minute partitions of
  `raw_trades/<symbol>` that ended more than ``CRYPTO_GAP_SETTLE_SECONDS`` ago and are neither materialized nor
  in flight, and backfills them (over REST, or the archive where cheaper: ``fetch_cost``), at most
  ``CRYPTO_GAP_MAX_RUNS`` gap runs in flight at once (they share
  the exchange's weight limit). A run covers one range: a contiguous run of at most ``GAP_MINUTES_PER_RUN`` (60)
  missing minutes of one symbol that are all due: small runs that end soon and free the weight for the newest gaps
  (a UI backfill runs whole days instead).

  Order: newest minutes first (they feed freshness and the next dbt hour), older ones behind them, fair across
  symbols: round robin by symbol (each symbol's newest range first), the turn starting one symbol further each
  tick. Minutes before a symbol's first trade (before its listing) are no gaps: the first trade is looked up once
  per symbol (``BinanceRestClient.first_trade``) and kept in the cursor; a failed lookup is logged and retried next
  tick, and only that symbol waits for it; a symbol that has not traded yet is asked again every
  ``NOT_TRADED_RECHECK_S``.

  Back-off per minute: a minute still missing after the run that asked for it ended (failed, was canceled, or
  succeeded without it) waits ``BACKOFF_FIRST_S`` (5 min), then 10, 20 ... up to ``BACKOFF_MAX_S`` (4 h) after each
  further such run, counted from the tick that saw the run end; the other minutes go on meanwhile. Why it waits is
  kept with it: the run's failure message (its first line and first listed problem) or "still missing after run
  <id>". The tick's log, and its skip reason when it requests nothing, list the waiting ranges, why and until when.

  State lives in the sensor's cursor (JSON, ``GapCursor``): each symbol's first trade, the waiting minutes (only
  minutes inside the window that are still missing, stored as ranges), the gap runs already seen ended, and whose
  turn it is. A tick reads the in-flight gap runs, the gap runs ended since the last tick (their failure events
  only for those), each symbol's materialized partitions and, once per symbol, its first trade: it stays light.
"""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    TimeWindowPartitionsDefinition,
    sensor,
)

from crypto_assets.defs.names import IN_FLIGHT_STATUSES, RANGE_END_TAG, RANGE_START_TAG, raw_trades_key
from crypto_assets.defs.partitions import materialized_minutes
from crypto_assets.defs.raw.resources import ExchangeResource
from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable, utc_text
from crypto_assets.minutes import MINUTE_MS, contiguous_ranges, floor_minute, minute_key, minute_start_ms
from crypto_assets.settings import Settings

GAP_TAG = "crypto_assets/gap_backfill"  # value: the symbol
GAP_MINUTES_PER_RUN = 60
MAX_RUNS_PER_TICK = 6
BACKOFF_FIRST_S = 300  # a minute still missing after its run ended waits 5 min, then 10, 20 ... up to 4 h
BACKOFF_MAX_S = 4 * 3600
NOT_TRADED_RECHECK_S = 600  # a symbol without any trade yet: its first trade is asked for again this often
LOOKUP_BUDGET_S = 20.0  # first-trade lookups of one tick stop after this long (a tick must end within 60 s)
LOOKUP_TIMEOUT_S = 5.0
ENDED_RUNS_PER_TICK = 300  # ended gap runs read per tick (more than end within SEEN_SLACK_S at 10 in flight)
SEEN_SLACK_S = 60  # ended runs are read from this long before the newest one seen (and skipped by id): late commits
WAITS_LISTED = 10  # waiting ranges named in a tick's log / skip reason
WHY_MAX_CHARS = 300
ENDED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


@dataclass
class Wait:
    """Why a minute waits, and until when (ms, by the sensor's clock)."""

    failures: int  # runs that asked for the minute and ended without it
    until_ms: int
    run_id: str  # the last of them
    why: str


@dataclass
class GapCursor:
    """The gap sensor's state between ticks, as JSON in its cursor.

    ``first_trades``: symbol -> {"id", "time_ms"} of its first trade, or {"none_checked_ms"} when it had not traded
    at that time; ``waits``: symbol -> {minute start ms -> Wait}, stored as ranges of minutes sharing one Wait;
    ``seen_runs``: ended gap runs already accounted for (run id -> update time, s), newer than ``runs_after`` -
    ``SEEN_SLACK_S``; ``turn``: the symbol index the next round robin starts at."""

    first_trades: dict[str, dict[str, int]] = field(default_factory=dict)
    waits: dict[str, dict[int, Wait]] = field(default_factory=dict)
    seen_runs: dict[str, float] = field(default_factory=dict)
    runs_after: float | None = None
    turn: int = 0

    @classmethod
    def load(cls, text: str | None) -> "GapCursor":
        if not text:
            return cls()
        data = json.loads(text)
        waits: dict[str, dict[int, Wait]] = {}
        for symbol, ranges in data.get("waits", {}).items():
            minutes = waits.setdefault(symbol, {})
            for start, count, failures, until, run_id, why in ranges:
                for i in range(count):
                    minutes[start + i * MINUTE_MS] = Wait(failures, until, run_id, why)
        return cls(
            first_trades=data.get("first_trades", {}),
            waits=waits,
            seen_runs=data.get("seen_runs", {}),
            runs_after=data.get("runs_after"),
            turn=data.get("turn", 0),
        )

    def dump(self) -> str:
        waits: dict[str, list[list]] = {}
        for symbol, minutes in self.waits.items():
            ranges: list[list] = []
            for minute in sorted(minutes):
                w = minutes[minute]
                last = ranges[-1] if ranges else None
                if (
                    last
                    and last[0] + last[1] * MINUTE_MS == minute
                    and last[2:] == [w.failures, w.until_ms, w.run_id, w.why]
                ):
                    last[1] += 1
                else:
                    ranges.append([minute, 1, w.failures, w.until_ms, w.run_id, w.why])
            if ranges:
                waits[symbol] = ranges
        return json.dumps(
            {
                "v": 1,
                "first_trades": self.first_trades,
                "waits": waits,
                "seen_runs": self.seen_runs,
                "runs_after": self.runs_after,
                "turn": self.turn,
            },
            separators=(",", ":"),
        )


def backoff_s(failures: int) -> int:
    """The wait after the ``failures``-th run that ended without the minute: 5 min, 10, 20 ... at most 4 h."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** min(failures - 1, 16))


def build_gap_backfill_sensor(
    raw_job: JobDefinition,
    symbols: Sequence[str],
    partitions_def: TimeWindowPartitionsDefinition,
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
) -> SensorDefinition:
    """``clock``: the sensor's now (seconds), for windows and back-offs; tests pass a controllable one."""
    symbols = list(symbols)

    @sensor(
        name="raw_trades_gap_backfill",
        job=raw_job,
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=15,
        description=f"Backfills over REST the raw_trades minutes of the last {settings.gap_lookback_hours} h "
        f"that are neither materialized nor in flight {settings.gap_settle_seconds}s after their end "
        f"(from each symbol's first trade on): newest first, round robin by symbol, a minute still "
        f"missing after its run waits 5 min, 10, 20 ... up to 4 h.",
    )
    def raw_trades_gap_backfill(context: SensorEvaluationContext):
        instance = context.instance
        now_ms = int(clock() * 1000)
        window_start = max(
            _partitions_start_ms(partitions_def), floor_minute(now_ms - settings.gap_lookback_hours * 3600_000)
        )
        window_end = floor_minute(now_ms - settings.gap_settle_seconds * 1000 - MINUTE_MS) + MINUTE_MS
        try:
            state = GapCursor.load(context.cursor)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            context.log.warning(f"unreadable gap sensor cursor ({exc}): starting from a fresh state")
            state = GapCursor()
        until = floor_minute(now_ms) + MINUTE_MS  # the window's minutes and those since its end (a run may hold them)
        materialized = {
            symbol: materialized_minutes(instance, raw_trades_key(symbol), window_start, until) for symbol in symbols
        }

        _account_ended_runs(context, state, symbols, materialized, now_ms, window_start, settings)
        for symbol in list(state.waits):  # bounded: only minutes inside the window that are still missing
            minutes = state.waits[symbol]
            if symbol not in materialized:
                del state.waits[symbol]
                continue
            for minute in [
                m for m in minutes if not window_start <= m < window_end or minute_key(m) in materialized[symbol]
            ]:
                del minutes[minute]

        in_flight = instance.get_run_records(RunsFilter(tags={GAP_TAG: symbols}, statuses=IN_FLIGHT_STATUSES))
        busy: dict[str, set[int]] = {symbol: set() for symbol in symbols}
        for record in in_flight:
            tags = record.dagster_run.tags
            if tags.get(GAP_TAG) in busy:
                busy[tags[GAP_TAG]].update(_range_minutes(tags))
        waiting = _waiting_ranges(state, symbols, busy, now_ms)
        free = settings.gap_max_runs - len(in_flight)
        if free <= 0:
            return SensorResult(
                skip_reason=f"{len(in_flight)} gap backfill run(s) in flight (limit "
                f"{settings.gap_max_runs}){_waits_text(waiting)}",
                cursor=state.dump(),
            )

        starts, not_ready = _symbol_starts(context, state, symbols, now_ms, window_start, settings)
        queues: dict[str, list[tuple[int, int]]] = {}  # symbol -> ranges (start, end exclusive), newest first
        missing_total = 0
        for symbol, symbol_start in starts.items():
            due = [
                m
                for m in range(symbol_start, window_end, MINUTE_MS)
                if minute_key(m) not in materialized[symbol]
                and m not in busy[symbol]
                and not (m in state.waits.get(symbol, {}) and state.waits[symbol][m].until_ms > now_ms)
            ]
            missing_total += len(due)
            if due:
                queues[symbol] = newest_first_ranges(due, GAP_MINUTES_PER_RUN)
        picked, state.turn = round_robin(symbols, queues, min(free, MAX_RUNS_PER_TICK), state.turn)
        requests = [
            RunRequest(
                run_key=f"gap:{symbol}:{minute_key(start)}:{minute_key(end - MINUTE_MS)}:{now_ms // 1000}",
                asset_selection=[raw_trades_key(symbol)],
                tags={GAP_TAG: symbol, RANGE_START_TAG: minute_key(start), RANGE_END_TAG: minute_key(end - MINUTE_MS)},
            )
            for symbol, start, end in picked
        ]
        skipped = "".join(f"; {text}" for text in not_ready)
        if not requests:
            return SensorResult(
                skip_reason=(
                    f"no gap due in {', '.join(starts)} up to {minute_key(window_end - MINUTE_MS)}"
                    if starts
                    else "no symbol's first trade is known yet"
                )
                + skipped
                + _waits_text(waiting),
                cursor=state.dump(),
            )
        context.log.info(
            f"{missing_total} minute(s) due in {sum(len(q) for q in queues.values())} range(s); requesting "
            f"{len(requests)} run(s): "
            + ", ".join(f"{s} {minute_key(a)}..{minute_key(b - MINUTE_MS)}" for s, a, b in picked)
            + skipped
            + _waits_text(waiting)
        )
        return SensorResult(run_requests=requests, cursor=state.dump())

    return raw_trades_gap_backfill


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


def _range_minutes(tags) -> range:
    start, end = minute_start_ms(tags[RANGE_START_TAG]), minute_start_ms(tags[RANGE_END_TAG])
    return range(start, end + MINUTE_MS, MINUTE_MS)


def _account_ended_runs(
    context: SensorEvaluationContext,
    state: GapCursor,
    symbols: Sequence[str],
    materialized: dict[str, set[str]],
    now_ms: int,
    window_start: int,
    settings: Settings,
) -> None:
    """Each gap run that ended since the last tick, once: the minutes of its range still missing start (or go on)
    waiting. The run storage's own update times (wall clock) page through them."""
    if state.runs_after is None:
        state.runs_after = time.time() - settings.gap_lookback_hours * 3600
    after = datetime.fromtimestamp(state.runs_after - SEEN_SLACK_S, UTC)
    records = context.instance.get_run_records(
        RunsFilter(tags={GAP_TAG: list(symbols)}, statuses=ENDED, updated_after=after),
        limit=ENDED_RUNS_PER_TICK,
        order_by="update_timestamp",
        ascending=True,
    )
    for record in records:
        run = record.dagster_run
        updated = record.update_timestamp.timestamp()
        state.runs_after = max(state.runs_after, updated)
        if run.run_id in state.seen_runs:
            continue
        state.seen_runs[run.run_id] = updated
        symbol = run.tags.get(GAP_TAG)
        if symbol not in materialized or RANGE_START_TAG not in run.tags or RANGE_END_TAG not in run.tags:
            continue
        missing = [
            m for m in _range_minutes(run.tags) if m >= window_start and minute_key(m) not in materialized[symbol]
        ]
        if not missing:
            continue
        why = _why_missing(context.instance, run)
        waits = state.waits.setdefault(symbol, {})
        for minute in missing:
            previous = waits.get(minute)
            failures = previous.failures + 1 if previous else 1
            waits[minute] = Wait(failures, now_ms + backoff_s(failures) * 1000, run.run_id, why)
        context.log.info(
            f"{symbol}: {len(missing)} minute(s) of run {run.run_id} "
            f"({run.tags[RANGE_START_TAG]}..{run.tags[RANGE_END_TAG]}) still missing: {why}"
        )
    state.seen_runs = {run_id: ts for run_id, ts in state.seen_runs.items() if ts >= state.runs_after - SEEN_SLACK_S}


def _why_missing(instance, run) -> str:
    """The run's failure as one short text (its first line and first listed problem), or what else happened."""
    if run.status == DagsterRunStatus.SUCCESS:
        return f"still missing after run {run.run_id} (it succeeded without them)"
    if run.status == DagsterRunStatus.CANCELED:
        return f"run {run.run_id} was canceled"
    message = ""
    for entry in instance.all_logs(run.run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_FAILURE and event.step_failure_data.error:
            message = event.step_failure_data.error.message
            break
        message = message or event.message or entry.user_message or ""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return f"still missing after run {run.run_id} (failed)"
    first = lines[0].split("Failure: ", 1)[-1]  # "dagster...Failure: <description>"
    problem = next((line for line in lines[1:] if line.startswith("- ")), None)
    text = f"run {run.run_id} failed: {first}" + (f" {problem}" if problem else "")
    return text if len(text) <= WHY_MAX_CHARS else text[: WHY_MAX_CHARS - 3] + "..."


def _symbol_starts(
    context: SensorEvaluationContext,
    state: GapCursor,
    symbols: Sequence[str],
    now_ms: int,
    window_start: int,
    settings: Settings,
) -> tuple[dict[str, int], list[str]]:
    """Each symbol's first minute that can be a gap: the window's start or its first trade's minute, whichever is
    later. Symbols whose first trade is not known (lookup failed or left for the next tick) or that have not traded
    yet are left out, with a text saying so."""
    lookups_end = time.monotonic() + LOOKUP_BUDGET_S
    client = None
    starts: dict[str, int] = {}
    not_ready: list[str] = []
    try:
        for symbol in symbols:
            known = state.first_trades.get(symbol)
            stale_none = (
                known is not None
                and "time_ms" not in known
                and now_ms - known.get("none_checked_ms", 0) >= NOT_TRADED_RECHECK_S * 1000
            )
            if known is None or stale_none:
                if time.monotonic() > lookups_end:
                    not_ready.append(
                        f"{symbol}: first trade not looked up yet (this tick's lookups took "
                        f"{LOOKUP_BUDGET_S:g} s): next tick"
                    )
                    continue
                try:
                    if client is None:  # the machine's weight budget, like every REST caller; few attempts
                        client = ExchangeResource.from_settings(settings).rest_client(timeout=LOOKUP_TIMEOUT_S)
                        client.max_attempts = 2
                    first = client.first_trade(symbol)
                except (ExchangeError, ExchangeUnreachable, OSError) as exc:
                    context.log.warning(
                        f"{symbol}: could not look up its first trade ({exc}); its gaps wait, "
                        f"the lookup is tried again next tick"
                    )
                    not_ready.append(f"{symbol}: first trade unknown (lookup failed: {exc})")
                    continue
                known = (
                    {"id": first.trade_id, "time_ms": first.trade_time}
                    if first is not None
                    else {"none_checked_ms": now_ms}
                )
                state.first_trades[symbol] = known
                context.log.info(
                    f"{symbol}: first trade {known['id']} at {utc_text(known['time_ms'])}"
                    if first is not None
                    else f"{symbol}: has not traded yet"
                )
            if "time_ms" not in known:
                not_ready.append(f"{symbol}: has not traded yet (asked at {utc_text(known['none_checked_ms'])})")
                continue
            starts[symbol] = max(window_start, floor_minute(known["time_ms"]))
    finally:
        if client is not None:
            client.close()
    return starts, not_ready


def _waiting_ranges(
    state: GapCursor, symbols: Sequence[str], busy: dict[str, set[int]], now_ms: int
) -> list[tuple[str, int, int, Wait]]:
    """The minutes waiting out a back-off now (not in flight), as ranges (symbol, start, end exclusive, wait)."""
    out: list[tuple[str, int, int, Wait]] = []
    for symbol in symbols:
        waits = state.waits.get(symbol, {})
        for minute in sorted(waits):
            wait = waits[minute]
            if wait.until_ms <= now_ms or minute in busy.get(symbol, ()):
                continue
            if out and out[-1][0] == symbol and out[-1][2] == minute and out[-1][3] == wait:
                out[-1] = (symbol, out[-1][1], minute + MINUTE_MS, wait)
            else:
                out.append((symbol, minute, minute + MINUTE_MS, wait))
    return out


def _waits_text(waiting: list[tuple[str, int, int, Wait]]) -> str:
    if not waiting:
        return ""
    listed = "; ".join(
        f"{symbol} {minute_key(start)}..{minute_key(end - MINUTE_MS)} ({(end - start) // MINUTE_MS} min) waits until "
        f"{utc_text(wait.until_ms)} after {wait.failures} run(s) without it: {wait.why}"
        for symbol, start, end, wait in waiting[:WAITS_LISTED]
    )
    more = f"; and {len(waiting) - WAITS_LISTED} more range(s)" if len(waiting) > WAITS_LISTED else ""
    return f". {len(waiting)} range(s) wait: {listed}{more}"


def _partitions_start_ms(partitions_def: TimeWindowPartitionsDefinition) -> int:
    return int(partitions_def.start.timestamp() * 1000)
