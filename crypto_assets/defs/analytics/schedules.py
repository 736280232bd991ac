"""The jobs and the two schedules users see, start and stop in the UI. Neither launches a run bound to fail: a tick
that has nothing to build is skipped with a reason that names what it waits for.

- `analytics_every_hour` (HH:05) builds the hour that just ended when every raw minute of it (60 per symbol) is
  recorded. An hour still incomplete then is left to Declarative Automation (`automation.py`), which builds it as
  soon as its last minute is recorded, and rebuilds any hour a minute lands in later.
- `analytics_latest_prices_every_hour` (HH:15) rebuilds latest_prices once `candles_1m` is in the warehouse.
"""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from dagster import (
    AssetKey,
    AssetsDefinition,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    TimeWindowPartitionsDefinition,
    define_asset_job,
    in_process_executor,
    schedule,
)

from crypto_assets.defs.analytics.assets import latest_prices_waits_for
from crypto_assets.defs.analytics.automation import AUTOMATION_SENSOR, SCHEDULE_MINUTE
from crypto_assets.defs.analytics.warehouse import WarehouseResource
from crypto_assets.defs.partitions import HOUR_KEY_FORMAT, materialized_minutes
from crypto_assets.minutes import MINUTE_MS

HOURLY_JOB = "analytics_hourly_job"
LATEST_PRICES_JOB = "analytics_latest_prices_job"
HOURLY_SCHEDULE = "analytics_every_hour"
LATEST_PRICES_SCHEDULE = "analytics_latest_prices_every_hour"
MINUTES_PER_HOUR = 60
AssetJob = Any  # dagster's UnresolvedAssetJobDefinition (not exported at the top level)


def build_hourly_job(hourly_assets: AssetsDefinition) -> AssetJob:
    return define_asset_job(
        HOURLY_JOB,
        selection=[hourly_assets],
        description="dbt build of silver and gold for one hour partition (or a range)",
        executor_def=in_process_executor,  # one step (the dbt build): no second process loading the definitions
    )


def build_latest_prices_job(latest_assets: AssetsDefinition) -> AssetJob:
    return define_asset_job(
        LATEST_PRICES_JOB,
        selection=[latest_assets],
        description="dbt build of the unpartitioned models (latest prices)",
        executor_def=in_process_executor,
    )


def hour_waits_for(instance, raw_keys: Sequence[AssetKey], hour_start: datetime) -> str | None:
    """'raw_trades/btcusdt 0 of 60, ...' for the raw assets missing minutes of the hour; None when it is complete."""
    start_ms = int(hour_start.timestamp() * 1000)
    end_ms = start_ms + MINUTES_PER_HOUR * MINUTE_MS
    counts = {key: len(materialized_minutes(instance, key, start_ms, end_ms)) for key in raw_keys}
    short = [f"{key.to_user_string()} {n} of {MINUTES_PER_HOUR}" for key, n in counts.items() if n < MINUTES_PER_HOUR]
    return ", ".join(short) or None


def build_hourly_schedule(
    hourly_job: AssetJob, raw_keys: Sequence[AssetKey], hours: TimeWindowPartitionsDefinition
) -> ScheduleDefinition:
    @schedule(
        name=HOURLY_SCHEDULE,
        job=hourly_job,
        cron_schedule=f"{SCHEDULE_MINUTE} * * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Builds the hour that ended {SCHEDULE_MINUTE} minutes ago when every raw minute of it is "
        f"recorded (an hour completed later is built by the {AUTOMATION_SENSOR} sensor).",
    )
    def analytics_every_hour(context: ScheduleEvaluationContext):
        tick = (context.scheduled_execution_time or datetime.now(UTC)).astimezone(UTC)
        start = tick.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        if start < hours.start.astimezone(UTC):
            return SkipReason(f"no hour partition has ended yet (the partitions start at {hours.start:%Y-%m-%d %H:%M})")
        hour = start.strftime(HOUR_KEY_FORMAT)
        missing = hour_waits_for(context.instance, raw_keys, start)
        if missing:
            return SkipReason(
                f"hour {hour} waits for its raw minutes ({missing} minutes recorded; the live stream and "
                f"raw_trades_gap_backfill record them): {AUTOMATION_SENSOR} builds it once they are"
            )
        return RunRequest(run_key=f"hour-{hour}", partition_key=hour)

    return analytics_every_hour


def build_latest_prices_schedule(latest_job: AssetJob) -> ScheduleDefinition:
    @schedule(
        name=LATEST_PRICES_SCHEDULE,
        job=latest_job,
        cron_schedule=f"{SCHEDULE_MINUTE + 10} * * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Rebuilds latest_prices after the hourly build (waits until candles_1m is built).",
    )
    def analytics_latest_prices_every_hour(context: ScheduleEvaluationContext, warehouse: WarehouseResource):
        waiting = latest_prices_waits_for(context.instance, warehouse)
        return SkipReason(waiting) if waiting else RunRequest()

    return analytics_latest_prices_every_hour


def build_schedules(
    hourly_job: AssetJob, latest_job: AssetJob, raw_keys: Sequence[AssetKey], hours: TimeWindowPartitionsDefinition
) -> list[ScheduleDefinition]:
    return [build_hourly_schedule(hourly_job, raw_keys, hours), build_latest_prices_schedule(latest_job)]
