"""Fixtures of the raw domain's tests."""

import gc

import pytest
from dagster import DagsterInstance

from crypto_assets_tests.conftest import forget_defs_state_storage


@pytest.fixture
def instance(tmp_path):
    """A real Dagster instance (SQLite storage) in a throw-away DAGSTER_HOME.

    First, what earlier tests left open is collected: an instance context never closed restores the defs-state
    storage that was current before it when it is garbage-collected, possibly one whose instance is gone, and the
    sensor tests load definitions mid-test ("undefined DagsterInstance weakref", seen twice in the suite)."""
    gc.collect()
    forget_defs_state_storage()
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as inst:
        yield inst
