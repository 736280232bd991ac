import time
import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer

from crypto_assets.simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.lake import LocalLake
from crypto_assets_tests.analytics_data import Hours, start_simulator, write_hours

# A listed symbol that never trades: what a client sees for an illiquid market.
SILENT_SYMBOL = "QUIETUSDT"


@pytest.fixture(scope="session")
def simulator():
    """One exchange simulator on 127.0.0.1 for tests that only read from it (no fault injection)."""
    config = SimulatorConfig(symbols=[symbol_config("BTCUSDT"), symbol_config("ETHUSDT"),
                                      symbol_config(SILENT_SYMBOL, trades_per_second=0, burst_probability=0)],
                             history_minutes=5)
    with Simulator(config) as sim:
        yield sim


# ---- S3: a real moto server on 127.0.0.1 ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._server.server_port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def s3_bucket(moto_endpoint, aws_env):
    """A fresh, empty bucket on the moto server."""
    name = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


# ---- analytics: two complete hours of three symbols in a lake, shared by the dbt and the Dagster analytics tests ----
@pytest.fixture(scope="session")
def hours():
    """Two complete past hours of three symbols, from a simulator that stays up for the session (REST klines)."""
    sim = start_simulator(int(time.time() * 1000))
    h1 = sim.market.origin_ms + 3_600_000
    try:
        yield Hours(sim, h1, h1 + 3_600_000)
    finally:
        sim.__exit__(None, None, None)


@pytest.fixture(scope="session")
def local_lake(hours, tmp_path_factory):
    """A local lake holding both hours, every minute of every symbol."""
    root = tmp_path_factory.mktemp("lake")
    write_hours(LocalLake(root), hours.sim, (hours.h1, hours.h2))
    return root


# ---- scheduling ------------------------------------------------------------------------------------------------------
# The end-to-end files run for 5 to 10 minutes each against `dagster dev`. With `--dist loadfile` a file goes to one
# worker as a whole, in collection order: these go first, so the rest of the suite runs beside them, not after them.
LONGEST_FIRST = ("test_self_healing_end_to_end.py", "test_ui_backfill_under_load.py", "test_end_to_end.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep their order
