"""Declarative Automation of the hourly dbt models, evaluated by the `analytics_automation` sensor (on by default):
Dagster builds an hour from the dependencies the translator declares (an hour partition of the silver models that
read the lake needs the 60 minute partitions of that hour of every `raw_trades/<symbol>`).

`SILVER_CONDITION`, on those silver models, is `AutomationCondition.eager()` with two changes:
- first builds look back `FIRST_BUILD_HOURS` (3) hours, not only at the newest hour (an hour the gap backfill
  completes after its schedule tick is built then); older hours are left to a backfill. Rebuilds (a raw minute
  recorded after its hour was built) are not limited: any hour partition;
- the newest hour is the `analytics_every_hour` schedule's until HH:10 (the schedule builds it at HH:05 when it is
  complete), so the two do not request the same hour; from HH:10 on, or on the sensor's very first evaluation,
  automation builds it once complete (also when the schedule is stopped).
What eager brings, kept: an hour is requested when it newly appears missing or a raw minute of it was recorded since
it was last requested or built (a failed run is not retried until a minute changes again); never while a minute of
it is not recorded (nothing is requested on a fresh machine), while a gap run is recording one, or while the hour is
in a run or a backfill. Unlike eager, the sensor's first evaluation counts: a complete hour of the last 3 that was
never built (`dagster dev` was down at its HH:05) is built then, as the former schedule's catch-up did.

`MODEL_CONDITION`, on every other hourly model (gold), builds it only in the same run as the upstream models it
reads (`will_be_requested`): a gold model is never built on its own, so one whose upstream failed a blocking check
(an incomplete hour built by hand) is not built from that upstream later. Several hours requested in one tick become
one backfill, one dbt run over the range (`BackfillPolicy.single_run`); the dbt tests ride along as asset checks.
"""

from datetime import timedelta

from dagster import (
    AssetsDefinition,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
)

AUTOMATION_SENSOR = "analytics_automation"
FIRST_BUILD_HOURS = 3  # the hour that ended last and the two before it
SCHEDULE_MINUTE = 5  # analytics_every_hour builds the hour that ended at HH:05
AUTOMATION_TAKES_OVER = f"{SCHEDULE_MINUTE + 5} * * * *"  # the newest hour is automation's from HH:10 on

# The newest hour partition is the one that ended at the top of the current hour: between HH:00 and HH:10 it is the
# schedule's. The sensor's very first evaluation counts as past HH:10 (a fresh DAGSTER_HOME started at HH:23 builds
# the newest hour at once; started before HH:05, both may build it once).
# (Two `since`: an OR of their triggers would lose the cron ticks' times, which decide that HH:10 came after HH:00
# when both passed since the previous evaluation, dagster dev having been down.)
_hour_began = AutomationCondition.cron_tick_passed("0 * * * *", "UTC")
_past_hh10 = AutomationCondition.cron_tick_passed(AUTOMATION_TAKES_OVER, "UTC").since(
    _hour_began
) | AutomationCondition.initial_evaluation().since(_hour_began)
_not_the_schedules_turn = (~AutomationCondition.in_latest_time_window() | _past_hh10).with_label(
    "not the schedule's turn (the newest hour before HH:10)"
)

# eager's since_last_handled() also resets on the sensor's first evaluation, which would leave hours that are complete
# but were never built (dagster dev was down at their HH:05) to wait for a minute that never comes
_since_requested_or_built = (AutomationCondition.newly_requested() | AutomationCondition.newly_updated()).with_label(
    "requested or built"
)

SILVER_CONDITION = (
    (AutomationCondition.newly_missing() | AutomationCondition.any_deps_updated()).since(_since_requested_or_built)
    & (AutomationCondition.in_latest_time_window(timedelta(hours=FIRST_BUILD_HOURS)) | ~AutomationCondition.missing())
    & _not_the_schedules_turn
    & ~AutomationCondition.any_deps_missing()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("every raw minute of the hour recorded: build it, or rebuild it after a late minute")

MODEL_CONDITION = AutomationCondition.any_deps_match(AutomationCondition.will_be_requested()).with_label(
    "with the models it reads"
)


def build_automation_sensor(hourly_assets: AssetsDefinition) -> AutomationConditionSensorDefinition:
    return AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=AssetSelection.assets(hourly_assets),
        default_status=DefaultSensorStatus.RUNNING,
        # evaluated in the code server, where defs/partitions.py memoizes the minute-partition lookups that made a
        # tick grow with every symbol (docs/adr/0010); the daemon would evaluate without them
        use_user_code_server=True,
        description="Builds an hour of silver and gold once every raw minute of it is recorded (unless "
        "analytics_every_hour did at HH:05), and rebuilds an hour when a raw minute of it is recorded later.",
    )
