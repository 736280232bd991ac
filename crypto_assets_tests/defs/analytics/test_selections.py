"""Every dbt model is an asset of exactly one Dagster dbt selection (`dbt_hourly` or `dbt_unpartitioned`): a model
cannot fall out of Dagster silently (no tag that either selection takes), and none is built by both."""

import json
import shutil

import pytest
from dagster import AssetKey, AssetsDefinition
from dagster_dbt import DbtProject

from crypto_assets.defs.analytics import build_analytics_definitions
from crypto_assets.defs.analytics.assets import build_hourly_dbt_assets, build_latest_prices_assets
from crypto_assets.defs.analytics.dbt_project import dbt_project, ensure_manifest
from crypto_assets.defs.analytics.translator import AnalyticsTranslator
from crypto_assets.defs.partitions import hour_partitions
from crypto_assets.settings import DBT_PROJECT_DIR, Settings


def model_keys(project: DbtProject, translator: AnalyticsTranslator) -> dict[AssetKey, str]:
    """The asset key of every model in the project's manifest -> the model's unique id."""
    manifest = json.loads(project.manifest_path.read_text())
    return {
        translator.get_asset_spec(manifest, uid, project).key: uid
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model"
    }


def selection_problems(models: dict[AssetKey, str], dbt_assets: list[AssetsDefinition]) -> list[str]:
    """One line per model that is in no selection or in more than one."""
    problems = []
    for key, uid in sorted(models.items(), key=lambda item: item[1]):
        owners = [assets.op.name for assets in dbt_assets if key in assets.keys]
        if len(owners) != 1:
            problems.append(f"{uid} is in {len(owners)} Dagster dbt selections {owners}")
    return problems


def test_every_dbt_model_is_in_exactly_one_dagster_selection(tmp_path):
    settings = Settings.from_env({"DBT_DUCKDB_PATH": str(tmp_path / "crypto.duckdb")}, dotenv_path=None)
    defs = build_analytics_definitions(settings)
    dbt_assets = [assets for assets in defs.assets if isinstance(assets, AssetsDefinition)]
    assert sorted(assets.op.name for assets in dbt_assets) == ["dbt_hourly", "dbt_unpartitioned"]
    models = model_keys(dbt_project(), AnalyticsTranslator(settings.symbols))
    assert len(models) >= 9
    assert selection_problems(models, dbt_assets) == []
    assert {key for assets in dbt_assets for key in assets.keys} == set(models)  # nothing but the models


@pytest.mark.integration
def test_a_new_mart_is_hourly_by_default_and_a_model_outside_the_tagged_folders_is_reported(tmp_path):
    """In a copy of the project: a mart added without any tag lands in dbt_hourly (the folder's default tag), one
    that tags itself `unpartitioned` in dbt_unpartitioned only, and a model in a folder without a default tag is
    reported as in no selection."""
    copy = tmp_path / "dbt_crypto_pipeline"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs", ".dbt", ".user.yml"))
    (copy / "models" / "marts" / "new_gold.sql").write_text(
        "{{ config(unique_key=['symbol', 'minute_start'], window_column='minute_start') }}\n"
        "select symbol, minute_start from {{ ref('candles_1m') }} where {{ in_window('minute_start') }}\n"
    )
    (copy / "models" / "marts" / "new_whole.sql").write_text(
        "{{ config(materialized='table', tags=['unpartitioned']) }}\nselect * from {{ ref('candles_1m') }}\n"
    )
    (copy / "models" / "elsewhere").mkdir()
    (copy / "models" / "elsewhere" / "orphan.sql").write_text("select 1 as one\n")
    project = dbt_project(copy)
    ensure_manifest(project)
    translator = AnalyticsTranslator(("BTCUSDT",))
    hourly = build_hourly_dbt_assets(project, translator, hour_partitions(1))
    unpartitioned = build_latest_prices_assets(project, translator)

    assert AssetKey("new_gold") in hourly.keys and AssetKey("new_gold") not in unpartitioned.keys
    assert AssetKey("new_whole") in unpartitioned.keys and AssetKey("new_whole") not in hourly.keys
    assert selection_problems(model_keys(project, translator), [hourly, unpartitioned]) == [
        "model.dbt_crypto_pipeline.orphan is in 0 Dagster dbt selections []"
    ]
