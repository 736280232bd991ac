import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.lake import LocalLake
from crypto_assets_tests.analytics_data import Hours, start_simulator, write_hours

# A listed symbol that never trades: what a client sees for an illiquid market.
SILENT_SYMBOL = "QUIETUSDT"


@pytest.fixture(scope="session")
def simulator():
    """One exchange simulator on 127.0.0.1 for tests that only read from it (no fault injection)."""
    config = SimulatorConfig(
        symbols=[
            symbol_config("BTCUSDT"),
            symbol_config("ETHUSDT"),
            symbol_config(SILENT_SYMBOL, trades_per_second=0, burst_probability=0),
        ],
        history_minutes=5,
    )
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
# With `--dist loadfile` a file goes to one worker as a whole, in collection order (xdist's own reordering by test
# count is turned off below). The three end-to-end files run for 5 to 10 minutes each against Dagster's processes,
# mostly waiting for real-time minutes: they go first, one per worker, and the fourth worker starts the rest of the
# suite beside them; the slowest of the other files (dbt builds, S3 outages) come next, so that no long file starts
# last. Paths are relative to this folder, measured with `--durations`.
LONGEST_FIRST = (
    "test_self_healing_end_to_end.py",
    "test_production_end_to_end.py",
    "test_ui_backfill_under_load.py",
    "defs/analytics/test_dbt_assets.py",
    "dbt/test_models.py",
    "defs/raw/test_live_stream_s3_outage.py",
    "defs/analytics/test_s3.py",
    "defs/analytics/test_empty_warehouse.py",
    "dbt/test_exact_decimals.py",
)
END_TO_END = tuple(f"/{name}" for name in LONGEST_FIRST[:3])
# Files of quick tests (a few seconds) that a worker running an end-to-end file holds as its next file.
FILLERS = ("/test_minutes.py", "/test_settings.py", "/test_preflight.py", "/test_settings_spool.py")
TESTS_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def key(item):  # end-to-end tests (marked e2e) first, then the slowest files
        path = item.path
        name = path.relative_to(TESTS_DIR).as_posix() if path.is_relative_to(TESTS_DIR) else ""
        return (item.get_closest_marker("e2e") is None, rank.get(name, len(rank)))

    items.sort(key=key)  # stable: the others keep their order


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    # xdist would otherwise hand out the files with the most tests first: the one-test end-to-end files came last
    config.option.loadscopereorder = False

    class EndToEndBesideSmallFiles(LoadFileScheduling):
        """`--dist loadfile`, except that a worker running an end-to-end file is handed one of the small FILLERS in
        advance, not the next file in order. A worker only starts a test once it holds the one after it, so xdist
        hands every worker a second file in advance: the next in order would wait 5 to 10 minutes behind the
        end-to-end file instead of running on a free worker."""

        def _reschedule(self, node):
            work = self.assigned_work.get(node, {})
            pending = [scope for scope, tests in work.items() if self._pending_of({scope: tests})]
            if self.workqueue and not node.shutting_down and any(scope.endswith(END_TO_END) for scope in pending):
                if len(pending) > 1:
                    return  # it holds its next file already
                fillers = [scope for scope in self.workqueue if scope.endswith(FILLERS)]
                if fillers:
                    self.workqueue.move_to_end(fillers[0], last=False)  # what _assign_work_unit takes
                self._assign_work_unit(node)
                return
            super()._reschedule(node)

    return EndToEndBesideSmallFiles(config, log)


@pytest.fixture(autouse=True)
def _fresh_defs_state_storage():
    """Each test loads definitions as a fresh process would. Entering a DagsterInstance sets Dagster's current
    defs-state storage (a context variable); when instances are entered and left out of order (a fixture's and a
    test's), a disposed instance's storage can stay current, and a later test loading definitions in the same worker
    fails with "undefined DagsterInstance weakref"."""
    yield
    forget_defs_state_storage()


@pytest.fixture(autouse=True, scope="session")
def _instance_contexts_forget_on_exit():
    """Leaving a DagsterInstance context restores the defs-state storage that was current before it (a context
    variable token). When that exit comes from the garbage collector (a context never closed, e.g. a generator's),
    it can restore, in the middle of a later test, the storage of an instance that is gone, and the next definitions
    loaded fail with "undefined DagsterInstance weakref" (seen in three tests). In the tests, leaving a context forgets
    the storage instead: no test relies on an outer instance's defs state."""
    from dagster._core.storage.defs_state import base

    @contextmanager
    def set_and_forget(storage):
        base._current_storage.set(storage)
        try:
            yield
        finally:
            base._current_storage.set(None)

    original, base.set_defs_state_storage = base.set_defs_state_storage, set_and_forget
    yield
    base.set_defs_state_storage = original


def forget_defs_state_storage() -> None:
    """No current defs-state storage: definitions loaded next do not reach for an instance that may be gone."""
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)
