"""The production instance's event log storage (``crypto_assets.defs.instance``, named by deploy/dagster.yaml) on a
real PostgreSQL server started here: raw_trades recorded through it are what dagster-postgres's own storage records,
over a handful of connections instead of several per event."""

import time

import pytest
from dagster import DagsterInstance, materialize

from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG, raw_trades_key
from crypto_assets.defs.partitions import minute_partitions
from crypto_assets.defs.raw import raw_resources
from crypto_assets.defs.raw.assets import build_raw_trades_asset
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.ingest.minute_checks import MINUTE_CHECK
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets_tests.ground_truth import past_minute
from crypto_assets_tests.postgres_server import missing_reason, postgres_server

pytestmark = pytest.mark.integration
MINUTES = 6


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    assert missing_reason() is None, f"this test needs PostgreSQL (make test installs it): {missing_reason()}"
    with postgres_server(tmp_path_factory.mktemp("pg")) as server:
        yield server


def sessions(pg, database: str) -> int:
    """Connections ever opened to ``database`` (PostgreSQL's statistics, read once they have been flushed)."""
    time.sleep(1.5)
    return int(pg.psql("postgres", f"select sessions from pg_stat_database where datname = '{database}'"))


def record(pg, simulator, tmp_path, first: int, deploy_storages: bool) -> tuple[DagsterInstance, set[str], int]:
    """A fresh instance in a fresh database records MINUTES minutes of raw_trades/btcusdt from ``first`` in one
    run: the partitions that passed their check, and the connections the run opened."""
    database = "deploy" if deploy_storages else "stock"
    pg.create_database(database)
    home = tmp_path / database
    home.mkdir()
    (home / "dagster.yaml").write_text(pg.instance_yaml(database, deploy_storages))
    last = first + (MINUTES - 1) * MINUTE_MS
    with DagsterInstance.from_config(str(home)) as instance:
        before = sessions(pg, database)
        result = materialize(
            [build_raw_trades_asset("BTCUSDT", minute_partitions(1))],
            resources=raw_resources(
                ExchangeResource(rest_url=simulator.rest_url, ws_url="ws://127.0.0.1:1", symbols=["BTCUSDT"]),
                LakeResource(url=str(tmp_path / "lake")),
            ),
            instance=instance,
            tags={RANGE_START_TAG: minute_key(first), RANGE_END_TAG: minute_key(last)},
        )
        assert result.success
        opened = sessions(pg, database) - before
        passed = {
            e.partition for e in result.get_asset_check_evaluations() if e.check_name == MINUTE_CHECK and e.passed
        }
        assert instance.get_materialized_partitions(raw_trades_key("BTCUSDT")) == passed
        assert len(passed) == MINUTES
        return instance, passed, opened


def test_the_deploy_event_log_records_what_dagster_postgres_records_over_held_connections(pg, simulator, tmp_path):
    first = past_minute(simulator, MINUTES + 1)
    _, stock, stock_sessions = record(pg, simulator, tmp_path, first, deploy_storages=False)
    instance, deployed, deploy_sessions = record(pg, simulator, tmp_path, first, deploy_storages=True)
    assert type(instance.event_log_storage).__name__ == "PooledPostgresEventLogStorage"
    assert deployed == stock
    # dagster-postgres alone opens a connection per statement group (three or more per recorded minute's check
    # evaluation); the deploy's event log holds its own, so the run opens at least that many fewer (those left are
    # mostly the run storage's, which writes a few times per run)
    assert stock_sessions - deploy_sessions >= 4 * MINUTES, (deploy_sessions, stock_sessions)
