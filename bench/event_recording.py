"""What one recorded event costs Dagster's SQLite instance storage (what ``dagster dev`` uses): the floor under any
backfill that records minute partitions with their checks.

A minute-partitioned asset shaped like ``raw_trades/<symbol>`` (three partitioned, blocking checks) is materialized
over ``--minutes`` partitions in one run, in process, against a fresh SQLite instance; its op records each minute
the way the raw asset does (``context.log_event``: one materialization with a dozen metadata entries, then one
evaluation per check). Printed: milliseconds per event and per minute, and what a symbol-day (1,440 minutes) and the
archive bench's 7 days x 3 symbols would take to record at that rate in one process. ``--folder`` puts the instance
elsewhere (``/dev/shm``: the same storage without the disk's fsyncs).

    .venv/bin/python bench/event_recording.py                      # 240 minutes, instance on the disk (temp folder)
    .venv/bin/python bench/event_recording.py --folder /dev/shm    # the same in memory
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.
import argparse
import tempfile
import time
import warnings
from pathlib import Path

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    DagsterInstance,
    MetadataValue,
    PreviewWarning,
    TimeWindowPartitionsDefinition,
    materialize,
    multi_asset,
)

from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG

warnings.filterwarnings("ignore", category=PreviewWarning)
CHECKS = ("trade_ids_dense", "agrees_with_kline", "values_sane")
KEY = AssetKey(["raw_trades", "benchusdt"])
RECORDING_SECONDS: list[float] = []  # the op's loop alone (the run is in process)
PARTITIONS = TimeWindowPartitionsDefinition(start="2026-11-01-00:00", cron_schedule="* * * * *", fmt="%Y-%m-%d-%H:%M")


@multi_asset(
    specs=[AssetSpec(KEY, partitions_def=PARTITIONS)],
    check_specs=[AssetCheckSpec(name, asset=KEY, blocking=True, partitions_def=PARTITIONS) for name in CHECKS],
    partitions_def=PARTITIONS,
    can_subset=True,
)
def recorded_minutes(context: AssetExecutionContext):
    started = time.perf_counter()
    for n, partition in enumerate(context.partition_keys):
        metadata = {
            "dagster/row_count": MetadataValue.int(2600),
            "first_trade_id": 5_000_000_000 + n * 2600,
            "last_trade_id": 5_000_000_000 + n * 2600 + 2599,
            "base_volume": MetadataValue.text("12.34567800"),
            "quote_volume": MetadataValue.text("1234567.8901234500000000"),
            "source": MetadataValue.text("archive"),
            "archive_url": MetadataValue.url("https://data.binance.vision/data/spot/daily/trades/X/X.zip"),
            "archive_sha256": MetadataValue.text("0" * 64),
            "archive_klines_sha256": MetadataValue.text("1" * 64),
            "action": MetadataValue.text("written"),
            "lake_path": MetadataValue.path(f"/lake/raw_trades/symbol=BENCHUSDT/{partition}.parquet"),
        }
        context.log_event(AssetMaterialization(asset_key=KEY, partition=partition, metadata=metadata))
        for name in CHECKS:
            context.log_event(
                AssetCheckEvaluation(
                    asset_key=KEY,
                    check_name=name,
                    passed=True,
                    partition=partition,
                    blocking=True,
                    description=f"minute {partition}: 2600 trades",
                    metadata={"trades": 2600},
                )
            )
    RECORDING_SECONDS.append(time.perf_counter() - started)
    yield from ()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=int, default=240, help="minute partitions recorded in the run (default 240)")
    p.add_argument("--folder", type=Path, default=None, help="where the instance lives (default: a temp folder)")
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="event-recording-", dir=args.folder))
    keys = PARTITIONS.get_partition_keys()[: args.minutes]
    events = args.minutes * (1 + len(CHECKS))
    with DagsterInstance.local_temp(str(home)) as instance:
        result = materialize(
            [recorded_minutes],
            instance=instance,
            tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},  # no console line per event
        )
        assert result.success and len(instance.get_materialized_partitions(KEY)) == args.minutes
    seconds = RECORDING_SECONDS[-1]
    per_event = seconds / events
    per_day = per_event * 1440 * (1 + len(CHECKS))
    print(
        f"event recording, SQLite instance in {home.parent}: {args.minutes} minutes x (1 materialization + "
        f"{len(CHECKS)} checks) = {events} events recorded in {seconds:.1f} s\n"
        f"  {per_event * 1000:.1f} ms per event, {per_event * (1 + len(CHECKS)) * 1000:.0f} ms per minute partition\n"
        f"  a symbol-day (1,440 minutes): {per_day:.0f} s; 7 days x 3 symbols: {per_day * 21 / 60:.1f} min in one "
        f"process (the instance's one write lock keeps parallel processes from doing much better)"
    )


if __name__ == "__main__":
    main()
