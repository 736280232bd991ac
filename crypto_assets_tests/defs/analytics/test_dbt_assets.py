"""The dagster-dbt assets run for real: `dbt build` of hour partitions on a DagsterInstance in a temporary
DAGSTER_HOME, on the simulator lake; partition status, check results and metadata come from the instance."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from dagster import AssetIn, AssetKey, DagsterInstance, Definitions, asset

from crypto_assets.defs.analytics import build_analytics_definitions
from crypto_assets.defs.analytics.schedules import HOURLY_JOB, LATEST_PRICES_JOB
from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG
from crypto_assets.defs.partitions import hour_partitions
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets.settings import Settings
from crypto_assets_tests.analytics_data import SYMBOLS, copy_lake
from crypto_assets_tests.defs.analytics.dev_instance import dev_home, dev_instance
from crypto_assets_tests.ground_truth import truth

pytestmark = pytest.mark.integration

GOLD = ["candles_1m", "candles_1h", "moving_averages_1m", "volatility_1m", "price_jumps", "daily_stats"]
SILVER = ["stg_trade_minutes", "stg_trades"]


def settings_for(lake, duckdb_path) -> Settings:
    return Settings.from_env(
        {"CRYPTO_LAKE_URL": str(lake), "CRYPTO_SYMBOLS": ",".join(SYMBOLS), "DBT_DUCKDB_PATH": str(duckdb_path)},
        dotenv_path=None,
    )


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """The instance `dagster dev` opens in a DAGSTER_HOME set up by `make dev` (its dagster.yaml: the duckdb pool)."""
    home = dev_home(tmp_path_factory.mktemp("dagster_home"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        instance = DagsterInstance.get()
        yield instance
        instance.dispose()


@pytest.fixture(scope="module")
def backfilled(instance, hours, local_lake, tmp_path_factory):
    """Both hours in one run (a range backfill: BackfillPolicy.single_run), then latest prices."""
    defs = build_analytics_definitions(settings_for(local_lake, tmp_path_factory.mktemp("wh") / "crypto.duckdb"))
    h1, h2 = hours.keys
    hourly = defs.resolve_job_def(HOURLY_JOB).execute_in_process(
        instance=instance, raise_on_error=False, tags={RANGE_START_TAG: h1, RANGE_END_TAG: h2}
    )
    latest = defs.resolve_job_def(LATEST_PRICES_JOB).execute_in_process(instance=instance, raise_on_error=False)
    return defs, hourly, latest


def test_a_range_backfill_builds_every_hour_in_one_run(backfilled, instance, hours):
    _, hourly, _ = backfilled
    assert hourly.success
    for name in SILVER + GOLD:
        assert instance.get_materialized_partitions(AssetKey(name)) == set(hours.keys), name


def test_every_dbt_test_is_a_passing_asset_check(backfilled):
    _, hourly, latest = backfilled
    evaluations = hourly.get_asset_check_evaluations()
    names = {(e.asset_key.to_user_string(), e.check_name) for e in evaluations}
    assert ("candles_1m", "complete_minutes_candles_1m_minute_start__60") in names
    assert any(check.startswith("ohlc_consistent") for _, check in names)
    assert any(check.startswith("non_negative") for _, check in names)
    assert any(check.startswith("unique_combination_stg_trades") for _, check in names)
    assert len(evaluations) >= 35 and all(e.passed for e in evaluations), [
        (e.asset_key, e.check_name) for e in evaluations if not e.passed
    ]
    latest_checks = latest.get_asset_check_evaluations()
    assert latest_checks and all(e.passed for e in latest_checks)


def test_gold_metadata_has_candle_charts_and_a_price_table(backfilled, hours):
    _, hourly, latest = backfilled
    materializations = [e.event_specific_data.materialization for e in hourly.get_asset_materialization_events()]
    by_key = {m.asset_key.to_user_string(): m for m in materializations}
    chart = by_key["candles_1h"].metadata["candle_chart"].value
    assert chart.startswith("![") and "data:image/png;base64,iVBORw0KGgo" in chart  # a PNG, inline
    assert by_key["candles_1m"].metadata["minutes_in_last_hour"].value == {s: 60 for s in SYMBOLS}
    (prices,) = [e.event_specific_data.materialization for e in latest.get_asset_materialization_events()]
    table = prices.metadata["latest_prices"].value
    assert table.startswith("| symbol | price |") and all(f"| {s} |" in table for s in SYMBOLS)


def test_an_hour_with_a_missing_minute_fails_then_automation_rebuilds_it_once_the_minute_lands(
    hours, local_lake, tmp_path
):
    """One SOLUSDT minute missing from H2, built by hand anyway: the 60-candles check fails (blocking), so no gold
    downstream of candles_1m is materialized for that hour and the run fails. Automation leaves the hour alone while
    the minute is missing; when it lands (a gap backfill writes it and records its raw partition), the hour is
    requested again, and the rebuild passes every check."""
    from dagster import AssetMaterialization, evaluate_automation_conditions

    from crypto_assets.definitions import build_definitions
    from crypto_assets_tests.analytics_data import minute_trades

    h2 = hours.keys[1]
    gap = hours.h2 + 17 * MINUTE_MS
    lake = copy_lake(local_lake, tmp_path / "lake", skip=[("SOLUSDT", gap)])
    defs = build_definitions(settings_for(lake.root, tmp_path / "crypto.duckdb"))  # the raw assets too
    job = defs.resolve_job_def(HOURLY_JOB)
    later = datetime.fromtimestamp(hours.h2 / 1000, UTC) + timedelta(hours=2, minutes=1)  # H2 is not the newest
    with dev_instance(tmp_path / "home") as scratch:
        for symbol in SYMBOLS:  # what the stream recorded: every minute but the gap
            for minute in range(hours.h2, hours.h2 + 60 * MINUTE_MS, MINUTE_MS):
                if (symbol, minute) != ("SOLUSDT", gap):
                    scratch.report_runless_asset_event(
                        AssetMaterialization(AssetKey(["raw_trades", symbol.lower()]), partition=minute_key(minute))
                    )
        result = job.execute_in_process(instance=scratch, partition_key=h2, raise_on_error=False)
        assert not result.success
        failed = [
            (e.asset_key.to_user_string(), e.check_name) for e in result.get_asset_check_evaluations() if not e.passed
        ]
        assert failed == [("candles_1m", "complete_minutes_candles_1m_minute_start__60")]
        assert scratch.get_materialized_partitions(AssetKey("candles_1m")) == {h2}  # built, but flagged
        for name in ["candles_1h", "moving_averages_1m", "volatility_1m", "price_jumps", "daily_stats"]:
            assert scratch.get_materialized_partitions(AssetKey(name)) == set(), name

        tick = evaluate_automation_conditions(defs, scratch, evaluation_time=later)
        assert tick.total_requested == 0  # the minute is still missing
        lake.write_minute("SOLUSDT", gap, minute_trades(hours.sim, "SOLUSDT", gap))  # the gap backfill
        scratch.report_runless_asset_event(
            AssetMaterialization(AssetKey(["raw_trades", "solusdt"]), partition=minute_key(gap))
        )
        tick = evaluate_automation_conditions(defs, scratch, cursor=tick.cursor, evaluation_time=later)
        requested = {k for k in SILVER + GOLD if tick.get_requested_partitions(AssetKey(k))}
        assert requested == set(SILVER + GOLD)
        assert all(tick.get_requested_partitions(AssetKey(k)) == {h2} for k in SILVER + GOLD)
        rebuilt = job.execute_in_process(instance=scratch, partition_key=h2, raise_on_error=False)
        assert rebuilt.success and all(e.passed for e in rebuilt.get_asset_check_evaluations())
        assert scratch.get_materialized_partitions(AssetKey("candles_1h")) == {h2}


def test_a_missing_lake_is_named(tmp_path):
    missing = tmp_path / "no_lake_here"
    defs = build_analytics_definitions(settings_for(missing, tmp_path / "crypto.duckdb"))
    with DagsterInstance.ephemeral() as scratch:
        result = defs.resolve_job_def(HOURLY_JOB).execute_in_process(
            instance=scratch,
            partition_key=defs.resolve_job_def(HOURLY_JOB).partitions_def.get_last_partition_key(),
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert str(missing / "raw_trades") in failure.step_failure_data.error.to_string()


def test_rebuilding_an_hour_rebuilds_the_next_one_that_was_built_before_it(backfilled, instance, hours):
    """H1 and H2 were built together; H1 built again on its own (a late minute) leaves H2's rolling indicators
    computed from the old H1: `analytics_next_hour_rebuild` requests H2 once that run has succeeded. The rebuild of
    H2 it requested is not followed further, nor is a build of the newest hour (the next one is not over), nor
    anything built before the sensor's first tick."""
    from dagster import build_sensor_context

    from crypto_assets.defs.analytics.sensors import FOLLOWS_TAG, NEXT_HOUR_SENSOR

    defs, _, _ = backfilled
    sensor = defs.resolve_sensor_def(NEXT_HOUR_SENSOR)
    job = defs.resolve_job_def(HOURLY_JOB)
    h1, h2 = hours.keys
    cursor = None

    def tick():
        nonlocal cursor
        context = build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        result = sensor(context)
        cursor = context.cursor
        return result if isinstance(result, list) else []

    assert tick() == []  # starts from now: the range run before it is history
    job.execute_in_process(instance=instance, partition_key=h1)
    (request,) = tick()
    assert (request.partition_key, request.tags[FOLLOWS_TAG]) == (h2, h1)
    assert tick() == []  # once

    job.execute_in_process(instance=instance, partition_key=h2, tags=request.tags)
    assert tick() == []  # the rebuild it requested is not followed
    job.execute_in_process(instance=instance, partition_key=h2)
    assert tick() == []  # the hour after H2 is not over


