"""Fixtures and helpers of the raw domain's tests."""

import pytest
from dagster import DagsterInstance, SensorDefinition, build_sensor_context


@pytest.fixture
def instance(tmp_path):
    """A real Dagster instance (SQLite storage) in a throw-away DAGSTER_HOME."""
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as inst:
        yield inst


def sensor_context(defs, sensor: SensorDefinition, instance, cursor: str | None = None):
    """The context of one tick of ``sensor`` with the resources of ``defs`` it requires, as the code server builds
    it (``build_sensor_context(definitions=...)`` alone gives a sensor no resources)."""
    top_level = defs.get_repository_def().get_top_level_resources()
    resources = {key: top_level[key] for key in sensor.required_resource_keys}
    return build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources)
