"""Jobs and schedules: each hour is built once it is complete (5 minutes after it ends, so the streamer's last
minutes have landed), and latest prices follow."""

from typing import Any

from dagster import (
    AssetsDefinition,
    DefaultScheduleStatus,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

HOURLY_JOB = "analytics_hourly_job"
LATEST_PRICES_JOB = "analytics_latest_prices_job"
MINUTE_OF_HOUR = 5
AssetJob = Any  # dagster's UnresolvedAssetJobDefinition (not exported at the top level)


def build_hourly_job(hourly_assets: AssetsDefinition) -> AssetJob:
    return define_asset_job(HOURLY_JOB, selection=[hourly_assets],
                            description="dbt build of silver and gold for one hour partition (or a range)")


def build_latest_prices_job(latest_assets: AssetsDefinition) -> AssetJob:
    return define_asset_job(LATEST_PRICES_JOB, selection=[latest_assets],
                            description="dbt build of the unpartitioned models (latest prices)")


def build_schedules(hourly_job: AssetJob,
                    latest_job: AssetJob) -> list[ScheduleDefinition]:
    hourly = build_schedule_from_partitioned_job(
        hourly_job, name="analytics_every_hour", minute_of_hour=MINUTE_OF_HOUR,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Builds the hour that ended 5 minutes ago.",
    )
    latest = ScheduleDefinition(
        name="analytics_latest_prices_every_hour", job=latest_job, cron_schedule=f"{MINUTE_OF_HOUR + 10} * * * *",
        execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING,
        description="Rebuilds latest_prices after the hourly build.",
    )
    return [hourly, latest]
