"""raw_trades/<symbol> materialized for real: Dagster runs against the simulator on 127.0.0.1, a lake on disk or on
moto's S3 server, a real (SQLite) Dagster instance; the files are compared with the simulator's ground truth."""

import os
from decimal import Context, Decimal

import boto3
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster import (
    AssetSelection,
    BackfillPolicy,
    DagsterEventType,
    DagsterInvalidConfigError,
    DagsterInvariantViolationError,
    DagsterUnknownPartitionError,
    EventRecordsFilter,
    MaterializeResult,
    asset,
    materialize,
)

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG, raw_trades_key
from crypto_assets.defs.partitions import minute_partitions
from crypto_assets.defs.raw import raw_resources
from crypto_assets.defs.raw.assets import build_raw_trades_asset
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.ingest.minute_checks import MINUTE_CHECK
from crypto_assets.lake import lake_from_url
from crypto_assets.lake.schema import trades_to_table
from crypto_assets.minutes import MINUTE_MS, minute_key, utc_text
from crypto_assets_tests.conftest import SILENT_SYMBOL
from crypto_assets_tests.ground_truth import past_minute, truth
from crypto_assets_tests.ports import free_port

pytestmark = pytest.mark.integration


def resources(rest_url: str, lake_url: str, endpoint_url: str | None = None) -> dict:
    return raw_resources(
        ExchangeResource(rest_url=rest_url, ws_url="ws://127.0.0.1:1", symbols=["BTCUSDT"]),
        LakeResource(url=lake_url, endpoint_url=endpoint_url),
    )


def run(symbol, first_ms, last_ms, res, instance, refetch=False, raise_on_error=True):
    """Materialize the minutes first_ms..last_ms (inclusive) of raw_trades/<symbol> in one run."""
    asset = build_raw_trades_asset(symbol, minute_partitions(1))
    kwargs = (
        {"partition_key": minute_key(first_ms)}
        if first_ms == last_ms
        else {"tags": {RANGE_START_TAG: minute_key(first_ms), RANGE_END_TAG: minute_key(last_ms)}}
    )
    config = {"ops": {asset.op.name: {"config": {"refetch": refetch}}}}
    return materialize(
        [asset], resources=res, instance=instance, run_config=config, raise_on_error=raise_on_error, **kwargs
    )


def assert_lake_equals_truth(sim, lake_url, symbol, first_ms, last_ms, endpoint_url=None):
    lake = lake_from_url(lake_url, endpoint_url)
    for minute in range(first_ms, last_ms + MINUTE_MS, MINUTE_MS):
        stored = lake.read_minute(symbol, minute)
        assert stored is not None, minute_key(minute)
        assert stored.equals(trades_to_table(truth(sim, symbol, minute, minute + MINUTE_MS))), minute_key(minute)


def materializations(instance, symbol):
    return {
        r.partition_key: r.asset_materialization.metadata
        for r in instance.fetch_materializations(raw_trades_key(symbol), limit=1000, ascending=True).records
    }


def failure_reason(result) -> tuple[str, str]:
    """The reason and detail the run's step failure names in its metadata (what the gap sensor reads)."""
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data
    metadata = failure.user_failure_data.metadata
    return metadata["reason"].value, metadata["detail"].value


def check_status(instance, symbol, check_name, partition):
    """'SUCCEEDED' / 'FAILED' for the latest evaluation of a check on one partition, None if never evaluated."""
    evaluation = check_evaluation(instance, symbol, check_name, partition)
    return None if evaluation is None else "SUCCEEDED" if evaluation.passed else "FAILED"


