"""What recording minute partitions costs the Dagster instance, per minute, on SQLite (what ``dagster dev`` uses, on
the disk) and on PostgreSQL (a throw-away server from this machine's packages) with dagster-postgres's own storage
and with ``deploy/dagster.yaml``'s (its event log holding its connections: ``crypto_assets/defs/instance.py``),
in the shape this project used before (one materialization and three check evaluations per minute, each sent with
``context.log_event``) and in today's (``defs/raw/assets.py``: one ranged ``MaterializeResult`` whose partitions
carry their own metadata, batch-written where the storage can, and one yielded ``minute_complete`` evaluation per
minute).

A minute-partitioned asset shaped like ``raw_trades/<symbol>`` is materialized over ``--minutes`` partitions in one
run, in process, against a fresh instance; the op's wall time (Dagster writes each event while the op is suspended
at the yield or ``log_event`` that sent it) is the instance time of the recording. Printed per storage and shape:
events per minute, ms per minute, and the floor: one check evaluation written alone (Dagster 1.13 cannot batch
those). ``DAGSTER_EVENT_BATCH_SIZE`` is set as ``deploy/`` sets it (dagster-postgres batches; SQLite's storage
writes a batch one event at a time).

    .venv/bin/python bench/event_recording.py [--minutes 240] [--repeat 3] [--skip-postgres] [--folder /dev/shm]
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.
import argparse
import os
import statistics
import sys
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
    AssetSelection,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    PreviewWarning,
    TimeWindowPartitionsDefinition,
    materialize,
    multi_asset,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instance_cost import EVENT_BATCH_SIZE, PG_DEPLOY, PG_PLAIN, storage_of  # noqa: E402  (the SQLite / PostgreSQL instances of the other bench)

from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG  # noqa: E402
from crypto_assets_tests.postgres_server import missing_reason  # noqa: E402

warnings.filterwarnings("ignore", category=PreviewWarning)
OLD_CHECKS = ("trade_ids_dense", "agrees_with_kline", "values_sane")
NEW_CHECK = "minute_complete"
KEY = AssetKey(["raw_trades", "benchusdt"])
RECORDING_SECONDS: list[float] = []  # the op's wall time, per run
PARTITIONS = TimeWindowPartitionsDefinition(start="2026-11-01-00:00", cron_schedule="* * * * *", fmt="%Y-%m-%d-%H:%M")


def metadata(n: int, partition: str) -> dict:
    """A minute's materialization metadata, as the raw asset records it."""
    return {
        "dagster/row_count": MetadataValue.int(2600),
        "first_trade_id": 5_000_000_000 + n * 2600,
        "last_trade_id": 5_000_000_000 + n * 2600 + 2599,
        "base_volume": MetadataValue.text("12.34567800"),
        "quote_volume": MetadataValue.text("1234567.8901234500000000"),
        "source": MetadataValue.text("archive"),
        "archive_url": MetadataValue.url(
            "https://data.binance.vision/data/spot/daily/trades/X/X-trades-2026-11-01.zip"
        ),
        "archive_sha256": MetadataValue.text("0" * 64),
        "action": MetadataValue.text("written"),
        "lake_path": MetadataValue.path(f"/lake/raw_trades/symbol=BENCHUSDT/{partition}.parquet"),
    }


@multi_asset(
    name="before",
    specs=[AssetSpec(KEY, partitions_def=PARTITIONS)],
    check_specs=[AssetCheckSpec(name, asset=KEY, blocking=True, partitions_def=PARTITIONS) for name in OLD_CHECKS],
    partitions_def=PARTITIONS,
    can_subset=True,
)
def before(context: AssetExecutionContext):
    """Until 2026-12-07: every event sent on its own (``log_event``), three checks per minute."""
    started = time.perf_counter()
    for n, partition in enumerate(context.partition_keys):
        context.log_event(AssetMaterialization(asset_key=KEY, partition=partition, metadata=metadata(n, partition)))
        for name in OLD_CHECKS:
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