def test_wiring_pool_backfill_policy_lineage_and_freshness(backfilled):
    from dagster import AssetSpec, BackfillPolicy

    from crypto_assets.defs.partitions import minute_partitions

    defs, _, _ = backfilled
    hourly = defs.resolve_assets_def(AssetKey("candles_1m"))
    assert hourly.op.pool == "duckdb"
    assert hourly.backfill_policy == BackfillPolicy.single_run()
    assert defs.resolve_assets_def(AssetKey("latest_prices")).op.pool == "duckdb"
    # with the raw assets as they are defined (minute partitions), an hour of silver needs its 60 minutes of each
    raw = [AssetSpec(AssetKey(["raw_trades", s.lower()]), partitions_def=minute_partitions(30)) for s in SYMBOLS]
    graph = Definitions.merge(defs, Definitions(assets=raw)).resolve_asset_graph()
    stg = graph.get(AssetKey("stg_trades"))
    assert {k.to_user_string() for k in stg.parent_keys} >= {f"raw_trades/{s.lower()}" for s in SYMBOLS}
    hour = stg.partitions_def.get_last_partition_key()
    upstream = graph.get_parent_partition_keys_for_child(
        hour, AssetKey(["raw_trades", "btcusdt"]), AssetKey("stg_trades")
    )
    minutes = sorted(upstream.partitions_subset.get_partition_keys())
    assert len(minutes) == 60 and minutes[0] == hour and minutes[-1] == hour[:-2] + "59"
    assert graph.get(AssetKey("candles_1h")).freshness_policy is not None
    assert graph.get(AssetKey("stg_trades")).group_name == "silver"
    assert graph.get(AssetKey("candles_1h")).group_name == "gold"