def test_one_minute_partition_equals_the_exchanges_trades(simulator, tmp_path, instance):
    minute = past_minute(simulator, 2)
    lake_url = str(tmp_path / "lake")
    result = run("BTCUSDT", minute, minute, resources(simulator.rest_url, lake_url), instance)
    assert result.success
    assert_lake_equals_truth(simulator, lake_url, "BTCUSDT", minute, minute)
    assert instance.get_materialized_partitions(raw_trades_key("BTCUSDT")) == {minute_key(minute)}
    metadata = materializations(instance, "BTCUSDT")[minute_key(minute)]
    expected = truth(simulator, "BTCUSDT", minute, minute + MINUTE_MS)
    assert metadata["dagster/row_count"].value == len(expected) > 0
    assert metadata["first_trade_id"].value == expected[0].trade_id
    assert metadata["last_trade_id"].value == expected[-1].trade_id
    assert metadata["source"].value == "rest" and metadata["action"].value == "written"
    assert metadata["lake_path"].value.endswith(
        f"symbol=BTCUSDT/date={minute_key(minute)[:10]}/{minute_key(minute)[11:].replace(':', '-')}.parquet"
    )
    assert metadata["written_after_minute_end_s"].value > 0
    assert Decimal(metadata["base_volume"].value) == sum(Decimal(t.qty) for t in expected)
    assert Decimal(metadata["quote_volume"].value) == sum(Decimal(t.qty) * Decimal(t.price) for t in expected)
    evaluation = check_evaluation(instance, "BTCUSDT", MINUTE_CHECK, minute_key(minute))
    assert evaluation.passed and evaluation.description.startswith("every rule holds")
    assert {k: v.value for k, v in evaluation.metadata.items()} == dict.fromkeys(
        ("trade_ids_dense", "agrees_with_kline", "values_sane"), True
    )


def test_a_range_runs_once_and_records_every_minute(simulator, tmp_path, instance):
    first, last = past_minute(simulator, 4), past_minute(simulator, 1)
    lake_url = str(tmp_path / "lake")
    result = run("ETHUSDT", first, last, resources(simulator.rest_url, lake_url), instance)
    assert result.success
    assert_lake_equals_truth(simulator, lake_url, "ETHUSDT", first, last)
    keys = {minute_key(m) for m in range(first, last + MINUTE_MS, MINUTE_MS)}
    assert instance.get_materialized_partitions(raw_trades_key("ETHUSDT")) == keys
    assert len(instance.get_runs()) == 1
    for key in keys:
        assert check_status(instance, "ETHUSDT", MINUTE_CHECK, key) == "SUCCEEDED"


def test_quiet_minutes_are_complete_partitions_with_zero_rows(simulator, tmp_path, instance):
    first, last = past_minute(simulator, 3), past_minute(simulator, 1)
    lake_url = str(tmp_path / "lake")
    assert run(SILENT_SYMBOL, first, last, resources(simulator.rest_url, lake_url), instance).success
    lake = lake_from_url(lake_url)
    for minute in range(first, last + MINUTE_MS, MINUTE_MS):
        assert lake.read_minute(SILENT_SYMBOL, minute).num_rows == 0
    recorded = materializations(instance, SILENT_SYMBOL)
    assert len(recorded) == 3 and all(m["dagster/row_count"].value == 0 for m in recorded.values())


def test_s3_lake_on_a_real_s3_server(simulator, moto_endpoint, s3_bucket, instance):
    first, last = past_minute(simulator, 3), past_minute(simulator, 2)
    lake_url = f"s3://{s3_bucket}/prod"
    assert run("BTCUSDT", first, last, resources(simulator.rest_url, lake_url, moto_endpoint), instance).success
    assert_lake_equals_truth(simulator, lake_url, "BTCUSDT", first, last, moto_endpoint)
    keys = [
        o["Key"] for o in boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket=s3_bucket)["Contents"]
    ]
    assert sorted(keys) == sorted(
        f"prod/raw_trades/symbol=BTCUSDT/date={minute_key(m)[:10]}/{minute_key(m)[11:].replace(':', '-')}.parquet"
        for m in (first, last)
    )
    assert set(materializations(instance, "BTCUSDT")) == {minute_key(first), minute_key(last)}


