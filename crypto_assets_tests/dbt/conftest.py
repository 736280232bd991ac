"""Session data for the dbt tests; crypto_assets_tests/defs/analytics/conftest.py shares it."""

import atexit
import time

import pytest

from crypto_assets.lake import LocalLake
from crypto_assets_tests.analytics_data import Hours, start_simulator, write_hours
from crypto_assets_tests.lake.conftest import moto_endpoint  # noqa: F401 - a real S3 server on 127.0.0.1

_STATE: dict = {}


@pytest.fixture(scope="session")
def hours():
    """Two complete past hours of three symbols, from a simulator that stays up for the session (REST klines)."""
    if "hours" not in _STATE:
        sim = start_simulator(int(time.time() * 1000))
        atexit.register(sim.__exit__, None, None, None)
        h1 = sim.market.origin_ms + 3_600_000
        _STATE["hours"] = Hours(sim, h1, h1 + 3_600_000)
    yield _STATE["hours"]


@pytest.fixture(scope="session")
def local_lake(hours, tmp_path_factory):
    """A local lake holding both hours, every minute of every symbol."""
    if "local_lake" not in _STATE:
        root = tmp_path_factory.mktemp("lake")
        write_hours(LocalLake(root), hours.sim, (hours.h1, hours.h2))
        _STATE["local_lake"] = root
    return _STATE["local_lake"]
