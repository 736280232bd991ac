"""``raw_trades_gap_backfill``: backfills the `raw_trades/<symbol>` minutes the stream did not record; on by default.

It looks back over the last ``CRYPTO_GAP_LOOKBACK_HOURS`` for minute partitions that ended more than
``CRYPTO_GAP_SETTLE_SECONDS`` ago and are neither materialized nor in flight, and requests runs of the
``raw_trades_from_rest`` job for them (over REST, or the archive where cheaper: ``fetch_cost``), at most
``CRYPTO_GAP_MAX_RUNS`` gap runs in flight at once (they share the exchange's weight limit). Which ranges, in which
order, and how long a minute still missing after its run waits, is the pure planner's (``gap_plan.py``); each
symbol's first trade is ``first_trades.py``'s, looked up through the ``exchange`` resource.

A tick reads the in-flight gap runs, the gap runs ended since the last tick (why each ended without its minutes
only for those that did: the ``reason`` and ``detail`` the raw op put on its failure, or how the run ended;
``miss_reasons.py``), each symbol's materialized partitions of the window and, once per symbol, its first trade: it
stays light. The tick's log, and its skip reason when it requests nothing, list the waiting ranges, why and until
when. Each run request's run key is the symbol, the range and the attempt at it (``gap_plan.gap_run_key``).
"""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

import time
from collections.abc import Callable, Sequence
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
from crypto_assets.defs.raw.first_trades import LOOKUP_ATTEMPTS, LOOKUP_TIMEOUT_S, symbol_starts
from crypto_assets.defs.raw.gap_plan import (
    MAX_RUNS_PER_TICK,
    SEEN_SLACK_S,
    EndedRun,
    GapCursor,
    GapPolicy,
    GapRange,
    account_ended_runs,
    gap_run_key,
    plan_gaps,
    prune_waits,
    scan_slice,
    waiting_ranges,
    waits_text,
)
from crypto_assets.defs.raw.miss_reasons import MissReason, read_failure_metadata
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.minutes import MINUTE_MS, floor_minute, minute_key, minute_start_ms

GAP_TAG = "crypto_assets/gap_backfill"  # value: the symbol
SYMBOLS_PER_TICK = 100  # symbols whose minutes one tick reads from the instance (bench/breadth.py)
ENDED_RUNS_PER_TICK = 300  # ended gap runs read per tick (more than end within SEEN_SLACK_S at 10 in flight)
ENDED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def build_gap_backfill_sensor(
    raw_job: JobDefinition,
    symbols: Sequence[str],
    partitions_def: TimeWindowPartitionsDefinition,
    policy: GapPolicy,
    *,
    clock: Callable[[], float] = time.time,
) -> SensorDefinition:
    """``clock``: the sensor's now (seconds), for windows and back-offs; tests pass a controllable one."""
    defined = list(symbols)
    partitions_start_ms = int(partitions_def.start.timestamp() * 1000)

    @sensor(
        name="raw_trades_gap_backfill",
        job=raw_job,
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=15,
        description=f"Backfills over REST the raw_trades minutes of the last {policy.lookback_hours} h "
        f"that are neither materialized nor in flight {policy.settle_s}s after their end "
        f"(from each symbol's first trade on): newest first, round robin by symbol, a minute still "
        f"missing after its run waits 5 min, 10, 20 ... up to 4 h.",
    )
    def raw_trades_gap_backfill(context: SensorEvaluationContext, exchange: ExchangeResource, lake: LakeResource):
        instance = context.instance
        chased = set(exchange.universe(lake.lake()).chased())  # halted and departed symbols have no gaps to chase
        symbols = [s for s in defined if s in chased]
        now_ms = int(clock() * 1000)
        window_start, window_end = policy.window(now_ms, partitions_start_ms)
        try:
            state = GapCursor.load(context.cursor)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            context.log.warning(f"unreadable gap sensor cursor ({exc}): starting from a fresh state")
            state = GapCursor()
        until = floor_minute(now_ms) + MINUTE_MS  # the window's minutes and those since its end (a run may hold them)
        starts_by_key = {minute_key(m): m for m in range(window_start, until, MINUTE_MS)}
        if state.runs_after is None:  # the run storage's own update times (wall clock) page through the ended runs
            state.runs_after = time.time() - policy.lookback_hours * 3600
        ended = _ended_runs(instance, symbols, state.runs_after)
        # the symbols this tick looks at: a bounded slice, coming round tick after tick, and those of ended runs
        scan, state.scan_from = scan_slice(symbols, state.scan_from, SYMBOLS_PER_TICK)
        looked_at = dict.fromkeys([*scan, *(run.symbol for run in ended if run.symbol in chased)])
        materialized = {
            symbol: {
                starts_by_key[key]
                for key in materialized_minutes(instance, raw_trades_key(symbol), window_start, until)
            }
            for symbol in looked_at
        }
        for line in account_ended_runs(
            state, ended, materialized, window_start, now_ms, explain=lambda run_id: _why_missing(instance, run_id)
        ):
            context.log.info(line)
        prune_waits(state, chased, materialized, window_start, window_end)

        in_flight = instance.get_run_records(RunsFilter(tags={GAP_TAG: symbols}, statuses=IN_FLIGHT_STATUSES))
        busy: dict[str, set[int]] = {symbol: set() for symbol in symbols}
        for record in in_flight:
            tags = record.dagster_run.tags
            if tags.get(GAP_TAG) in busy and RANGE_START_TAG in tags and RANGE_END_TAG in tags:
                busy[tags[GAP_TAG]].update(_range_minutes(tags))
        waiting = waiting_ranges(state.waits, symbols, busy, now_ms)
        free = policy.max_runs - len(in_flight)
        if free <= 0:
            return SensorResult(
                skip_reason=f"{len(in_flight)} gap backfill run(s) in flight (limit "
                f"{policy.max_runs}){waits_text(waiting)}",
                cursor=state.dump(),
            )

        starts, not_ready = symbol_starts(
            state.first_trades,
            scan,
            now_ms,
            window_start,
            lambda: _lookup_client(exchange),
            info=context.log.info,
            warning=context.log.warning,
        )
        plan = plan_gaps(
            scan,
            starts,
            window_end,
            materialized,
            busy,
            state.waits,
            now_ms,
            min(free, MAX_RUNS_PER_TICK),
            state.turn,
        )
        state.turn = plan.turn
        requests = [
            RunRequest(
                run_key=gap_run_key(gap, _attempt(instance, gap)),
                asset_selection=[raw_trades_key(gap.symbol)],
                tags={GAP_TAG: gap.symbol, RANGE_START_TAG: gap.first_key, RANGE_END_TAG: gap.last_key},
            )
            for gap in plan.requests
        ]
        skipped = "".join(f"; {text}" for text in not_ready)
        if not requests:
            return SensorResult(
                skip_reason=(
                    f"no gap due in {_names(list(starts))} up to {minute_key(window_end - MINUTE_MS)}"
                    if starts
                    else "no symbol's first trade is known yet"
                )
                + skipped
                + waits_text(waiting),
                cursor=state.dump(),
            )
        context.log.info(
            f"{plan.due_minutes} minute(s) due in {plan.due_ranges} range(s); requesting {len(requests)} run(s): "
            + ", ".join(f"{gap.symbol} {gap.first_key}..{gap.last_key}" for gap in plan.requests)
            + skipped
            + waits_text(waiting)
        )
        return SensorResult(run_requests=requests, cursor=state.dump())

    return raw_trades_gap_backfill


