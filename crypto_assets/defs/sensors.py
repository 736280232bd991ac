"""The two sensors that make the pipeline heal itself, both on by default (``dagster dev`` needs no click).

- ``live_stream_keepalive`` keeps exactly one `live_trades_stream` run alive. A run counts as alive while it is
  queued, starting, or started with a fresh heartbeat; a started run whose heartbeat is older than
  ``STALE_AFTER_S`` died without Dagster noticing (``dagster dev`` killed hard) and is marked failed. A run
  streaming other symbols than the configured ones is cancelled and replaced. After repeated failures in a row the
  next start waits (1, 2, 4 ... up to 15 minutes): no crash loop.
- ``raw_trades_gap_backfill`` looks back over the last ``CRYPTO_GAP_LOOKBACK_HOURS`` for minute partitions of
  `raw_trades/<symbol>` that ended more than ``CRYPTO_GAP_SETTLE_SECONDS`` ago and are neither materialized nor
  in flight, and backfills them over REST: one run per contiguous range of up to an hour, oldest first, at most
  ``CRYPTO_GAP_MAX_RUNS`` gap runs in flight at once (they share the exchange's weight limit). A range is asked
  for again at most every ``RETRY_AFTER_S`` (its run key carries the retry period).
"""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

import time
from collections.abc import Sequence

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    TimeWindowPartitionsDefinition,
    sensor,
)

from crypto_assets.defs.live_stream import HEARTBEAT_TAG, STREAM_JOB, SYMBOLS_TAG
from crypto_assets.defs.raw_trades import MINUTES_PER_RUN, raw_trades_key
from crypto_assets.ingest.minutes import MINUTE_MS, contiguous_ranges, floor_minute, minute_key, minute_start_ms
from crypto_assets.settings import Settings

STALE_AFTER_S = 45  # no heartbeat for this long (it beats every 15 s: three missed beats): the process is gone
FAILURE_BACKOFF_AFTER = 3  # failed stream runs in a row before starts are spaced out
MAX_BACKOFF_S = 15 * 60
GAP_TAG = "crypto_assets/gap_backfill"  # value: the symbol
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
RETRY_AFTER_S = 300
MAX_RUNS_PER_TICK = 6
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def build_live_stream_keepalive(stream_job: JobDefinition, symbols: Sequence[str]) -> SensorDefinition:
    configured = ",".join(symbols)

    @sensor(name="live_stream_keepalive", job=stream_job, default_status=DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=20,
            description="Keeps exactly one live_trades_stream run alive, streaming the configured symbols.")
    def live_stream_keepalive(context: SensorEvaluationContext):
        instance = context.instance
        now = time.time()
        alive = []
        for record in instance.get_run_records(RunsFilter(job_name=STREAM_JOB, statuses=IN_FLIGHT)):
            run = record.dagster_run
            if run.status == DagsterRunStatus.STARTED:
                beat = float(run.tags.get(HEARTBEAT_TAG) or record.start_time or record.create_timestamp.timestamp())
                if now - beat > STALE_AFTER_S:
                    instance.report_run_failed(run, f"no heartbeat for {now - beat:.0f}s: the run's process is "
                                                    f"gone (e.g. its host or `dagster dev` was killed)")
                    context.log.warning(f"marked stream run {run.run_id} failed: no heartbeat for {now - beat:.0f}s")
                    continue
            if run.tags.get(SYMBOLS_TAG) != configured and run.status != DagsterRunStatus.CANCELING:
                context.log.info(f"stream run {run.run_id} streams {run.tags.get(SYMBOLS_TAG)}, configured: "
                                 f"{configured}: cancelling it")
                instance.run_coordinator.cancel_run(run.run_id)
            alive.append(run)
        if alive:
            return SkipReason(f"stream run {alive[0].run_id} is {alive[0].status.value}")
        wait = _backoff_s(instance, now)
        if wait > 0:
            return SkipReason(f"the last stream runs failed in a row: next start in {wait:.0f}s")
        return RunRequest(tags={SYMBOLS_TAG: configured})

    return live_stream_keepalive


