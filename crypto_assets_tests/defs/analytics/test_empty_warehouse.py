"""A new user's first hour: the analytics schedules on a fresh instance, a fresh (missing) DuckDB file and no raw
minute recorded yet skip their ticks with a reason naming what they wait for, never launching a run bound to fail;
once one hour of real lake data is complete (its 180 raw minutes recorded on the instance) the hourly schedule
builds it and latest_prices builds after it. Real SQLite instance in a temporary folder (configured as `make dev`
configures it), real dbt runs. An hour completed after its tick is automation's (test_automation.py)."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from dagster import AssetKey, AssetMaterialization, build_schedule_context

from crypto_assets.defs.analytics import build_analytics_definitions
from crypto_assets.defs.analytics.automation import AUTOMATION_SENSOR
from crypto_assets.defs.analytics.schedules import (
    HOURLY_JOB,
    HOURLY_SCHEDULE,
    LATEST_PRICES_JOB,
    LATEST_PRICES_SCHEDULE,
)
from crypto_assets.defs.analytics.warehouse import WarehouseResource
from crypto_assets.defs.partitions import hour_partitions
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets.settings import Settings
from crypto_assets_tests.analytics_data import HOUR_MS, SYMBOLS
from crypto_assets_tests.defs.analytics.dev_instance import dev_instance

pytestmark = pytest.mark.integration


def settings_for(lake, duckdb_path) -> Settings:
    return Settings.from_env(
        {"CRYPTO_LAKE_URL": str(lake), "CRYPTO_SYMBOLS": ",".join(SYMBOLS), "DBT_DUCKDB_PATH": str(duckdb_path)},
        dotenv_path=None,
    )


def record_raw_minutes(instance, hour_ms: int, symbols=SYMBOLS, skip=()) -> None:
    """What the stream / gap backfill records for each minute it writes (the lake already holds the files)."""
    for symbol in symbols:
        for minute in range(hour_ms, hour_ms + HOUR_MS, MINUTE_MS):
            if (symbol, minute) not in skip:
                instance.report_runless_asset_event(
                    AssetMaterialization(AssetKey(["raw_trades", symbol.lower()]), partition=minute_key(minute))
                )


def tick(defs, name: str, instance, when: datetime):
    """One evaluation of the schedule ``name`` as the daemon does it: (run requests, skip message)."""
    schedule = defs.resolve_schedule_def(name)
    warehouse = defs.resources["warehouse"]
    context = build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources={"warehouse": warehouse},
        repository_def=defs.get_repository_def(),
    )
    data = schedule.evaluate_tick(context)
    return list(data.run_requests or []), data.skip_message


@pytest.fixture
def fresh(local_lake, tmp_path):
    """A fresh Dagster instance and a warehouse file that does not exist yet, on a lake holding two hours."""
    with dev_instance(tmp_path / "dagster_home") as instance:
        defs = build_analytics_definitions(settings_for(local_lake, tmp_path / "warehouse" / "crypto.duckdb"))
        yield instance, defs


def test_a_fresh_machine_skips_both_schedules_with_their_reason_then_builds_once_an_hour_is_complete(fresh, hours):
    instance, defs = fresh
    h1, h2 = hours.keys
    hourly_tick = datetime.fromtimestamp((hours.h2 + HOUR_MS) / 1000, UTC) + timedelta(minutes=5)
    latest_tick = hourly_tick + timedelta(minutes=10)
    warehouse_path = defs.resources["warehouse"].duckdb_path

    # nothing recorded, no warehouse file: both ticks skip, saying what they wait for
    requests, reason = tick(defs, HOURLY_SCHEDULE, instance, hourly_tick)
    assert requests == []
    assert f"hour {h2} waits for its raw minutes" in reason and AUTOMATION_SENSOR in reason
    assert all(f"raw_trades/{s.lower()} 0 of 60" in reason for s in SYMBOLS), reason
    requests, reason = tick(defs, LATEST_PRICES_SCHEDULE, instance, latest_tick)
    assert requests == []
    assert "candles_1m" in reason and warehouse_path in reason and "does not exist yet" in reason, reason

    # launched by hand anyway, latest_prices fails before dbt starts, with the same reason
    manual = defs.resolve_job_def(LATEST_PRICES_JOB).execute_in_process(instance=instance, raise_on_error=False)
    assert not manual.success
    (failure,) = [e for e in manual.all_events if e.is_step_failure]
    assert "latest_prices cannot be built yet" in failure.step_failure_data.error.to_string()

    # one minute of H2 still missing: the hour waits (no run with a failing completeness check)
    last = hours.h2 + 59 * MINUTE_MS
    record_raw_minutes(instance, hours.h2, skip=[("SOLUSDT", last)])
    requests, reason = tick(defs, HOURLY_SCHEDULE, instance, hourly_tick)
    assert requests == [] and "raw_trades/solusdt 59 of 60" in reason and "btcusdt" not in reason, reason

    # complete: H2 is requested (once per tick: the run key is the hour) and built
    instance.report_runless_asset_event(
        AssetMaterialization(AssetKey(["raw_trades", "solusdt"]), partition=minute_key(last))
    )
    (request,), _ = tick(defs, HOURLY_SCHEDULE, instance, hourly_tick)
    assert (request.partition_key, request.run_key) == (h2, f"hour-{h2}")
    built = defs.resolve_job_def(HOURLY_JOB).execute_in_process(
        instance=instance, partition_key=request.partition_key, tags=request.tags, raise_on_error=False
    )
    assert built.success

    # the hour is in the warehouse: latest_prices runs as before
    (request,), reason = tick(defs, LATEST_PRICES_SCHEDULE, instance, latest_tick)
    assert reason is None
    latest = defs.resolve_job_def(LATEST_PRICES_JOB).execute_in_process(
        instance=instance, tags=request.tags, raise_on_error=False
    )
    assert latest.success
    (prices,) = [e.event_specific_data.materialization for e in latest.get_asset_materialization_events()]
    assert prices.asset_key == AssetKey("latest_prices") and prices.metadata["symbols"].value == len(SYMBOLS)
    failed = [r for r in instance.get_runs() if r.is_failure]
    assert [r.job_name for r in failed] == [LATEST_PRICES_JOB]  # only the manual launch above


def test_latest_prices_waits_for_a_warehouse_without_candles_or_held_by_a_dbt_run(tmp_path):
    path = tmp_path / "crypto.duckdb"
    warehouse = WarehouseResource(lake_url=str(tmp_path), symbols=list(SYMBOLS), duckdb_path=str(path))
    defs = build_analytics_definitions(settings_for(tmp_path, path))
    when = datetime.now(UTC).replace(minute=15, second=0, microsecond=0)
    with dev_instance(tmp_path / "home") as instance:
        duckdb.connect(str(path)).close()  # a file, without tables
        requests, reason = tick(defs, LATEST_PRICES_SCHEDULE, instance, when)
        assert requests == [] and "the warehouse has no such table" in reason

        with duckdb.connect(str(path)) as con:
            con.execute("create table candles_1m (symbol varchar)")
        assert warehouse.table_exists("candles_1m")
        (_request,), _ = tick(defs, LATEST_PRICES_SCHEDULE, instance, when)

        # a writer in another process (a dbt run) holds the file: the instance answers
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('held', flush=True); sys.stdin.read()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "held"
            requests, reason = tick(defs, LATEST_PRICES_SCHEDULE, instance, when)
            assert requests == [] and "a dbt run holds the warehouse and no hour was ever built" in reason
            instance.report_runless_asset_event(
                AssetMaterialization(AssetKey("candles_1m"), partition="2026-01-01-00:00")
            )
            (_request,), _ = tick(defs, LATEST_PRICES_SCHEDULE, instance, when)
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)


def test_no_hour_partition_yet(tmp_path):
    settings = settings_for(tmp_path, tmp_path / "crypto.duckdb")
    defs = build_analytics_definitions(settings)
    start = hour_partitions(settings.partition_days).start
    with dev_instance(tmp_path / "home") as instance:
        requests, reason = tick(defs, HOURLY_SCHEDULE, instance, start + timedelta(minutes=5))
    assert requests == [] and "no hour partition has ended yet" in reason
