"""Fixtures of the raw domain's tests."""

import pytest
from dagster import DagsterInstance


@pytest.fixture
def instance(tmp_path):
    """A real Dagster instance (SQLite storage) in a throw-away DAGSTER_HOME."""
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as inst:
        yield inst
