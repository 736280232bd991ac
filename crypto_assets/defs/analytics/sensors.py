"""`analytics_gap_rebuild_sensor`: when raw minutes of an hour that was already built are materialized later (a gap
backfill, a late stream minute), the hour is built again, once no run covering it is queued or in progress.

An hour counts as built when its first silver model (stg_trade_minutes) has a materialization; it is rebuilt when a
raw minute of it was recorded after the run that built it had started (so a minute that lands while a build is
listing the lake is not lost). Hours never built are left to the schedule or a backfill. When the next hour is over
and built too, the rebuild covers both in one run (a partition range): the next hour's rolling indicators (moving
averages, volatility, price jumps) and the carried close of its quiet minutes look back into the rebuilt one.

Cursor (JSON): per raw asset the last event storage id read, and the hours waiting for a rebuild (with the time of
their newest raw minute). The sensor also gives the `duckdb` pool a limit of 1 on the instance when it has none
(one writer per DuckDB file)."""

import json
from datetime import UTC, datetime

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    TimeWindowPartitionsDefinition,
    sensor,
)

from crypto_assets.defs.analytics.assets import DUCKDB_POOL
from crypto_assets.defs.analytics.readiness import hours_in_flight, latest_build_started
from crypto_assets.defs.analytics.schedules import HOURLY_JOB
from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG

RECORDS_PER_TICK = 2000


def ensure_pool_limit(instance, pool: str = DUCKDB_POOL, limit: int = 1) -> bool:
    """Set the pool's limit when the instance has none; True when it did."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits or pool in storage.get_concurrency_keys():
        return False
    storage.set_concurrency_slots(pool, limit)
    return True


def hour_of_minute(minute_key: str) -> str:
    """'2026-11-21-06:53' -> '2026-11-21-06:00'."""
    return minute_key[:-2] + "00"


def build_gap_rebuild_sensor(raw_keys: list[AssetKey], hours: TimeWindowPartitionsDefinition) -> SensorDefinition:
    @sensor(
        name="analytics_gap_rebuild_sensor",
        job_name=HOURLY_JOB,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Rebuilds an already built hour (and the next one) when raw minutes of it arrive later.",
    )
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
                AssetRecordsFilter(asset_key=key, after_storage_id=after.get(name, 0)),
                limit=RECORDS_PER_TICK,
                ascending=True,
            )
            for record in result.records:
                after[name] = max(after.get(name, 0), record.storage_id)
                if record.partition_key:
                    hour = hour_of_minute(record.partition_key)
                    pending[hour] = max(pending.get(hour, 0.0), record.timestamp)

        def over_and_in_window(hour: str) -> bool:
            try:
                window = hours.time_window_for_partition_key(hour)
            except Exception:  # noqa: BLE001 - not a key of these partitions (whatever Dagster raises for it)
                return False
            return window.start >= hours.start and window.end <= now

        busy = hours_in_flight(instance, HOURLY_JOB) if pending else set()
        requests, waiting, requested = [], {}, set()
        for hour, arrived in sorted(pending.items()):
            if hour in requested or not over_and_in_window(hour):
                continue  # not over yet (the schedule builds it) or outside the partitions
            started = latest_build_started(instance, hour)
            if started is None or arrived < started:
                continue  # never built (schedule/backfill does it), or the latest build already saw these minutes
            following = hours.get_next_partition_key(hour)
            with_next = (
                following is not None
                and over_and_in_window(following)
                and latest_build_started(instance, following) is not None
            )
            if hour in busy or (with_next and following in busy):
                waiting[hour] = arrived  # a run covering it is in flight: look again next tick
                continue
            if with_next:
                tags = {RANGE_START_TAG: hour, RANGE_END_TAG: following}
                requests.append(
                    RunRequest(
                        run_key=f"rebuild-{hour}-{following}-{arrived:.3f}",
                        tags={**tags, "crypto_assets/reason": "raw minutes arrived after the hour was built"},
                    )
                )
                requested.update((hour, following))
            else:
                requests.append(
                    RunRequest(
                        run_key=f"rebuild-{hour}-{arrived:.3f}",
                        partition_key=hour,
                        tags={"crypto_assets/reason": "raw minutes arrived after the hour was built"},
                    )
                )
                requested.add(hour)
        context.update_cursor(json.dumps({"after": after, "pending": waiting}))
        return requests or SkipReason("no already-built hour got new raw minutes")

    return analytics_gap_rebuild_sensor
