"""The manifest is prepared wherever the definitions load (tests, CI, deployments), not only under `dagster dev`."""

import os
import shutil

import pytest

from crypto_assets.defs.analytics.dbt_project import ManifestError, dbt_project, ensure_manifest, manifest_is_current
from crypto_assets.settings import DBT_PROJECT_DIR


@pytest.fixture
def project_copy(tmp_path):
    target = tmp_path / "dbt_crypto_pipeline"
    shutil.copytree(DBT_PROJECT_DIR, target, ignore=shutil.ignore_patterns("target", "logs", ".dbt", ".user.yml"))
    return target


@pytest.mark.integration
def test_a_missing_manifest_is_parsed_then_reused_until_a_file_changes(project_copy):
    project = dbt_project(project_copy)
    assert not project.manifest_path.exists()
    ensure_manifest(project)
    assert project.manifest_path.exists()
    assert manifest_is_current(project)
    assert [p.name for p in project.manifest_path.parent.iterdir()] == ["manifest.json"]  # no scratch left behind
    model = project_copy / "models" / "marts" / "candles_1h.sql"
    later = project.manifest_path.stat().st_mtime + 5
    os.utime(model, (later, later))
    assert not manifest_is_current(project)


@pytest.mark.integration
def test_a_broken_project_raises_with_dbt_s_message(project_copy):
    (project_copy / "models" / "marts" / "broken.sql").write_text("select {{ ref('no_such_model') }}")
    with pytest.raises(ManifestError, match="no_such_model"):
        ensure_manifest(dbt_project(project_copy))


def test_only_the_newest_run_folders_are_kept(tmp_path):
    from crypto_assets.defs.analytics.dbt_project import prune_run_folders

    for i in range(13):
        folder = tmp_path / f"dbt_hourly-{i:02d}"
        folder.mkdir()
        os.utime(folder, (1_000_000 + i, 1_000_000 + i))
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "compiled").mkdir()
    removed = prune_run_folders(tmp_path, keep=10)
    assert sorted(p.name for p in removed) == ["dbt_hourly-00", "dbt_hourly-01", "dbt_hourly-02"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "compiled",
        *[f"dbt_hourly-{i:02d}" for i in range(3, 13)],
        "manifest.json",
    ]
