"""Jobs and schedules: each hour is built once it is complete (5 minutes after it ends, so the streamer's last
minutes have landed), and latest prices follow.

Neither schedule launches a run bound to fail on a fresh machine or an empty warehouse (see `readiness`): a tick
that has nothing to build is skipped with a reason that names what it waits for.

- `analytics_every_hour` (HH:05) builds the hour that just ended once all 60 raw minutes of every symbol are
  materialized. An hour still waiting for them at its tick (the stream started mid-hour and the REST gap backfill
  has not filled its first minutes yet; or nothing was captured at all) is built at a later tick once complete: each
  tick looks at the last ``CATCH_UP_HOURS`` hours and requests every one that is complete, never built and not in
  flight (one run per hour, run key = the hour). Older hours are left to a backfill. An hour already built is not
  requested again: late minutes are `analytics_gap_rebuild_sensor`'s job.
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

from crypto_assets.defs.analytics.readiness import hours_to_build, latest_prices_waits_for
from crypto_assets.defs.analytics.warehouse import WarehouseResource
from crypto_assets.defs.partitions import HOUR_KEY_FORMAT

HOURLY_JOB = "analytics_hourly_job"
LATEST_PRICES_JOB = "analytics_latest_prices_job"
HOURLY_SCHEDULE = "analytics_every_hour"
LATEST_PRICES_SCHEDULE = "analytics_latest_prices_every_hour"
MINUTE_OF_HOUR = 5
CATCH_UP_HOURS = 3  # the hour that just ended and the two before it
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


def tick_time(context: ScheduleEvaluationContext) -> datetime:
    return (context.scheduled_execution_time or datetime.now(UTC)).astimezone(UTC)


def hours_before(tick: datetime, hours: TimeWindowPartitionsDefinition, count: int = CATCH_UP_HOURS) -> list[str]:
    """The keys of the ``count`` hours that ended last before ``tick``, oldest first, within the partitions."""
    last_end = tick.replace(minute=0, second=0, microsecond=0)
    starts = [last_end - timedelta(hours=n) for n in range(count, 0, -1)]
    return [start.strftime(HOUR_KEY_FORMAT) for start in starts if start >= hours.start.astimezone(UTC)]


def build_hourly_schedule(
    hourly_job: AssetJob, raw_keys: Sequence[AssetKey], hours: TimeWindowPartitionsDefinition
) -> ScheduleDefinition:
    @schedule(
        name=HOURLY_SCHEDULE,
        job=hourly_job,
        cron_schedule=f"{MINUTE_OF_HOUR} * * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Builds the hour that ended {MINUTE_OF_HOUR} minutes ago once every raw minute of it is "
        f"materialized (and earlier hours of the last {CATCH_UP_HOURS} that were still waiting).",
    )
    def analytics_every_hour(context: ScheduleEvaluationContext):
        candidates = hours_before(tick_time(context), hours)
        if not candidates:
            return SkipReason(f"no hour partition has ended yet (the partitions start at {hours.start:%Y-%m-%d %H:%M})")
        ready, notes = hours_to_build(context.instance, HOURLY_JOB, raw_keys, candidates)
        for note in notes:
            context.log.info(note)
        if not ready:
            return SkipReason("; ".join(notes))
        return [RunRequest(run_key=f"hour-{hour}", partition_key=hour) for hour in ready]

    return analytics_every_hour


def build_latest_prices_schedule(latest_job: AssetJob) -> ScheduleDefinition:
    @schedule(
        name=LATEST_PRICES_SCHEDULE,
        job=latest_job,
        cron_schedule=f"{MINUTE_OF_HOUR + 10} * * * *",
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
