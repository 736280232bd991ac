"""Minutes of a complete UTC day of raw_trades/<symbol> materialized in one Dagster run from the simulator's daily
archive: a real (SQLite) Dagster instance records every partition with its checks and the verified sha256, the lake
equals the ground truth, the run log shows the import's progress; a day the archive has not published yet is served
by REST. (An hour and a half of the day, ~5,400 trades, which cost more over REST than the day's archive: not all
1,440 minutes, whose recording alone takes a minute or two on SQLite; bench/archive_backfill.py runs whole days.)"""

from datetime import UTC, datetime

import pytest
from dagster import DagsterEventType, EventRecordsFilter, materialize

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG, raw_trades_key
from crypto_assets.defs.partitions import minute_partitions
from crypto_assets.defs.raw import raw_resources
from crypto_assets.defs.raw.assets import build_raw_trades_asset
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.exchange.archive import day_start_ms
from crypto_assets.ingest.minute_checks import MINUTE_CHECK
from crypto_assets.lake import lake_from_url
from crypto_assets.lake.schema import trades_to_table
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets_tests.ground_truth import truth
from crypto_assets_tests.simulator._support import ManualClock

pytestmark = pytest.mark.integration

SYMBOL = "SOLUSDT"
DAY_MS, HOUR_MS = 86_400_000, 3_600_000
DAY = "2025-01-01"
D1 = day_start_ms(DAY)
NOW = D1 + DAY_MS + 6 * HOUR_MS  # 2025-01-02 06:00: 2025-01-01 is published, 2025-01-02 is not


@pytest.fixture(scope="module")
def sim():
    config = SimulatorConfig(
        symbols=[symbol_config(SYMBOL, trades_per_second=1.0, burst_probability=0.0)], origin_ms=D1 - 2 * HOUR_MS
    )
    with Simulator(config, clock=ManualClock(NOW)) as s:
        s.archive_file(SYMBOL, DAY)  # built here rather than inside the run's download
        yield s


def run_range(sim, instance, lake_url: str, first_ms: int, last_ms: int):
    asset = build_raw_trades_asset(SYMBOL, minute_partitions(2, now=datetime.fromtimestamp(NOW / 1000, UTC)))
    exchange = ExchangeResource(
        rest_url=sim.rest_url, ws_url="ws://127.0.0.1:1", symbols=[SYMBOL], archive_url=sim.archive_url
    )
    return materialize(
        [asset],
        resources=raw_resources(exchange, LakeResource(url=lake_url)),
        instance=instance,
        tags={RANGE_START_TAG: minute_key(first_ms), RANGE_END_TAG: minute_key(last_ms)},
    )


def log_messages(instance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if e.user_message]


def test_hours_of_a_day_from_the_archive_are_recorded_with_their_checks_and_checksum(sim, instance, tmp_path):
    lake_url = str(tmp_path / "lake")
    first, end = D1 + 20 * HOUR_MS, D1 + 21 * HOUR_MS + 30 * MINUTE_MS
    result = run_range(sim, instance, lake_url, first, end - MINUTE_MS)
    assert result.success
    keys = {minute_key(m) for m in range(first, end, MINUTE_MS)}
    assert instance.get_materialized_partitions(raw_trades_key(SYMBOL)) == keys

    served = sim.archive_file(SYMBOL, DAY).sha256
    records = instance.fetch_materializations(raw_trades_key(SYMBOL), limit=2000).records
    assert len(records) == len(keys) == 90
    for record in records:
        metadata = record.asset_materialization.metadata
        assert metadata["source"].value == "archive" and metadata["action"].value == "written"
        assert metadata["archive_sha256"].value == served
        assert metadata["archive_url"].value.endswith(f"/data/spot/daily/trades/{SYMBOL}/{SYMBOL}-trades-{DAY}.zip")
    evaluations = instance.get_event_records(EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION), limit=10_000)
    passed = {
        (evaluation.check_name, evaluation.partition)
        for evaluation in (e.event_log_entry.dagster_event.event_specific_data for e in evaluations)
        if evaluation.passed
    }
    assert passed == {(MINUTE_CHECK, key) for key in keys}
    # what each recorded minute cost the run's event log: one materialization and one check evaluation
    run_events = [e.dagster_event.event_type for e in instance.all_logs(result.run_id) if e.is_dagster_event]
    assert run_events.count(DagsterEventType.ASSET_MATERIALIZATION) == len(keys)
    assert run_events.count(DagsterEventType.ASSET_CHECK_EVALUATION) == len(keys)

    lake = lake_from_url(lake_url)
    for minute in range(first, end, 7 * MINUTE_MS):
        assert lake.read_minute(SYMBOL, minute).equals(trades_to_table(truth(sim, SYMBOL, minute, minute + MINUTE_MS)))

    messages = log_messages(instance, result.run_id)
    assert any(f"{SYMBOL} {DAY}: 100% of the day read from the archive" in m for m in messages), messages
    assert any(f"{SYMBOL} {DAY}: archive import: " in m and "90 minute(s) proven" in m for m in messages)
    assert any("run peak memory" in m and "REST weight spent" in m for m in messages)


def test_a_day_not_published_yet_is_served_by_rest(sim, instance, tmp_path):
    """Today (2025-01-02, 00:00-00:30): not asked of the archive, every minute comes over REST and is recorded."""
    lake_url = str(tmp_path / "lake")
    first, last = D1 + DAY_MS, D1 + DAY_MS + 30 * MINUTE_MS - MINUTE_MS
    downloads = sim.archive.downloads
    result = run_range(sim, instance, lake_url, first, last)
    assert result.success
    records = instance.fetch_materializations(raw_trades_key(SYMBOL), limit=2000).records
    assert len(records) == 30 and {r.asset_materialization.metadata["source"].value for r in records} == {"rest"}
    lake = lake_from_url(lake_url)
    for minute in range(first, last + MINUTE_MS, 3 * MINUTE_MS):
        assert lake.read_minute(SYMBOL, minute).equals(trades_to_table(truth(sim, SYMBOL, minute, minute + MINUTE_MS)))
    assert sim.archive.downloads == downloads  # a day that has not ended is not asked of the archive