def test_a_stored_minute_that_verifies_is_not_fetched_again_unless_asked(simulator, tmp_path, instance):
    minute = past_minute(simulator, 3)
    lake_url = str(tmp_path / "lake")
    res = resources(simulator.rest_url, lake_url)
    assert run("BTCUSDT", minute, minute, res, instance).success
    path = lake_from_url(lake_url).path_of("BTCUSDT", minute)
    written = os.stat(path).st_mtime_ns
    assert run("BTCUSDT", minute, minute, res, instance).success
    assert os.stat(path).st_mtime_ns == written
    assert materializations(instance, "BTCUSDT")[minute_key(minute)]["action"].value == "already stored"
    assert run("BTCUSDT", minute, minute, res, instance, refetch=True).success
    assert os.stat(path).st_mtime_ns > written
    assert materializations(instance, "BTCUSDT")[minute_key(minute)]["action"].value == "written"
    assert_lake_equals_truth(simulator, lake_url, "BTCUSDT", minute, minute)


def test_a_partial_file_in_the_lake_is_healed(simulator, tmp_path, instance):
    minute = past_minute(simulator, 2)
    lake_url = str(tmp_path / "lake")
    trades = truth(simulator, "BTCUSDT", minute, minute + MINUTE_MS)
    lake_from_url(lake_url).write_minute("BTCUSDT", minute, trades[: len(trades) // 2])  # e.g. an interrupted tool
    assert run("BTCUSDT", minute, minute, resources(simulator.rest_url, lake_url), instance).success
    assert_lake_equals_truth(simulator, lake_url, "BTCUSDT", minute, minute)


def test_bursts_and_503s_still_give_the_exact_trades(tmp_path, instance):
    config = SimulatorConfig(symbols=[symbol_config("BTCUSDT", burst_probability=0.2)], history_minutes=5)
    with Simulator(config) as sim:
        first, last = past_minute(sim, 4), past_minute(sim, 1)
        sim.fail_rest(count=3, status=503)
        lake_url = str(tmp_path / "lake")
        assert run("BTCUSDT", first, last, resources(sim.rest_url, lake_url), instance).success
        assert_lake_equals_truth(sim, lake_url, "BTCUSDT", first, last)
        assert sim.state()["faults"]["rest_errors_left"] == 0  # the 503s were served, and retried

        # An exchange that keeps answering 503: the run fails saying so, and writes nothing.
        other_lake = tmp_path / "other_lake"
        sim.fail_rest(duration_s=60, status=503)
        result = run("BTCUSDT", first, last, resources(sim.rest_url, str(other_lake)), instance, raise_on_error=False)
        assert not result.success
        message = next(
            e for e in result.all_events if e.event_type_value == "STEP_FAILURE"
        ).step_failure_data.error.message
        assert "503" in message and sim.rest_url in message
        assert not other_lake.exists()


def test_a_minute_the_kline_contradicts_is_neither_written_nor_recorded(simulator, tmp_path, instance):
    first, last = past_minute(simulator, 3), past_minute(simulator, 2)
    lying = past_minute(simulator, 2)

    class LyingExchange(ExchangeResource):  # the exchange's kline for one minute counts one trade more
        def rest_client(self, timeout: float = 10):
            client = super().rest_client(timeout)
            real_klines = client.klines

            def klines(*args, **kwargs):
                return [
                    k.__class__(
                        **{
                            **{f: getattr(k, f) for f in k.__struct_fields__},
                            "trade_count": k.trade_count + (k.open_time == lying),
                        }
                    )
                    for k in real_klines(*args, **kwargs)
                ]

            client.klines = klines
            return client

    lake_url = str(tmp_path / "lake")
    res = resources(simulator.rest_url, lake_url)
    res["exchange"] = LyingExchange(rest_url=simulator.rest_url, ws_url="ws://127.0.0.1:1", symbols=["BTCUSDT"])
    result = run("BTCUSDT", first, last, res, instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"minute {minute_key(lying)}: kline trade count" in failure.step_failure_data.error.message
    reason, detail = failure_reason(result)
    assert reason == "minutes_not_recorded" and f"minute {minute_key(lying)}: kline trade count" in detail
    assert instance.get_materialized_partitions(raw_trades_key("BTCUSDT")) == {minute_key(first)}
    assert lake_from_url(lake_url).read_minute("BTCUSDT", lying) is None
    assert_lake_equals_truth(simulator, lake_url, "BTCUSDT", first, first)


def test_unknown_symbol_is_named_and_nothing_is_written(simulator, tmp_path, instance):
    minute = past_minute(simulator, 2)
    result = run(
        "NOSUCHUSDT",
        minute,
        minute,
        resources(simulator.rest_url, str(tmp_path / "lake")),
        instance,
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "NOSUCHUSDT" in failure.step_failure_data.error.message
    assert not (tmp_path / "lake").exists()


def test_unreachable_exchange_is_named_and_nothing_is_written(simulator, tmp_path, instance):
    minute = past_minute(simulator, 2)
    url = f"http://127.0.0.1:{free_port()}"
    result = run("BTCUSDT", minute, minute, resources(url, str(tmp_path / "lake")), instance, raise_on_error=False)
    assert not result.success
    message = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error.message
    assert "unreachable" in message and url in message
    reason, detail = failure_reason(result)
    assert reason == "exchange_unreachable" and url in detail
    assert not (tmp_path / "lake").exists()


def test_a_malformed_partition_key_is_refused(simulator, tmp_path, instance):
    asset = build_raw_trades_asset("BTCUSDT", minute_partitions(1))
    with pytest.raises(
        (DagsterUnknownPartitionError, DagsterInvariantViolationError, DagsterInvalidConfigError, ValueError)
    ):
        materialize(
            [asset],
            partition_key="2026-11-21 06:00",
            instance=instance,
            resources=resources(simulator.rest_url, str(tmp_path / "lake")),
        )
    assert not (tmp_path / "lake").exists()


def test_running_the_checks_alone_reverifies_the_lake_without_fetching(simulator, tmp_path, instance):
    first, last = past_minute(simulator, 3), past_minute(simulator, 2)
    lake_url = str(tmp_path / "lake")
    res = resources(simulator.rest_url, lake_url)
    assert run("BTCUSDT", first, last, res, instance).success
    # Someone damages the second minute's file behind Dagster's back: one trade goes missing.
    path = lake_from_url(lake_url).path_of("BTCUSDT", last)
    table = pq.read_table(path)
    pq.write_table(table.filter(pc.not_equal(table["trade_id"], table["trade_id"][5])), path)
    asset = build_raw_trades_asset("BTCUSDT", minute_partitions(1))
    result = materialize(
        [asset],
        selection=AssetSelection.checks_for_assets(asset),
        resources=res,
        instance=instance,
        raise_on_error=False,
        tags={RANGE_START_TAG: minute_key(first), RANGE_END_TAG: minute_key(last)},
    )
    assert not result.success
    failed = check_evaluation(instance, "BTCUSDT", MINUTE_CHECK, minute_key(last))
    assert not failed.passed
    rules = {name: failed.metadata[name].value for name in ("trade_ids_dense", "agrees_with_kline", "values_sane")}
    assert rules == {"trade_ids_dense": False, "agrees_with_kline": False, "values_sane": True}
    assert check_status(instance, "BTCUSDT", MINUTE_CHECK, minute_key(first)) == "SUCCEEDED"
    # the damage is not "repaired" by a checks-only run, and no new materialization is recorded
    assert pq.read_table(path).num_rows == table.num_rows - 1
    assert len(instance.fetch_materializations(raw_trades_key("BTCUSDT"), limit=10).records) == 2


# ---- every symbol class, and a value no lake can hold --------------------------------------------------------------
# BTC-quoted (9+ decimal products), a meme coin (qty up to int64's 92,233,720,368), 8-decimal prices, and a pair whose
# products need all 16 decimals; extreme trades (max_qty, min_qty) are frequent here so a few minutes hold some.
SYMBOL_CLASSES = ("BTCUSDT", "ETHBTC", "PEPEUSDT", "DOGEBTC", "WBTCBTC")


@pytest.fixture(scope="module")
def every_class():
    config = SimulatorConfig(
        symbols=[symbol_config(s, extreme_probability=0.2) for s in SYMBOL_CLASSES], history_minutes=8
    )
    with Simulator(config) as sim:
        yield sim


def exact_product(price: str, qty: str) -> Decimal:
    return EXACT.multiply(Decimal(price), Decimal(qty))


EXACT = Context(prec=60)  # Python's default context would round a product to 28 digits


@pytest.mark.parametrize("symbol", SYMBOL_CLASSES)
def test_every_symbol_class_is_stored_exactly_over_rest(every_class, symbol, tmp_path, instance):
    first, last = past_minute(every_class, 6), past_minute(every_class, 1)
    lake_url = str(tmp_path / "lake")
    assert run(symbol, first, last, resources(every_class.rest_url, lake_url), instance).success
    assert_lake_equals_truth(every_class, lake_url, symbol, first, last)
    expected = truth(every_class, symbol, first, last + MINUTE_MS)
    cfg = symbol_config(symbol)
    # the window holds the extremes the filters allow, so the equality above covers them
    assert {Decimal(cfg.max_qty), Decimal(cfg.min_qty)} <= {Decimal(t.qty) for t in expected}
    decimals = max(-exact_product(t.price, t.qty).normalize(EXACT).as_tuple().exponent for t in expected)
    assert decimals >= {"BTCUSDT": 7, "ETHBTC": 9, "PEPEUSDT": 8, "DOGEBTC": 8, "WBTCBTC": 15}[symbol]
    recorded = materializations(instance, symbol)
    assert len(recorded) == 6
    for minute in range(first, last + MINUTE_MS, MINUTE_MS):
        trades = truth(every_class, symbol, minute, minute + MINUTE_MS)
        metadata = recorded[minute_key(minute)]
        assert Decimal(metadata["base_volume"].value) == sum((Decimal(t.qty) for t in trades), Decimal(0))
        assert Decimal(metadata["quote_volume"].value) == EXACT.create_decimal(
            sum((exact_product(t.price, t.qty) for t in trades), Decimal(0))
        )


def test_a_value_no_lake_can_hold_fails_its_minute_only(every_class, tmp_path, instance):
    """A trade with a 9-decimal price (no exchange sends one; the simulator does, on request): its minute fails with
    a message naming the symbol, minute, trade and value, on the partition's check too; the other minutes of the
    run are written and recorded."""
    first, last = past_minute(every_class, 5), past_minute(every_class, 2)
    bad_minute = past_minute(every_class, 3)
    bad = every_class.bad_value("ETHBTC", at_or_after_ms=bad_minute + 20_000)
    try:
        lake_url = str(tmp_path / "lake")
        result = run("ETHBTC", first, last, resources(every_class.rest_url, lake_url), instance, raise_on_error=False)
    finally:
        every_class.clear_faults()
    assert not result.success
    message = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error.message
    key = minute_key(bad_minute)
    assert f"ETHBTC minute {key}" in message and f"#{bad['trade_id']}" in message and bad["value"] in message
    assert "Traceback" not in message
    good = {minute_key(m) for m in range(first, last + MINUTE_MS, MINUTE_MS)} - {key}
    assert instance.get_materialized_partitions(raw_trades_key("ETHBTC")) == good
    failed = check_evaluation(instance, "ETHBTC", MINUTE_CHECK, key)
    assert not failed.passed and failed.metadata["values_sane"].value is False
    assert f"#{bad['trade_id']}" in failed.description and bad["value"] in failed.description
    assert lake_from_url(lake_url).read_minute("ETHBTC", bad_minute) is None
    for minute in range(first, last + MINUTE_MS, MINUTE_MS):
        if minute != bad_minute:
            assert_lake_equals_truth(every_class, lake_url, "ETHBTC", minute, minute)


def test_a_failing_lake_fails_the_run_naming_it_and_records_nothing(simulator, tmp_path, instance):
    first, last = past_minute(simulator, 3), past_minute(simulator, 2)
    blocker = tmp_path / "lake"
    blocker.write_text("a file where the lake's folder should be")
    result = run("BTCUSDT", first, last, resources(simulator.rest_url, str(blocker)), instance, raise_on_error=False)
    assert not result.success
    message = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error.message
    assert str(blocker) in message and "lake" in message
    reason, detail = failure_reason(result)
    assert reason == "lake_failed" and str(blocker) in detail
    assert instance.get_materialized_partitions(raw_trades_key("BTCUSDT")) == set()
    assert blocker.read_text() == "a file where the lake's folder should be"


# ---- an unproven minute shows on its partition; minutes before a symbol's first trade -------------------------------
class LyingKlines(ExchangeResource):
    """The exchange's kline of one minute (``lying_minute``) counts one trade more than the minute held."""

    lying_minute: int

    def rest_client(self, timeout: float = 10):
        client = super().rest_client(timeout)
        real_klines = client.klines

        def klines(*args, **kwargs):
            return [
                k.__class__(
                    **{
                        **{f: getattr(k, f) for f in k.__struct_fields__},
                        "trade_count": k.trade_count + (k.open_time == self.lying_minute),
                    }
                )
                for k in real_klines(*args, **kwargs)
            ]

        client.klines = klines
        return client


def check_evaluation(instance, symbol, check_name, partition):
    """The latest evaluation of a check on one partition (None if never evaluated)."""
    records = instance.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION), ascending=False, limit=10_000
    )
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if (evaluation.asset_key, evaluation.check_name, evaluation.partition) == (
            raw_trades_key(symbol),
            check_name,
            partition,
        ):
            return evaluation
    return None


def test_an_unproven_minute_shows_a_failed_check_that_a_later_success_clears(simulator, tmp_path, instance):
    first, last = past_minute(simulator, 3), past_minute(simulator, 2)
    lying = last
    lake_url = str(tmp_path / "lake")
    res = resources(simulator.rest_url, lake_url)
    res["exchange"] = LyingKlines(
        rest_url=simulator.rest_url, ws_url="ws://127.0.0.1:1", symbols=["BTCUSDT"], lying_minute=lying
    )
    assert not run("BTCUSDT", first, last, res, instance, raise_on_error=False).success
    key = minute_key(lying)
    failed = check_evaluation(instance, "BTCUSDT", MINUTE_CHECK, key)
    assert failed is not None and not failed.passed
    assert f"minute {key}" in failed.description and "kline trade count" in failed.description
    assert any("kline trade count" in r for r in failed.metadata["reasons"].value)
    assert instance.get_materialized_partitions(raw_trades_key("BTCUSDT")) == {minute_key(first)}
    # the exchange tells the truth again: the same partition is materialized, and its checks pass
    assert run("BTCUSDT", lying, lying, resources(simulator.rest_url, lake_url), instance).success
    assert check_status(instance, "BTCUSDT", MINUTE_CHECK, key) == "SUCCEEDED"
    assert minute_key(lying) in instance.get_materialized_partitions(raw_trades_key("BTCUSDT"))


def test_a_failed_minute_blocks_what_depends_on_it_in_the_run(simulator, tmp_path, instance):
    """A user's asset downstream of raw_trades, materialized in the same run: when one minute of the range fails its
    check (the exchange's kline disagrees), the check is failed on that partition with its reasons, blocking, and
    the downstream asset is not materialized for any partition; with every minute proven, it is."""
    partitions = minute_partitions(1)
    raw = build_raw_trades_asset("BTCUSDT", partitions)

    @asset(partitions_def=partitions, deps=[raw_trades_key("BTCUSDT")], backfill_policy=BackfillPolicy.single_run())
    def minute_feature() -> MaterializeResult:
        return MaterializeResult()

    first, last = past_minute(simulator, 4), past_minute(simulator, 3)
    tags = {RANGE_START_TAG: minute_key(first), RANGE_END_TAG: minute_key(last)}
    res = resources(simulator.rest_url, str(tmp_path / "lake"))
    res["exchange"] = LyingKlines(
        rest_url=simulator.rest_url, ws_url="ws://127.0.0.1:1", symbols=["BTCUSDT"], lying_minute=last
    )
    result = materialize([raw, minute_feature], resources=res, instance=instance, tags=tags, raise_on_error=False)
    assert not result.success
    failed = check_evaluation(instance, "BTCUSDT", MINUTE_CHECK, minute_key(last))
    assert not failed.passed and failed.blocking and "kline trade count" in failed.description
    assert instance.get_materialized_partitions(raw_trades_key("BTCUSDT")) == {minute_key(first)}
    assert instance.get_materialized_partitions(minute_feature.key) == set()
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert started == {raw.op.name}  # the downstream step never ran

    res["exchange"] = resources(simulator.rest_url, "unused")["exchange"]  # the exchange tells the truth again
    assert materialize([raw, minute_feature], resources=res, instance=instance, tags=tags).success
    assert check_status(instance, "BTCUSDT", MINUTE_CHECK, minute_key(last)) == "SUCCEEDED"
    assert instance.get_materialized_partitions(minute_feature.key) == {minute_key(first), minute_key(last)}


@pytest.fixture(scope="module")
def listing():
    """NEWUSDT listed 3 minutes ago (ids from 0), BTCUSDT trading since 8 minutes ago."""
    config = SimulatorConfig(
        symbols=[symbol_config("BTCUSDT"), symbol_config("NEWUSDT")], history_minutes=8, listed={"NEWUSDT": 3}
    )
    with Simulator(config) as sim:
        yield sim


def test_minutes_before_the_first_trade_are_recorded_empty_with_a_note(listing, tmp_path, instance):
    first, last = past_minute(listing, 6), past_minute(listing, 1)
    lake_url = str(tmp_path / "lake")
    res = resources(listing.rest_url, lake_url)
    assert run("NEWUSDT", first, last, res, instance).success
    opening = truth(listing, "NEWUSDT", 0, listing.clock())[0]
    assert opening.trade_id == 0
    listing_minute = opening.trade_time - opening.trade_time % MINUTE_MS
    assert first < listing_minute <= last
    recorded = materializations(instance, "NEWUSDT")
    assert set(recorded) == {minute_key(m) for m in range(first, last + MINUTE_MS, MINUTE_MS)}
    lake = lake_from_url(lake_url)
    for minute in range(first, listing_minute, MINUTE_MS):
        metadata = recorded[minute_key(minute)]
        assert metadata["dagster/row_count"].value == 0 and lake.read_minute("NEWUSDT", minute).num_rows == 0
        assert metadata["note"].value == (
            f"before the symbol's first trade (first trade 0 at {utc_text(opening.trade_time)})"
        )
        assert metadata["action"].value == "before first trade"
        assert check_status(instance, "NEWUSDT", MINUTE_CHECK, minute_key(minute)) == "SUCCEEDED"
    assert_lake_equals_truth(listing, lake_url, "NEWUSDT", listing_minute, last)
    assert recorded[minute_key(listing_minute)]["first_trade_id"].value == 0
    assert "note" not in recorded[minute_key(listing_minute)]
    # a run again keeps them (already stored, still before the first trade)
    assert run("NEWUSDT", first, first, res, instance).success
    assert materializations(instance, "NEWUSDT")[minute_key(first)]["note"].value.startswith("before the symbol")
    # the checks alone pass on them too (no kline to compare with: the note stands in)
    asset = build_raw_trades_asset("NEWUSDT", minute_partitions(1))
    assert materialize(
        [asset],
        selection=AssetSelection.checks_for_assets(asset),
        resources=res,
        instance=instance,
        tags={RANGE_START_TAG: minute_key(first), RANGE_END_TAG: minute_key(listing_minute)},
    ).success
