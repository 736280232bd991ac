"""Declarative Automation of the hourly dbt assets, evaluated as the `analytics_automation` sensor evaluates it
(`dagster.evaluate_automation_conditions`, one call per tick, the cursor carried over) on a real SQLite instance,
with the raw assets as they are defined (minute partitions): raw minutes are recorded the way the stream and the
gap backfill record them, and what automation requests is run for real where it matters."""

from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    evaluate_automation_conditions,
)

from crypto_assets.definitions import build_definitions
from crypto_assets.defs.analytics.automation import AUTOMATION_SENSOR, SILVER_CONDITION
from crypto_assets.defs.analytics.schedules import HOURLY_JOB
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets.settings import Settings
from crypto_assets_tests.analytics_data import HOUR_MS, SYMBOLS

HOURLY_MODELS = {
    "stg_trade_minutes",
    "stg_trades",
    "candles_1m",
    "candles_1h",
    "moving_averages_1m",
    "volatility_1m",
    "price_jumps",
    "daily_stats",
}


def settings_for(lake, duckdb_path) -> Settings:
    return Settings.from_env(
        {"CRYPTO_LAKE_URL": str(lake), "CRYPTO_SYMBOLS": ",".join(SYMBOLS), "DBT_DUCKDB_PATH": str(duckdb_path)},
        dotenv_path=None,
    )


def at(hour_ms: int, minutes: float) -> datetime:
    return datetime.fromtimestamp(hour_ms / 1000, UTC) + timedelta(minutes=minutes)


class Ticks:
    """The automation sensor's ticks against ``instance``: each returns {hour: models requested}."""

    def __init__(self, defs, instance):
        self.defs, self.instance, self.cursor = defs, instance, None

    def __call__(self, when: datetime) -> dict[str, set[str]]:
        result = evaluate_automation_conditions(self.defs, self.instance, cursor=self.cursor, evaluation_time=when)
        self.cursor = result.cursor
        requested: dict[str, set[str]] = {}
        for key in self.defs.resolve_asset_graph().materializable_asset_keys:
            for hour in result.get_requested_partitions(key):
                requested.setdefault(hour, set()).add(key.to_user_string())
        return requested


def record_minutes(instance, hour_ms: int, symbols=SYMBOLS, skip=()) -> None:
    """What the stream / gap backfill records for each minute it writes."""
    for symbol in symbols:
        for minute in range(hour_ms, hour_ms + HOUR_MS, MINUTE_MS):
            if (symbol, minute) not in skip:
                record_minute(instance, symbol, minute)


def record_minute(instance, symbol: str, minute_ms: int) -> None:
    instance.report_runless_asset_event(
        AssetMaterialization(AssetKey(["raw_trades", symbol.lower()]), partition=minute_key(minute_ms))
    )


def record_built(instance, hour_ms: int) -> None:
    """An hour built (every hourly model materialized), without running dbt."""
    for name in HOURLY_MODELS:
        instance.report_runless_asset_event(AssetMaterialization(AssetKey(name), partition=minute_key(hour_ms)))


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    """Raw and analytics together, as `dagster dev` loads them (the raw assets' minute partitions are what an hour
    of silver depends on). Evaluating automation reads the instance only, never the lake."""
    folder = tmp_path_factory.mktemp("analytics")
    return build_definitions(settings_for(folder / "lake", folder / "crypto.duckdb"))


def test_the_automation_sensor_runs_by_default_and_targets_the_hourly_models(defs):
    sensor = defs.resolve_sensor_def(AUTOMATION_SENSOR)
    assert isinstance(sensor, AutomationConditionSensorDefinition)
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in sensor.asset_selection.resolve(graph)} == HOURLY_MODELS
    conditions = {k.to_user_string(): graph.get(k).automation_condition for k in graph.materializable_asset_keys}
    conditioned = {name for name, condition in conditions.items() if condition is not None}
    assert conditioned == HOURLY_MODELS  # latest_prices follows its schedule; raw assets their sensors
    readers = {name for name in HOURLY_MODELS if conditions[name] == SILVER_CONDITION}
    assert readers == {"stg_trades", "stg_trade_minutes"}  # the others: MODEL_CONDITION, with their upstream
    assert not [k for k in graph.asset_check_keys if graph.get(k).automation_condition]  # dbt tests ride along
    hourly = next(a for a in defs.assets if isinstance(a, AssetsDefinition) and a.op.name == "dbt_hourly")
    assert hourly.backfill_policy.max_partitions_per_run is None  # hours requested together: one dbt run


