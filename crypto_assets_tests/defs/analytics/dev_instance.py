"""A Dagster instance as `make dev` / `make demo` set it up: a real SQLite instance in a DAGSTER_HOME whose
dagster.yaml is the project's dagster.dev.yaml (the duckdb pool's limit of 1)."""

import shutil
from pathlib import Path

from dagster import DagsterInstance

DEV_INSTANCE_CONFIG = Path(__file__).resolve().parents[3] / "dagster.dev.yaml"


def dev_home(folder: Path) -> Path:
    """``folder`` as a DAGSTER_HOME holding dagster.dev.yaml as its dagster.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEV_INSTANCE_CONFIG, folder / "dagster.yaml")
    return folder


def dev_instance(folder: Path) -> DagsterInstance:
    """A fresh instance in ``folder`` (enter it with ``with``)."""
    return DagsterInstance.from_config(str(dev_home(folder)))