@multi_asset(
    name="after",
    specs=[AssetSpec(KEY, partitions_def=PARTITIONS)],
    check_specs=[AssetCheckSpec(NEW_CHECK, asset=KEY, blocking=True, partitions_def=PARTITIONS)],
    partitions_def=PARTITIONS,
    can_subset=True,
)
def after(context: AssetExecutionContext):
    """Today: one ranged output (per-partition metadata, batch-written) and one yielded check per minute."""
    started = time.perf_counter()
    if KEY in context.selected_asset_keys:
        for n, partition in enumerate(context.partition_keys):
            context.add_asset_metadata(metadata(n, partition), asset_key=KEY, partition_key=partition)
        yield MaterializeResult(asset_key=KEY)
    for partition in context.partition_keys:
        yield AssetCheckEvaluation(
            asset_key=KEY,
            check_name=NEW_CHECK,
            passed=True,
            partition=partition,
            blocking=True,
            description="every rule holds: trade_ids_dense, agrees_with_kline, values_sane",
            metadata={name: MetadataValue.bool(True) for name in OLD_CHECKS},
        )
    RECORDING_SECONDS.append(time.perf_counter() - started)


def measure(storage, label: str, asset, minutes: int, checks_only: bool = False) -> float:
    """Seconds the op spent recording ``minutes`` partitions in a fresh instance (``checks_only``: the check
    evaluations alone, the floor no batching reaches)."""
    keys = PARTITIONS.get_partition_keys()[:minutes]
    with storage.instance(label) as instance:
        result = materialize(
            [asset],
            selection=AssetSelection.checks_for_assets(asset) if checks_only else None,
            instance=instance,
            tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},  # no console line per event
        )
        assert result.success and len(instance.get_materialized_partitions(KEY)) == (0 if checks_only else minutes)
    return RECORDING_SECONDS[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=int, default=240, help="minute partitions recorded in each run (default 240)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the median is printed")
    p.add_argument("--skip-postgres", action="store_true")
    p.add_argument("--folder", type=Path, default=None, help="where the instances live (default: a temp folder)")
    args = p.parse_args()
    os.environ["DAGSTER_EVENT_BATCH_SIZE"] = EVENT_BATCH_SIZE
    postgres = [PG_PLAIN, PG_DEPLOY] if not args.skip_postgres and missing_reason() is None else []
    names = ["SQLite", *postgres]
    with tempfile.TemporaryDirectory(prefix="event-recording-", dir=args.folder) as tmp:
        for name in names:
            with storage_of(name, Path(tmp) / name.replace(" ", "_")) as storage:
                old, new, floor = (
                    statistics.median(
                        measure(storage, f"{label}{i}", asset, args.minutes, only) for i in range(args.repeat)
                    )
                    for label, asset, only in (
                        ("before", before, False),
                        ("after", after, False),
                        ("floor", after, True),
                    )
                )
            per_old, per_new = old / args.minutes * 1000, new / args.minutes * 1000
            print(
                f"{name}: {args.minutes} minutes recorded in one run, median of {args.repeat} "
                f"(DAGSTER_EVENT_BATCH_SIZE={EVENT_BATCH_SIZE})\n"
                f"  before (1 materialization + {len(OLD_CHECKS)} checks per minute, each logged alone): "
                f"{old:.1f} s, {per_old:.1f} ms per minute\n"
                f"  after  (ranged output, batch-written, + 1 yielded check per minute):      "
                f"{new:.1f} s, {per_new:.1f} ms per minute ({per_old / per_new:.1f}x less)\n"
                f"  floor: the check evaluations alone (not batch-writable in Dagster 1.13): "
                f"{floor / args.minutes * 1000:.1f} ms per minute\n"
                f"  a symbol-day (1,440 minutes) before / after: {per_old * 1.44:.0f} s / {per_new * 1.44:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