def _names(symbols: list[str]) -> str:
    """A few symbols by name, many as a count and their range (a skip reason stays one readable line)."""
    return ", ".join(symbols) if len(symbols) <= 10 else f"{len(symbols)} symbols ({symbols[0]}..{symbols[-1]})"


def _lookup_client(exchange: ExchangeResource):
    """The REST client of the first-trade lookups: the machine's weight budget, like every REST caller; a short
    timeout and few attempts (a tick must end within 60 s)."""
    client = exchange.rest_client(timeout=LOOKUP_TIMEOUT_S)
    client.max_attempts = LOOKUP_ATTEMPTS
    return client


def _range_minutes(tags) -> range:
    start, end = minute_start_ms(tags[RANGE_START_TAG]), minute_start_ms(tags[RANGE_END_TAG])
    return range(start, end + MINUTE_MS, MINUTE_MS)


def _ended_runs(instance, symbols: Sequence[str], runs_after: float) -> list[EndedRun]:
    """The gap runs that ended (were updated) since ``runs_after`` - ``SEEN_SLACK_S``, oldest first."""
    records = instance.get_run_records(
        RunsFilter(
            tags={GAP_TAG: list(symbols)},
            statuses=ENDED,
            updated_after=datetime.fromtimestamp(runs_after - SEEN_SLACK_S, UTC),
        ),
        limit=ENDED_RUNS_PER_TICK,
        order_by="update_timestamp",
        ascending=True,
    )
    out = []
    for record in records:
        tags = record.dagster_run.tags
        ranged = RANGE_START_TAG in tags and RANGE_END_TAG in tags
        out.append(
            EndedRun(
                record.dagster_run.run_id,
                tags.get(GAP_TAG),
                minute_start_ms(tags[RANGE_START_TAG]) if ranged else None,
                minute_start_ms(tags[RANGE_END_TAG]) if ranged else None,
                record.update_timestamp.timestamp(),
            )
        )
    return out


def _why_missing(instance, run_id: str) -> tuple[MissReason, str]:
    """Why a gap run ended without (some of) its minutes: how it ended, or the reason the raw op put on its failure
    (read from the step failure's metadata, never from its text). A failure without one (the run's process died, a
    failure reported from outside) is ``RUN_FAILED`` with the first line of its own message, as it is."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.status == DagsterRunStatus.SUCCESS:
        return MissReason.SUCCEEDED_WITHOUT_THEM, ""
    if run.status == DagsterRunStatus.CANCELED:
        return MissReason.RUN_CANCELED, ""
    message = ""
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_FAILURE:
            failure = event.step_failure_data
            if failure.user_failure_data is not None:
                found = read_failure_metadata(failure.user_failure_data.metadata)
                if found is not None:
                    return found
            message = message or (failure.error.message if failure.error else "")
        else:
            message = message or event.message or entry.user_message or ""
    return MissReason.RUN_FAILED, next((line.strip() for line in message.splitlines() if line.strip()), "")


def _attempt(instance, gap: GapRange) -> int:
    """Which attempt at ``gap`` a request is: 1 + the gap runs of this very range (symbol, first and last minute)
    that ended already. A range in flight is not requested, so the count holds still while a tick is evaluated
    again."""
    tags = {GAP_TAG: gap.symbol, RANGE_START_TAG: gap.first_key, RANGE_END_TAG: gap.last_key}
    return instance.get_runs_count(RunsFilter(tags=tags, statuses=ENDED)) + 1