def _backoff_s(instance, now: float) -> float:
    """Seconds to wait before starting a stream run again, after FAILURE_BACKOFF_AFTER or more failures in a row."""
    records = instance.get_run_records(RunsFilter(job_name=STREAM_JOB), limit=12)
    failures = 0
    for record in records:
        if record.dagster_run.status != DagsterRunStatus.FAILURE:
            break
        failures += 1
    if failures < FAILURE_BACKOFF_AFTER:
        return 0.0
    last_end = records[0].end_time or records[0].update_timestamp.timestamp()
    return max(0.0, last_end + min(MAX_BACKOFF_S, 60 * 2 ** (failures - FAILURE_BACKOFF_AFTER)) - now)


def build_gap_backfill_sensor(raw_job: JobDefinition, symbols: Sequence[str],
                              partitions_def: TimeWindowPartitionsDefinition, settings: Settings) -> SensorDefinition:
    @sensor(name="raw_trades_gap_backfill", job=raw_job, default_status=DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=15,
            description=f"Backfills over REST the raw_trades minutes of the last {settings.gap_lookback_hours} h "
                        f"that are neither materialized nor in flight {settings.gap_settle_seconds}s after their end.")
    def raw_trades_gap_backfill(context: SensorEvaluationContext):
        instance = context.instance
        now_ms = int(time.time() * 1000)
        window_start = max(_partitions_start_ms(partitions_def),
                           floor_minute(now_ms - settings.gap_lookback_hours * 3600_000))
        window_end = floor_minute(now_ms - settings.gap_settle_seconds * 1000 - MINUTE_MS) + MINUTE_MS
        in_flight = instance.get_run_records(RunsFilter(tags={GAP_TAG: list(symbols)}, statuses=IN_FLIGHT))
        free = settings.gap_max_runs - len(in_flight)
        if free <= 0:
            return SkipReason(f"{len(in_flight)} gap backfill run(s) in flight (limit {settings.gap_max_runs})")
        busy: dict[str, set[int]] = {symbol: set() for symbol in symbols}
        for record in in_flight:
            tags = record.dagster_run.tags
            if tags.get(GAP_TAG) in busy:
                start, end = minute_start_ms(tags[RANGE_START_TAG]), minute_start_ms(tags[RANGE_END_TAG])
                busy[tags[GAP_TAG]].update(range(start, end + MINUTE_MS, MINUTE_MS))
        candidates: list[tuple[int, str, int]] = []  # (range start, symbol, range end exclusive)
        missing_total = 0
        for symbol in symbols:
            materialized = instance.get_materialized_partitions(raw_trades_key(symbol))
            missing = [m for m in range(window_start, window_end, MINUTE_MS)
                       if minute_key(m) not in materialized and m not in busy[symbol]]
            missing_total += len(missing)
            candidates += [(start, symbol, end) for start, end in contiguous_ranges(missing, MINUTES_PER_RUN)]
        if not candidates:
            return SkipReason(f"no gap in {', '.join(symbols)} from {minute_key(window_start)} to "
                              f"{minute_key(window_end - MINUTE_MS)}")
        period = now_ms // 1000 // RETRY_AFTER_S
        requests = [
            RunRequest(
                run_key=f"gap:{symbol}:{minute_key(start)}:{minute_key(end - MINUTE_MS)}:{period}",
                asset_selection=[raw_trades_key(symbol)],
                tags={GAP_TAG: symbol, RANGE_START_TAG: minute_key(start), RANGE_END_TAG: minute_key(end - MINUTE_MS)},
            )
            for start, symbol, end in sorted(candidates)[:min(free, MAX_RUNS_PER_TICK)]
        ]
        context.log.info(f"{missing_total} minute(s) missing in {len(candidates)} range(s); requesting "
                         f"{len(requests)} run(s)")
        return SensorResult(run_requests=requests)

    return raw_trades_gap_backfill


def _partitions_start_ms(partitions_def: TimeWindowPartitionsDefinition) -> int:
    return int(partitions_def.start.timestamp() * 1000)

