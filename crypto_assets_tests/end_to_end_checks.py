"""What the end-to-end tests check in a running deployment (``dagster dev`` or the production processes): streaming
runs, the minutes the stream recorded, the partitions still missing, a run's step processes, and the lake against the
exchange's ground truth."""

import time
from collections.abc import Callable
from pathlib import Path

import msgspec
from dagster import AssetRecordsFilter, DagsterEventType, RunsFilter

from crypto_assets.defs.names import raw_trades_key
from crypto_assets.exchange.models import Trade
from crypto_assets.ingest.capture_process import CaptureConfig
from crypto_assets.lake import Lake, trades_to_table
from crypto_assets.minutes import MINUTE_MS, minute_key, minute_keys

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
STREAM_QUERY = """
query ($partition: String!) { assetOrError(assetKey: {path: ["raw_trades", "btcusdt"]}) {
    ... on Asset { assetMaterializations(partitions: [$partition]) { partition metadataEntries { label
        ... on TextMetadataEntry { text } ... on IntMetadataEntry { intRepr } } } } } }
"""


def stream_runs(instance, statuses=None):
    return instance.get_runs(RunsFilter(job_name="live_trades_stream", statuses=statuses or []))


def stream_minutes_recorded(instance, symbol: str, after_ms: int) -> list[str]:
    """The minutes from ``after_ms`` on that the stream recorded. Only those minutes' records are read: the tests poll
    this every few seconds while gap runs record hours of minutes, on a machine the whole suite loads."""
    keys = minute_keys(after_ms, int(time.time() * 1000))
    if not keys:
        return []
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=raw_trades_key(symbol), asset_partitions=keys), limit=10 * len(keys)
    ).records
    return [
        r.partition_key
        for r in records
        if r.asset_materialization.metadata["source"].value in ("stream", "stream+rest")
    ]


def missing_partitions(instance, first_ms: int, end_ms: int, symbols=SYMBOLS) -> dict[str, list[str]]:
    out = {}
    for symbol in symbols:
        done = instance.get_materialized_partitions(raw_trades_key(symbol))
        missing = [minute_key(m) for m in range(first_ms, end_ms, MINUTE_MS) if minute_key(m) not in done]
        if missing:
            out[symbol] = missing
    return out


def step_pids(instance, run) -> set[int]:
    """The pids of a run's step processes (from its STEP_START events): what a kill -9 of the run's process hits."""
    return {e.dagster_event.pid for e in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)}


def assert_lake_equals_exchange(
    lake: Lake, truth_of: Callable[[str, int], list[Trade]], symbols, first_ms: int, end_ms: int
) -> dict[str, list[int]]:
    """Every minute file of [first_ms, end_ms) in ``lake`` equals the exchange's ground truth (``truth_of(symbol,
    minute_ms)``, e.g. ``Demo.minute_truth``) trade by trade; returns each symbol's trade ids in the order the files
    hold them."""
    ids: dict[str, list[int]] = {}
    for symbol in symbols:
        for minute in range(first_ms, end_ms, MINUTE_MS):
            stored = lake.read_minute(symbol, minute)
            assert stored is not None, f"{symbol} {minute_key(minute)} not in the lake"
            expected = trades_to_table(truth_of(symbol, minute))
            assert stored.drop_columns("received_at").equals(expected.drop_columns("received_at")), (
                f"{symbol} {minute_key(minute)} differs"
            )
            ids.setdefault(symbol, []).extend(stored.column("trade_id").to_pylist())
    return ids


def capture_processes(lake: str | Path) -> list[int]:
    """The pids of the capture processes writing to ``lake`` (a folder or URL; from /proc: their command line names
    it)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        module = b"crypto_assets.ingest.capture_process"
        if module in args and args.index(module) + 1 < len(args):
            try:  # its one argument: the CaptureConfig, as JSON
                config = msgspec.json.decode(args[args.index(module) + 1], type=CaptureConfig)
            except msgspec.DecodeError:
                continue
            if config.lake_url == str(lake):
                pids.append(int(cmdline.parent.name))
    return pids
