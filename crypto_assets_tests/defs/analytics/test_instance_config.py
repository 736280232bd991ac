"""The instance settings the dbt assets need (the `duckdb` pool limited to 1: one writer per DuckDB file) come from
the instance configuration: dagster.dev.yaml, which `make dev` / `make demo` put in DAGSTER_HOME without clobbering
a dagster.yaml of the user's own, and deploy/dagster.yaml in production. No sensor sets them."""

import os
import subprocess
import uuid
from pathlib import Path

import yaml
from dagster._core.instance.config import dagster_instance_config

from crypto_assets.defs.analytics.assets import DUCKDB_POOL
from crypto_assets_tests.defs.analytics.dev_instance import DEV_INSTANCE_CONFIG, dev_home, dev_instance

PROJECT_ROOT = DEV_INSTANCE_CONFIG.parent


def test_the_dev_instance_file_is_valid_and_limits_pools_as_production_does(tmp_path):
    config, custom_class = dagster_instance_config(str(dev_home(tmp_path)))  # raises on a config Dagster refuses
    assert custom_class is None and set(config) == {"concurrency"}  # storage: the local default (SQLite)
    production = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    pools = {"default_limit": 1, "granularity": "op"}
    assert config["concurrency"]["pools"] == production["concurrency"]["pools"] == pools


def test_an_instance_configured_by_it_runs_one_dbt_step_at_a_time(tmp_path):
    with dev_instance(tmp_path / "home") as instance:
        storage = instance.event_log_storage
        assert instance.global_op_concurrency_default_limit == 1
        assert storage.get_concurrency_info(DUCKDB_POOL).limit == 1
        storage.initialize_concurrency_limit_to_default(DUCKDB_POOL)  # what a step in the pool does first
        first, second = uuid.uuid4().hex, uuid.uuid4().hex
        assert storage.claim_concurrency_slot(DUCKDB_POOL, first, "dbt_hourly").is_claimed
        assert not storage.claim_concurrency_slot(DUCKDB_POOL, second, "dbt_unpartitioned").is_claimed
        storage.free_concurrency_slot_for_step(first, "dbt_hourly")
        assert storage.claim_concurrency_slot(DUCKDB_POOL, second, "dbt_unpartitioned").is_claimed


def install(home: Path) -> subprocess.CompletedProcess:
    """What `make dev` runs before dagster dev (and `make demo` / scripts/demo.sh before it starts it)."""
    return subprocess.run(
        ["bash", "scripts/demo.sh", "--instance-config-only"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_make_dev_puts_it_in_dagster_home_and_keeps_a_dagster_yaml_of_the_users_own(tmp_path):
    home = tmp_path / "home"
    target = home / "dagster.yaml"
    install(home)  # no DAGSTER_HOME yet
    assert target.read_text() == DEV_INSTANCE_CONFIG.read_text()

    first_line = DEV_INSTANCE_CONFIG.read_text().splitlines()[0]
    ours_but_older = first_line + "\nconcurrency:\n  pools:\n    default_limit: 3\n"
    target.write_text(ours_but_older)
    install(home)  # our copy (its first line): follows the file
    assert target.read_text() == DEV_INSTANCE_CONFIG.read_text()

    users = "# mine\ntelemetry:\n  enabled: false\n"
    target.write_text(users)
    done = install(home)
    assert target.read_text() == users
    assert "keeping your own" in done.stderr and "concurrency set duckdb 1" in done.stderr

    users_with_pools = "# mine\nconcurrency:\n  pools:\n    default_limit: 2\n"
    target.write_text(users_with_pools)
    assert install(home).stderr == "" and target.read_text() == users_with_pools


def test_make_dev_and_make_demo_install_it_in_their_dagster_home(tmp_path):
    home = tmp_path / "home"
    dry_run = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "dev", "demo", f"DAGSTER_HOME={home}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f'DAGSTER_HOME="{home}" scripts/demo.sh --instance-config-only' in dry_run  # make dev
    assert f'DAGSTER_HOME="{home}" scripts/demo.sh' in dry_run  # make demo, which installs it before dagster dev
    demo = (PROJECT_ROOT / "scripts" / "demo.sh").read_text()
    assert demo.index("\ninstall_instance_config\n") < demo.index(".venv/bin/dagster dev")
