"""What an analytics run needs before it can succeed, asked of the Dagster instance and the warehouse, so that the
schedules wait (a skipped tick that says what for) instead of launching a run bound to fail on a fresh machine.

- An hour of silver and gold needs every raw minute of it: the 60 `raw_trades/<symbol>` minute partitions of that
  hour for every configured symbol, materialized (by the live stream or the REST gap backfill). Before that, its
  `complete_minutes` check would fail the run, and with no raw minute at all there is nothing to build.
- `latest_prices` needs the gold table `candles_1m` in the DuckDB file, i.e. one hour built; without it dbt fails with
  "Table candles_1m does not exist".

An hour counts as built when its first silver model (`stg_trade_minutes`) has a materialization in that partition
(also after a run whose checks failed: `analytics_gap_rebuild_sensor` rebuilds those when their minutes arrive).
"""

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, RunsFilter

from crypto_assets.defs.analytics.warehouse import WarehouseBusyError, WarehouseResource
from crypto_assets.defs.names import IN_FLIGHT_STATUSES, PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from crypto_assets.defs.partitions import materialized_minutes
from crypto_assets.minutes import MINUTE_MS, minute_keys, minute_start_ms

BUILT_MARKER = AssetKey("stg_trade_minutes")
LATEST_PRICES_UPSTREAM = AssetKey("candles_1m")
MINUTES_PER_HOUR = 60


# ---- hours ----------------------------------------------------------------------------------------------------------
def minute_keys_of_hour(hour: str) -> list[str]:
    """'2026-11-21-06:00' -> ['2026-11-21-06:00', ..., '2026-11-21-06:59'] (the raw minute partitions). An hour
    partition key is the key of its first minute."""
    start = minute_start_ms(hour)
    return minute_keys(start, start + MINUTES_PER_HOUR * MINUTE_MS)


def materialized_raw_minutes(
    instance: DagsterInstance, raw_keys: Iterable[AssetKey], hours: Sequence[str]
) -> dict[AssetKey, set[str]]:
    """The materialized minute partitions of each raw asset from the first to the last of ``hours``."""
    if not hours:
        return {key: set() for key in raw_keys}
    start, end = min(map(minute_start_ms, hours)), max(map(minute_start_ms, hours)) + MINUTES_PER_HOUR * MINUTE_MS
    return {key: materialized_minutes(instance, key, start, end) for key in raw_keys}


def raw_minutes_present(materialized: Mapping[AssetKey, set[str]], hour: str) -> dict[AssetKey, int]:
    """How many of the hour's 60 minutes each raw asset has."""
    minutes = minute_keys_of_hour(hour)
    return {key: sum(minute in keys for minute in minutes) for key, keys in materialized.items()}


def describe_missing(present: Mapping[AssetKey, int]) -> str | None:
    """'raw_trades/btcusdt 0 of 60, raw_trades/solusdt 42 of 60 minutes' for the incomplete assets; None when the
    hour is complete."""
    short = [
        f"{key.to_user_string()} {count} of {MINUTES_PER_HOUR}"
        for key, count in present.items()
        if count < MINUTES_PER_HOUR
    ]
    return f"{', '.join(short)} minutes materialized" if short else None


def build_started(instance: DagsterInstance, record) -> float:
    """When the run behind a materialization record started (the event's own time for a run-less event)."""
    run = instance.get_run_record_by_id(record.run_id) if record.run_id else None
    if run is not None and run.start_time:
        return run.start_time
    if run is not None:
        return run.create_timestamp.timestamp()
    return record.timestamp


def latest_build_started(instance: DagsterInstance, hour: str) -> float | None:
    """Start of the run that last built ``hour``; None when it was never built."""
    built = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=BUILT_MARKER, asset_partitions=[hour]), limit=1, ascending=False
    )
    return build_started(instance, built.records[0]) if built.records else None


def hours_in_flight(instance: DagsterInstance, job_name: str) -> set[str]:
    """Hours covered by queued or running runs of the hourly job (single partitions and ranges)."""
    covered: set[str] = set()
    for run in instance.get_runs(RunsFilter(job_name=job_name, statuses=IN_FLIGHT_STATUSES)):
        tags = run.tags
        if PARTITION_TAG in tags:
            covered.add(tags[PARTITION_TAG])
        elif RANGE_START_TAG in tags and RANGE_END_TAG in tags:
            covered.add(tags[RANGE_START_TAG])
            covered.add(tags[RANGE_END_TAG])  # ranges requested by the rebuild sensor span at most two hours
    return covered


def hours_to_build(
    instance: DagsterInstance, job_name: str, raw_keys: Sequence[AssetKey], hours: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Of ``hours`` (oldest first): those ready to build (every raw minute materialized, never built, no run in
    flight), and one line for each hour left alone, saying why."""
    materialized = materialized_raw_minutes(instance, raw_keys, hours)
    busy = hours_in_flight(instance, job_name)
    ready, notes = [], []
    for hour in hours:
        if hour in busy:
            notes.append(f"hour {hour}: a run building it is in flight")
        elif latest_build_started(instance, hour) is not None:
            notes.append(f"hour {hour}: already built")
        elif missing := describe_missing(raw_minutes_present(materialized, hour)):
            notes.append(
                f"hour {hour} waits for its raw minutes ({missing}; the live stream and "
                f"raw_trades_gap_backfill record them)"
            )
        else:
            ready.append(hour)
    return ready, notes


# ---- latest prices --------------------------------------------------------------------------------------------------
def ever_materialized(instance: DagsterInstance, key: AssetKey) -> bool:
    return bool(instance.fetch_materializations(AssetRecordsFilter(asset_key=key), limit=1).records)


def latest_prices_waits_for(instance: DagsterInstance | None, warehouse: WarehouseResource) -> str | None:
    """Why latest_prices cannot be built now (its upstream table is not in the warehouse yet); None when it can.
    While a dbt run holds the DuckDB file the instance answers instead: has candles_1m ever been built?"""
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
        if instance is None or ever_materialized(instance, LATEST_PRICES_UPSTREAM):
            return None  # a dbt run is writing; this run queues behind it in the duckdb pool
        where = "a dbt run holds the warehouse and no hour was ever built"
    return (
        f"waiting for the first hourly build: latest_prices is computed from {table}, which is not in "
        f"{warehouse.duckdb_path} yet ({where}); analytics_every_hour builds an hour at HH:05 once its raw "
        f"minutes are complete (or materialize an hour of the hourly dbt assets)"
    )
