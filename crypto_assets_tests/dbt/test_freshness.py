"""dbt source freshness of the lake: from the newest minute file's name (a listing, not a scan)."""

import time

import pytest

from crypto_assets.lake import LocalLake
from crypto_assets.minutes import MINUTE_MS
from crypto_assets_tests.analytics_data import run_dbt

pytestmark = pytest.mark.integration


def test_a_lake_with_the_last_minute_is_fresh(hours, tmp_path):
    minute = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS - MINUTE_MS  # the last minute that has ended
    lake = LocalLake(tmp_path / "lake")
    lake.write_minute("BTCUSDT", minute, [])
    run = run_dbt(["source", "freshness"], tmp_path / "f.duckdb", tmp_path / "scratch", {"lake_url": str(lake.root)})
    (result,) = run.results.values()
    assert result["status"] == "pass", run.output
    assert result["max_loaded_at_time_ago_in_s"] < 180
