"""The dbt models as Dagster assets: the hourly selection (silver and gold, one partition per UTC hour, a range
backfill in one dbt run; the translator gives each model its automation condition) and the unpartitioned
`latest_prices`. Both run `dbt build`, so every dbt test becomes an asset check result of the same run, and a failing
test blocks the models downstream of it. `latest_prices` needs `candles_1m` in the warehouse
(`latest_prices_waits_for`): launched by hand before that, it fails with that reason before dbt starts, and its
schedule skips instead."""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    BackfillPolicy,
    DagsterInstance,
    Failure,
    MetadataValue,
    Output,
    PartitionsDefinition,
)
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from crypto_assets.defs.analytics.charts import candle_chart_png, png_markdown
from crypto_assets.defs.analytics.dbt_project import prune_run_folders
from crypto_assets.defs.analytics.translator import AnalyticsTranslator
from crypto_assets.defs.analytics.warehouse import WarehouseBusyError, WarehouseResource

DUCKDB_POOL = "duckdb"  # one writer per DuckDB file: give this pool a limit of 1 (see README)
# dbt_project.yml tags every staging model and mart `hourly`; a model over the whole history adds `unpartitioned`
# (tags add up). Together the two selections hold every model exactly once (test_selections.py checks it).
HOURLY_SELECT, HOURLY_EXCLUDE = "tag:hourly", "tag:unpartitioned"
UNPARTITIONED_SELECT = "tag:unpartitioned"
CHART_ASSETS = (AssetKey("candles_1m"), AssetKey("candles_1h"))
LATEST_PRICES = AssetKey("latest_prices")
LATEST_PRICES_UPSTREAM = AssetKey("candles_1m")

MetadataFor = Callable[[AssetKey], Mapping[str, Any]]


def run_dbt_build(
    context: AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    window_start: datetime | None,
    window_end: datetime | None,
    extra_metadata: Callable[[], MetadataFor],
) -> Iterator[Any]:
    """`dbt build` of the context's selection for the window; the run's events, the Outputs of the models with
    `extra_metadata` (computed once dbt has released the DuckDB file). Fails the step after yielding every event
    when any model or test failed."""
    warehouse.prepare()
    dbt_vars = warehouse.dbt_vars(window_start, window_end)
    context.log.info(f"dbt build with vars {json.dumps(dbt_vars)}")
    invocation = dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context, raise_on_error=False)
    events = list(invocation.stream())
    succeeded = invocation.is_successful()
    run_results = invocation.get_artifact("run_results.json") if not succeeded else {}
    prune_run_folders(Path(invocation.target_path).parent)
    built = {context.asset_key_for_output(e.output_name) for e in events if isinstance(e, Output)}
    metadata_for: MetadataFor = lambda key: {}  # noqa: E731
    try:
        if built:
            metadata_for = extra_metadata()
    except Exception as exc:  # noqa: BLE001 - a chart must never hide the data's own outcome
        context.log.warning(f"could not build the metadata charts/tables: {exc!r}")
    for event in events:
        if isinstance(event, Output):
            extra = metadata_for(context.asset_key_for_output(event.output_name))
            if extra:
                event = event.with_metadata({**(event.metadata or {}), **extra})
        yield event
    if not succeeded:
        failures = [r for r in run_results.get("results", []) if r.get("status") in ("error", "fail", "runtime error")]
        described = "; ".join(
            f"{r['unique_id']}: {r.get('status')} {(r.get('message') or '').strip()}" for r in failures[:10]
        )
        raise Failure(
            description=f"dbt build failed for the window {dbt_vars.get('window_start', '(all)')} .. "
            f"{dbt_vars.get('window_end', '')}: {described or 'see the dbt log'}"
        )