def test_a_users_asset_and_load_asset_value_get_the_gold_hour_exactly(backfilled, instance, hours):
    """A user's code location adds an hourly asset downstream of candles_1h: materialized through Dagster, its input
    is that hour's candles (one per symbol) from the warehouse, decimals exact, equal to the simulator's trades; and
    load_asset_value of candles_1h for an hour gives that hour's rows."""
    defs, _, _ = backfilled
    candles_1h = AssetKey("candles_1h")

    @asset(partitions_def=hour_partitions(30), ins={"candles": AssetIn(candles_1h)})
    def hourly_volume(candles: pd.DataFrame) -> dict:
        return {row.symbol: (row.trade_count, row.volume) for row in candles.itertuples()}

    user = Definitions.merge(defs, Definitions(assets=[hourly_volume]))
    h1, h2 = hours.keys
    result = user.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, partition_key=h2, asset_selection=[hourly_volume.key]
    )
    got = result.output_for_node("hourly_volume")
    for symbol in SYMBOLS:
        trades = truth(hours.sim, symbol, hours.h2, hours.h2 + 60 * MINUTE_MS)
        assert got[symbol] == (len(trades), sum(Decimal(t.qty) for t in trades)), symbol

    table = user.load_asset_value(candles_1h, partition_key=h1, instance=instance, python_type=pa.Table)
    assert table.num_rows == len(SYMBOLS) and pa.types.is_decimal(table.schema.field("volume").type)
    assert {t.as_py().replace(tzinfo=None) for t in table.column("hour_start")} == {
        datetime.fromtimestamp(hours.h1 / 1000, UTC).replace(tzinfo=None)
    }
