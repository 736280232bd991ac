"""`analytics_next_hour_rebuild`: what Declarative Automation cannot express. An hour's models read into the hour
before it (the rolling 20- and 60-minute indicators, price jumps, the close a quiet minute carries), but Dagster's
graph says only that an hour needs its own 60 raw minutes: declaring the previous hour too would make every hour
wait for a complete predecessor, so the first hour captured and every hour after a minute that can never be
recovered would never be built. So when a successful run has built an hour whose next hour was built before it, from
the old data, this sensor requests the next hour again (once: the rebuilt next hour does not request the one after).

The former gap rebuild sensor built both hours in one range run; automation now rebuilds the hour itself, and this
sensor follows with the next one once that run has succeeded. It reads the materializations of the hourly build's
first model (`stg_trade_minutes`) after its cursor (their storage id), a run's all together once the run is over."""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

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

NEXT_HOUR_SENSOR = "analytics_next_hour_rebuild"
FOLLOWS_TAG = "crypto_assets/follows"  # on a rebuild this sensor requested: the hour it follows
BUILT_MARKER = AssetKey("stg_trade_minutes")  # the first model of every hourly build
RECORDS_PER_TICK = 1000


def build_next_hour_sensor(hourly_job, hours: TimeWindowPartitionsDefinition) -> SensorDefinition:
    @sensor(
        name=NEXT_HOUR_SENSOR,
        job=hourly_job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="When a run has built an hour whose next hour was built before it, rebuilds the next hour (its "
        "rolling indicators and carried closes read the hour before).",
    )
    def analytics_next_hour_rebuild(context: SensorEvaluationContext):
        instance = context.instance
        if context.cursor is None:  # first tick: from now on, history is not rebuilt
            newest = instance.fetch_materializations(BUILT_MARKER, limit=1, ascending=False).records
            context.update_cursor(str(newest[0].storage_id if newest else 0))
            return SkipReason("started: follows the builds from now on")
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=BUILT_MARKER, after_storage_id=int(context.cursor)),
            limit=RECORDS_PER_TICK,
            ascending=True,
        ).records
        by_run: dict[str, dict[str, int]] = {}  # run id -> {hour: storage id}, in storage order
        for record in records:
            by_run.setdefault(record.run_id, {})[record.partition_key] = record.storage_id
        requests, cursor = [], int(context.cursor)
        for run_id, built in by_run.items():
            run = instance.get_run_by_id(run_id) if run_id else None
            if run is not None and not run.is_finished:
                break  # its other hours may not be recorded yet: look again next tick
            cursor = max(built.values())
            if run is None or not run.is_success or FOLLOWS_TAG in run.tags:
                continue  # not a successful build, or itself a rebuild this sensor requested
            last = max(built)
            following = hours.get_next_partition_key(last)
            if following is None:
                continue  # the next hour is not over yet
            previous = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=BUILT_MARKER, asset_partitions=[following]), limit=1
            ).records
            if previous and previous[0].storage_id < built[last]:
                context.log.info(f"hour {following} was built before run {run_id} built {last}: rebuilding it")
                tags = {FOLLOWS_TAG: last}
                requests.append(RunRequest(run_key=f"follow-{following}-{run_id}", partition_key=following, tags=tags))
        context.update_cursor(str(cursor))
        return requests or SkipReason("no hour was built after the hour that follows it")

    return analytics_next_hour_rebuild