def hourly_metadata(warehouse: WarehouseResource, window_end: datetime) -> MetadataFor:
    """Candle chart of the window's last hour per symbol for candles_1m and candles_1h."""
    hour_start = window_end - timedelta(hours=1)
    rows = warehouse.query(
        "select symbol, minute_start, open, high, low, close from candles_1m "
        "where minute_start >= ? and minute_start < ? order by symbol, minute_start",
        [hour_start.replace(tzinfo=None), window_end.replace(tzinfo=None)],
    )
    if not rows:
        return lambda key: {}
    by_symbol: dict[str, list] = {}
    for symbol, *candle in rows:
        by_symbol.setdefault(symbol, []).append(tuple(candle))
    title = f"1m candles {hour_start:%Y-%m-%d %H:%M} - {window_end:%H:%M} UTC"
    chart = MetadataValue.md(png_markdown(candle_chart_png(by_symbol, title), title))
    minutes = MetadataValue.json({symbol: len(candles) for symbol, candles in by_symbol.items()})
    return lambda key: {"candle_chart": chart, "minutes_in_last_hour": minutes} if key in CHART_ASSETS else {}


def latest_prices_metadata(warehouse: WarehouseResource) -> MetadataFor:
    names, rows = warehouse.query_columns("select * from latest_prices order by symbol")
    header = "| " + " | ".join(names) + " |\n|" + "---|" * len(names) + "\n"
    body = "".join("| " + " | ".join("" if v is None else str(v) for v in row) + " |\n" for row in rows)
    table = MetadataValue.md(header + body)
    return lambda key: {"latest_prices": table, "symbols": len(rows)} if key == LATEST_PRICES else {}


def latest_prices_waits_for(instance: DagsterInstance | None, warehouse: WarehouseResource) -> str | None:
    """Why latest_prices cannot be built now (its upstream table is not in the warehouse yet: dbt would fail with
    "Table candles_1m does not exist"); None when it can. While a dbt run holds the DuckDB file the instance answers
    instead: has candles_1m ever been built? Declarative Automation cannot say this of an unpartitioned asset on an
    hourly one (it would wait for every hour partition), so the schedule asks it."""
    table = LATEST_PRICES_UPSTREAM.to_user_string()
    try:
        if warehouse.table_exists(table):
            return None
        where = (
            "the warehouse has no such table"
            if Path(warehouse.duckdb_path).exists()
            else "the warehouse file does not exist yet"
        )
    except WarehouseBusyError:
        ever_built = AssetRecordsFilter(asset_key=LATEST_PRICES_UPSTREAM)
        if instance is None or instance.fetch_materializations(ever_built, limit=1).records:
            return None  # a dbt run is writing; this run queues behind it in the duckdb pool
        where = "a dbt run holds the warehouse and no hour was ever built"
    return (
        f"waiting for the first hourly build: latest_prices is computed from {table}, which is not in "
        f"{warehouse.duckdb_path} yet ({where}); an hour is built once all its raw minutes are recorded "
        f"(analytics_every_hour at HH:05, else the analytics_automation sensor; or materialize an hour by hand)"
    )


def build_hourly_dbt_assets(
    project: DbtProject, translator: AnalyticsTranslator, hours: PartitionsDefinition
) -> AssetsDefinition:
    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=HOURLY_SELECT,
        exclude=HOURLY_EXCLUDE,
        name="dbt_hourly",
        partitions_def=hours,
        backfill_policy=BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        dagster_dbt_translator=translator,
    )
    def dbt_hourly(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
        """Silver and gold for the partition's hour (or a backfill's whole range, in one dbt run)."""
        window = context.partition_time_window
        yield from run_dbt_build(
            context, dbt, warehouse, window.start, window.end, lambda: hourly_metadata(warehouse, window.end)
        )

    return dbt_hourly


def build_latest_prices_assets(project: DbtProject, translator: AnalyticsTranslator) -> AssetsDefinition:
    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=UNPARTITIONED_SELECT,
        name="dbt_unpartitioned",
        pool=DUCKDB_POOL,
        dagster_dbt_translator=translator,
    )
    def dbt_unpartitioned(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
        """Models over the whole history (latest prices). Refused, naming what is missing, until an hour is built."""
        waiting = latest_prices_waits_for(context.instance, warehouse)
        if waiting:
            raise Failure(description=f"latest_prices cannot be built yet: {waiting}")
        yield from run_dbt_build(context, dbt, warehouse, None, None, lambda: latest_prices_metadata(warehouse))

    return dbt_unpartitioned
