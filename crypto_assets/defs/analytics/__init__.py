"""Analytics: the dbt project (dbt_crypto_pipeline/) as Dagster assets.

- ``dbt_project``: where the project is; the manifest prepared when missing or stale (tests, CI, deployments);
- ``translator``: lake source -> every ``raw_trades/<symbol>`` asset, groups silver/gold, gold freshness policy, the
  hourly models' automation condition;
- ``warehouse``: ``WarehouseResource`` (lake, DuckDB file, symbols -> dbt vars; read-only queries);
- ``assets``: the hourly ``@dbt_assets`` (hour partitions, single-run backfills, pool ``duckdb``) and latest prices;
- ``charts``: candle chart PNGs for metadata;
- ``schedules``: the jobs; the hourly build at HH:05 of a complete hour and latest prices at HH:15, which skip with
  a reason instead of failing on a fresh machine or an empty warehouse;
- ``automation``: Declarative Automation of the hourly models (build an hour once all its raw minutes are recorded,
  rebuild it when a minute lands later) and the sensor that evaluates it;
- ``sensors``: rebuilds the next hour after an hour it reads into was rebuilt (what automation cannot express).
"""

from dagster import Definitions
from dagster_dbt import DbtCliResource

from crypto_assets.defs.analytics.assets import build_hourly_dbt_assets, build_latest_prices_assets
from crypto_assets.defs.analytics.automation import build_automation_sensor
from crypto_assets.defs.analytics.dbt_project import dbt_executable, dbt_project, ensure_manifest
from crypto_assets.defs.analytics.schedules import build_hourly_job, build_latest_prices_job, build_schedules
from crypto_assets.defs.analytics.sensors import build_next_hour_sensor
from crypto_assets.defs.analytics.translator import AnalyticsTranslator
from crypto_assets.defs.analytics.warehouse import WarehouseResource
from crypto_assets.defs.analytics.warehouse_io_manager import (
    WAREHOUSE_IO_MANAGER,
    WAREHOUSE_SCHEMA,
    WarehouseIOManager,
)
from crypto_assets.defs.partitions import hour_partitions
from crypto_assets.settings import Settings

__all__ = ["build_analytics_definitions"]


def build_analytics_definitions(settings: Settings) -> Definitions:
    """The dbt assets, jobs, schedules, sensors and resources (`dbt`, `warehouse`) for ``settings``; the DuckDB file
    is ``settings.duckdb_path`` (DBT_DUCKDB_PATH)."""
    project = dbt_project()
    ensure_manifest(project)
    translator = AnalyticsTranslator(settings.symbols)
    hours = hour_partitions(settings.partition_days)
    hourly = build_hourly_dbt_assets(project, translator, hours)
    latest = build_latest_prices_assets(project, translator)
    hourly_job, latest_job = build_hourly_job(hourly), build_latest_prices_job(latest)
    warehouse = WarehouseResource.from_settings(settings)
    return Definitions(
        assets=[hourly, latest],
        jobs=[hourly_job, latest_job],
        schedules=build_schedules(hourly_job, latest_job, list(translator.raw_keys), hours),
        sensors=[build_automation_sensor(hourly), build_next_hour_sensor(hourly_job, hours)],
        resources={
            "dbt": DbtCliResource(
                project_dir=project,
                profiles_dir=str(project.profiles_dir),
                target=warehouse.dbt_target,
                dbt_executable=dbt_executable(),
            ),
            "warehouse": warehouse,
            WAREHOUSE_IO_MANAGER: WarehouseIOManager(database=warehouse.duckdb_path, schema=WAREHOUSE_SCHEMA),
        },
    )
