"""raw_trades/<symbol> in users' hands: a user's code location merges the project's definitions with its own assets
downstream of ``raw_trades/btcusdt`` (a minute-partitioned one, and hourly ones that get their 60 minutes through the
default partition mapping), materialized through Dagster in a real (SQLite) instance; every input equals the
simulator's ground truth trade by trade, as a pandas DataFrame, a pyarrow Table and a streamed RecordBatchReader. A
range with a minute not recorded fails naming it; ``load_asset_value`` reads a minute and a downstream hour; the
same on moto's S3 server."""

from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from dagster import AssetIn, Definitions, asset

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG, raw_trades_key
from crypto_assets.defs.partitions import hour_partitions, minute_partitions
from crypto_assets.defs.raw import raw_resources
from crypto_assets.defs.raw.assets import build_raw_trades_asset
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.lake.schema import TRADE_SCHEMA
from crypto_assets.minutes import HOUR_MS, MINUTE_MS, minute_key
from crypto_assets.minutes import hour_key as hour_key_of
from crypto_assets_tests.ground_truth import truth

pytestmark = pytest.mark.integration

SYMBOL = "BTCUSDT"
RAW = raw_trades_key(SYMBOL)
minutes, hours = minute_partitions(1), hour_partitions(1)


@asset(partitions_def=minutes, ins={"trades": AssetIn(RAW)})
def minute_trades(trades: pd.DataFrame) -> pd.DataFrame:
    return trades


@asset(partitions_def=hours, ins={"trades": AssetIn(RAW)})
def hour_trades(trades: pa.Table) -> pa.Table:
    return trades


@asset(partitions_def=hours, ins={"trades": AssetIn(RAW)})
def hour_trade_count(trades: pa.RecordBatchReader) -> int:
    return sum(batch.num_rows for batch in trades)


@pytest.fixture(scope="module")
def sim():
    import time

    hour = int(time.time() * 1000) // HOUR_MS * HOUR_MS - 2 * HOUR_MS  # complete, and so is the hour after it
    config = SimulatorConfig(
        symbols=[symbol_config(SYMBOL, trades_per_second=2, burst_probability=0)], origin_ms=hour - 10 * MINUTE_MS
    )
    with Simulator(config) as s:
        s.hour = hour
        yield s


def user_defs(sim, lake: LakeResource) -> Definitions:
    """The user's code location: the project's raw asset and resources, and the user's own assets."""
    exchange = ExchangeResource(rest_url=sim.rest_url, ws_url="ws://127.0.0.1:1", symbols=[SYMBOL])
    raw = build_raw_trades_asset(SYMBOL, minutes)
    return Definitions(
        assets=[raw, minute_trades, hour_trades, hour_trade_count], resources=raw_resources(exchange, lake)
    )


def record(defs: Definitions, instance, first_ms: int, last_ms: int) -> None:
    """The raw minutes first_ms..last_ms, materialized (fetched over REST, proven, recorded) in one run."""
    job = defs.resolve_implicit_global_asset_job_def()
    raw_op = f"raw_trades__{SYMBOL.lower()}"
    result = job.execute_in_process(
        instance=instance,
        tags={RANGE_START_TAG: minute_key(first_ms), RANGE_END_TAG: minute_key(last_ms)},
        asset_selection=[RAW],
    )
    assert result.success and result.get_step_success_events()[0].step_key == raw_op


def truth_table(sim, start_ms: int, end_ms: int) -> list[tuple]:
    return [
        (t.trade_id, Decimal(t.price), Decimal(t.qty), t.trade_time, t.is_buyer_maker)
        for t in truth(sim, SYMBOL, start_ms, end_ms)
    ]


def rows(table: pa.Table) -> list[tuple]:
    assert [(f.name, f.type) for f in table.schema] == [(f.name, f.type) for f in TRADE_SCHEMA]
    return [
        (r["trade_id"], r["price"], r["qty"], int(r["trade_time"].timestamp() * 1000), r["is_buyer_maker"])
        for r in table.to_pylist()
    ]


@pytest.fixture(scope="module", params=["local", "s3"])
def recorded(request, sim, tmp_path_factory):
    """An hour and the first minute of the next recorded, in a lake on disk or on moto's S3 server."""
    from dagster import DagsterInstance

    if request.param == "s3":
        endpoint, bucket = request.getfixturevalue("module_s3")
        lake = LakeResource(url=f"s3://{bucket}/lake", endpoint_url=endpoint)
    else:
        lake = LakeResource(url=str(tmp_path_factory.mktemp("lake")))
    home = tmp_path_factory.mktemp("dagster_home")
    with DagsterInstance.local_temp(str(home)) as instance:
        defs = user_defs(sim, lake)
        record(defs, instance, sim.hour, sim.hour + HOUR_MS)  # the hour, and the first minute of the next
        yield defs, instance


@pytest.fixture(scope="module")
def module_s3(moto_endpoint):
    import os
    import uuid

    import boto3

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return moto_endpoint, bucket


def test_downstream_assets_get_the_trades_of_their_partitions(sim, recorded):
    defs, instance = recorded
    minute = sim.hour + 17 * MINUTE_MS
    job = defs.resolve_implicit_global_asset_job_def()

    one = job.execute_in_process(
        instance=instance, partition_key=minute_key(minute), asset_selection=[minute_trades.key]
    )
    frame = one.output_for_node("minute_trades")
    assert isinstance(frame, pd.DataFrame) and len(frame) > 0
    assert all(isinstance(v, Decimal) for v in frame["price"].head())  # Arrow-backed: exact decimals
    assert rows(pa.Table.from_pandas(frame, preserve_index=False)) == truth_table(sim, minute, minute + MINUTE_MS)

    hour_key = hour_key_of(sim.hour)
    both = job.execute_in_process(
        instance=instance, partition_key=hour_key, asset_selection=[hour_trades.key, hour_trade_count.key]
    )
    expected = truth_table(sim, sim.hour, sim.hour + HOUR_MS)
    assert rows(both.output_for_node("hour_trades")) == expected
    assert both.output_for_node("hour_trade_count") == len(expected) > 60 * 60


def test_load_asset_value_of_a_minute_and_of_a_downstream_hour(sim, recorded):
    defs, instance = recorded
    minute = sim.hour + 42 * MINUTE_MS
    table = defs.load_asset_value(RAW, partition_key=minute_key(minute), instance=instance)
    assert rows(table) == truth_table(sim, minute, minute + MINUTE_MS)

    hour_key = hour_key_of(sim.hour)
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(instance=instance, partition_key=hour_key, asset_selection=[hour_trades.key]).success
    stored = defs.load_asset_value(hour_trades.key, partition_key=hour_key, instance=instance)
    assert rows(stored) == truth_table(sim, sim.hour, sim.hour + HOUR_MS)


def test_a_range_with_a_minute_not_recorded_fails_naming_it(sim, recorded):
    defs, instance = recorded
    next_hour = hour_key_of(sim.hour + HOUR_MS)  # only its first minute is recorded
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, partition_key=next_hour, asset_selection=[hour_trades.key], raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "59 minute(s) of raw_trades/btcusdt" in message, message
    assert minute_key(sim.hour + HOUR_MS + MINUTE_MS) in message and "not recorded yet" in message
    assert minute_key(sim.hour + HOUR_MS) + "," not in message  # the recorded one is not named
