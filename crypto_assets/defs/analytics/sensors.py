"""`analytics_gap_rebuild_sensor`: when raw minutes of an hour that was already built are materialized later (a gap
backfill, a late stream minute), the hour is built again, once no run of it is queued or in progress.

Cursor (JSON): per raw asset the last event storage id read, and the hours waiting for a rebuild (with the time of
their newest raw minute). An hour counts as built when its first silver model (stg_trade_minutes) has a
materialization; it is rebuilt when a raw minute of it was recorded after the run that built it had started (so a
minute that lands while a build is listing the lake is not lost). Hours never built are left to the schedule or a
backfill. The sensor also gives the `duckdb` pool a limit of 1 on the
instance when it has none (one writer per DuckDB file)."""

import json
from datetime import UTC, datetime

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    TimeWindowPartitionsDefinition,
    sensor,
)

from crypto_assets.defs.analytics.assets import DUCKDB_POOL
from crypto_assets.defs.analytics.schedules import HOURLY_JOB

BUILT_MARKER = AssetKey("stg_trade_minutes")
RECORDS_PER_TICK = 2000
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED]


def ensure_pool_limit(instance, pool: str = DUCKDB_POOL, limit: int = 1) -> bool:
    """Set the pool's limit when the instance has none; True when it did."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits or pool in storage.get_concurrency_keys():
        return False
    storage.set_concurrency_slots(pool, limit)
    return True


def build_started(instance, record) -> float:
    """When the run behind a materialization record started (the event's own time for a run-less event)."""
    run = instance.get_run_record_by_id(record.run_id) if record.run_id else None
    if run is not None and run.start_time:
        return run.start_time
    if run is not None:
        return run.create_timestamp.timestamp()
    return record.timestamp


def hour_of_minute(minute_key: str) -> str:
    """'2026-11-21-06:53' -> '2026-11-21-06:00'."""
    return minute_key[:-2] + "00"


def build_gap_rebuild_sensor(raw_keys: list[AssetKey], hours: TimeWindowPartitionsDefinition) -> SensorDefinition:
    @sensor(name="analytics_gap_rebuild_sensor", job_name=HOURLY_JOB, minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.RUNNING,
            description="Rebuilds an already built hour when raw minutes of it are materialized later.")
    def analytics_gap_rebuild_sensor(context: SensorEvaluationContext):
        instance = context.instance
        if ensure_pool_limit(instance):
            context.log.info(f"pool {DUCKDB_POOL!r} had no limit: set to 1")
        state = json.loads(context.cursor) if context.cursor else {}
        after: dict[str, int] = state.get("after", {})
        pending: dict[str, float] = state.get("pending", {})  # hour -> time its newest raw minute was recorded
        if not after:  # first tick: start from now, do not rebuild history
            latest = instance.event_log_storage.get_maximum_record_id() or 0
            after = {key.to_user_string(): latest for key in raw_keys}
        now = datetime.now(UTC)
        for key in raw_keys:
            name = key.to_user_string()
            result = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, after_storage_id=after.get(name, 0)), limit=RECORDS_PER_TICK,
                ascending=True)
            for record in result.records:
                after[name] = max(after.get(name, 0), record.storage_id)
                if not record.partition_key:
                    continue
                hour = hour_of_minute(record.partition_key)
                pending[hour] = max(pending.get(hour, 0.0), record.timestamp)
        requests, waiting = [], {}
        for hour, arrived in sorted(pending.items()):
            try:
                window = hours.time_window_for_partition_key(hour)
            except Exception:
                continue  # not an hour of this window (too old): nothing to rebuild
            if window.end > now or window.start < hours.start:
                continue  # not over yet: the schedule builds it
            built = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=BUILT_MARKER, asset_partitions=[hour]), limit=1, ascending=False)
            if not built.records:
                continue  # never built: the schedule or a backfill builds it
            if arrived < build_started(instance, built.records[0]):
                continue  # the latest build started after these minutes arrived: it has them
            in_flight = instance.get_runs_count(RunsFilter(job_name=HOURLY_JOB, statuses=IN_FLIGHT,
                                                           tags={"dagster/partition": hour}))
            if in_flight:
                waiting[hour] = arrived
                continue
            requests.append(RunRequest(run_key=f"rebuild-{hour}-{arrived:.3f}", partition_key=hour,
                                       tags={"crypto_assets/reason": "raw minutes arrived after the hour was built"}))
        context.update_cursor(json.dumps({"after": after, "pending": waiting}))
        return requests or SkipReason("no already-built hour got new raw minutes")

    return analytics_gap_rebuild_sensor