@pytest.mark.integration
def test_an_hour_is_built_once_every_minute_of_every_symbol_is_recorded_and_again_when_a_minute_lands_late(
    local_lake, instance, hours, tmp_path
):
    """Nothing on a fresh machine; nothing while one minute of one symbol is missing; the newest hour waits for
    the HH:05 schedule until HH:10; then all its models are requested at once, and the run succeeds (real dbt on
    the lake). A minute recorded again after the build requests the hour again; the first evaluation of a sensor
    started on this history rebuilds nothing."""
    defs = build_definitions(settings_for(local_lake, tmp_path / "crypto.duckdb"))
    h2 = hours.keys[1]
    tick = Ticks(defs, instance)
    assert tick(at(hours.h2, 59)) == {}  # the sensor's first evaluation, before H2 is over
    assert tick(at(hours.h2, 61)) == {}  # fresh instance: no raw minute at all
    last = hours.h2 + 59 * MINUTE_MS
    record_minutes(instance, hours.h2, skip=[("SOLUSDT", last)])
    assert tick(at(hours.h2, 62)) == {}  # 179 of 180 minutes
    record_minute(instance, "SOLUSDT", last)
    assert tick(at(hours.h2, 63)) == {}  # complete, but the newest hour is the schedule's until HH:10
    assert tick(at(hours.h2, 70.5)) == {h2: HOURLY_MODELS}
    assert tick(at(hours.h2, 71)) == {}  # requested once

    built = defs.resolve_job_def(HOURLY_JOB).execute_in_process(
        instance=instance, partition_key=h2, raise_on_error=False
    )
    assert built.success and all(e.passed for e in built.get_asset_check_evaluations())
    assert tick(at(hours.h2, 72)) == {}

    record_minute(instance, "ETHUSDT", hours.h2 + 17 * MINUTE_MS)  # recorded again (a repair, a re-run)
    assert tick(at(hours.h2, 73)) == {h2: HOURLY_MODELS}
    assert tick(at(hours.h2, 74)) == {}

    assert Ticks(defs, instance)(at(hours.h2, 75)) == {}  # a sensor started now does not rebuild history


def test_older_hours_build_as_soon_as_complete_and_any_built_hour_is_rebuilt_after_a_late_minute(defs, instance):
    """An hour that was still incomplete at its schedule tick (the gap backfill reached it later) is built as soon
    as its last minute is recorded, within the last 3 hours; an older one is left to a backfill, but once built a
    late minute in it requests it again, whatever its age."""
    now = datetime.now(UTC)
    newest = int(now.replace(minute=0, second=0, microsecond=0).timestamp() * 1000) - HOUR_MS
    older, oldest = newest - HOUR_MS, newest - 5 * HOUR_MS
    tick = Ticks(defs, instance)
    assert tick(at(newest, 61)) == {}
    record_minutes(instance, older, skip=[("BTCUSDT", older + m * MINUTE_MS) for m in range(30)])
    assert tick(at(newest, 62)) == {}
    record_minutes(instance, older, symbols=["BTCUSDT"])  # the gap backfill fills the first half hour
    assert tick(at(newest, 63)) == {minute_key(older): HOURLY_MODELS}  # not the newest hour: at once

    record_minutes(instance, oldest)
    assert tick(at(newest, 64)) == {}  # never built, 5 hours back: a backfill's
    record_built(instance, oldest)
    assert tick(at(newest, 65)) == {}
    record_minute(instance, "SOLUSDT", oldest + 42 * MINUTE_MS)
    assert tick(at(newest, 66)) == {minute_key(oldest): HOURLY_MODELS}


def test_a_sensor_started_late_builds_the_complete_hours_it_missed_within_three_hours(defs, instance):
    """A fresh `dagster dev` started at HH:23: on its first evaluation automation builds the complete hours of the
    last 3 that were never built (the newest too: its HH:05 tick is over), not older ones."""
    now = datetime.now(UTC)
    newest = int(now.replace(minute=0, second=0, microsecond=0).timestamp() * 1000) - HOUR_MS
    hours = (newest, newest - HOUR_MS, newest - 2 * HOUR_MS, newest - 4 * HOUR_MS)
    for hour in hours:
        record_minutes(instance, hour)
    assert Ticks(defs, instance)(at(newest, 83)) == {minute_key(hour): HOURLY_MODELS for hour in hours[:3]}


def test_the_newest_hour_is_the_schedules_until_hh10_then_automations(defs, instance):
    """Complete at HH:01, the newest hour is left to analytics_every_hour (HH:05); from HH:10 automation builds it
    (the schedule was stopped, or its run failed)."""
    now = datetime.now(UTC)
    newest = int(now.replace(minute=0, second=0, microsecond=0).timestamp() * 1000) - HOUR_MS
    tick = Ticks(defs, instance)
    assert tick(at(newest, 50)) == {}
    record_minutes(instance, newest)
    assert tick(at(newest, 60.5)) == {}
    assert tick(at(newest, 69.9)) == {}
    assert tick(at(newest, 70.1)) == {minute_key(newest): HOURLY_MODELS}


def test_after_dagster_dev_was_down_over_hh10_the_newest_hour_is_built_at_the_first_tick(defs, instance):
    now = datetime.now(UTC)
    newest = int(now.replace(minute=0, second=0, microsecond=0).timestamp() * 1000) - HOUR_MS
    tick = Ticks(defs, instance)
    assert tick(at(newest, 50)) == {}  # the last tick before dagster dev stopped
    record_minutes(instance, newest)  # recorded meanwhile (say, by a run that outlived dagster dev)
    assert tick(at(newest, 80)) == {minute_key(newest): HOURLY_MODELS}  # HH:00 and HH:10 passed while it was down
