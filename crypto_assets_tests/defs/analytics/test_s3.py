"""The same hourly build from an s3:// lake on moto's S3 server (a real server on 127.0.0.1): DuckDB reads it
through fsspec/s3fs, the endpoint coming from Settings (target `endpoint`), credentials from the AWS variables."""

import uuid

import boto3
import pytest
from dagster import AssetKey, DagsterInstance

from crypto_assets.defs.analytics import build_analytics_definitions
from crypto_assets.defs.analytics.schedules import HOURLY_JOB
from crypto_assets.lake import S3Lake
from crypto_assets.settings import Settings
from crypto_assets_tests.analytics_data import HOUR_MS, SYMBOLS, minute_trades, run_dbt, write_hours

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_lake(moto_endpoint, hours):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.delenv("AWS_ENDPOINT_URL", raising=False)  # the endpoint must come from Settings / the dbt var
        patch.delenv("AWS_PROFILE", raising=False)
        bucket = f"lake-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
        write_hours(S3Lake(bucket, "crypto", endpoint_url=moto_endpoint), hours.sim, [hours.h1])
        yield f"s3://{bucket}/crypto"


def test_an_hour_builds_from_s3(s3_lake, moto_endpoint, hours, tmp_path):
    settings = Settings.from_env(
        {
            "CRYPTO_LAKE_URL": s3_lake,
            "AWS_ENDPOINT_URL": moto_endpoint,
            "CRYPTO_SYMBOLS": ",".join(SYMBOLS),
            "DBT_DUCKDB_PATH": str(tmp_path / "crypto.duckdb"),
        },
        dotenv_path=None,
    )
    defs = build_analytics_definitions(settings)
    h1, _ = hours.keys
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(HOURLY_JOB).execute_in_process(
            instance=instance, partition_key=h1, raise_on_error=False
        )
        assert result.success
        assert all(e.passed for e in result.get_asset_check_evaluations())
        assert instance.get_materialized_partitions(AssetKey("candles_1h")) == {h1}
    warehouse = defs.resources["warehouse"]
    for symbol in SYMBOLS:
        trades = [t for m in range(hours.h1, hours.h1 + HOUR_MS, 60_000) for t in minute_trades(hours.sim, symbol, m)]
        assert warehouse.query("select count(*), max(trade_id) from stg_trades where symbol = ?", [symbol]) == [
            (len(trades), trades[-1].trade_id)
        ]
        assert warehouse.query("select trade_count, minute_count from candles_1h where symbol = ?", [symbol]) == [
            (len(trades), 60)
        ]


def test_source_freshness_reads_s3_and_errors_on_a_stale_lake(s3_lake, moto_endpoint, tmp_path):
    """The lake's newest minute ended an hour or more ago: past error_after (60 minutes)."""
    run = run_dbt(
        ["source", "freshness"],
        tmp_path / "f.duckdb",
        tmp_path / "scratch",
        {"lake_url": s3_lake, "aws_endpoint_url": moto_endpoint},
        target="endpoint",
    )
    (result,) = run.results.values()
    assert result["status"] == "error", run.output
    assert result["max_loaded_at_time_ago_in_s"] >= 3600
