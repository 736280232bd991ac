"""What loading a day of one symbol at BTC's rate costs through ``raw_trades_io_manager``: seconds, trades per second
and peak resident memory, as a pyarrow Table, as an Arrow-backed pandas DataFrame and streamed as a
RecordBatchReader. Goals (the issue): at least 5 million trades/s, a peak within 2x the Arrow table's size, and the
streaming way bounded (tens of MB, not the day's size).

The lake (untimed, built once and reused: ``--lake-dir``, default bench/.cache/data_loading, gitignored): one UTC day
(``DAY``, 1,440 minute files) of BTCUSDT from the simulator's market model at its default BTC rate (~40 trades/s
plus bursts and quiet minutes: ~3.7 million trades), generated an hour at a time in vectorised form, converted by the
lake's own ``columns_to_table`` (decimal strings built by pyarrow compute) and written minute by minute with
``LocalLake.write_table``, so the files are exactly what the pipeline writes. ``received_at`` is filled as the live
stream fills it (BTC is captured live): the trade's time plus a few ms of latency, never decreasing; with
``--received-at archive`` it is null, as the archive backfill writes it. A ``COMPLETE.json`` in that folder says
the day is whole, how it was built and how many trades it holds; without it (or built otherwise) the day's folder is
rebuilt (a day folder the bench did not write, with neither that file nor its ``BUILDING.json``, is never removed:
the bench stops).

The instance (untimed): a throw-away SQLite instance (``DagsterInstance.local_temp`` in a temp folder) with the 1,440
minute partitions of ``raw_trades/btcusdt`` recorded as runless materializations (bulk-inserted as
``bench/instance_cost.py`` does, the last through ``report_runless_asset_event``), so the IO manager's check that
every minute is recorded is the real one.

Measured, each (mode, repeat) in a fresh subprocess, so that its memory figures are its own: imports, the instance
opened and the input context built as ``AssetValueLoader`` builds it (``build_input_context`` with the day's
``PartitionKeyRange``, ``minute_partitions`` covering the day, ``resolve_dagster_type`` of the annotation, the
instance), then the peak RSS reset (``/proc/self/clear_refs``; else the baseline is taken as is) and
``RawTradesIOManager(lake=LakeResource(url=...)).load_input(context)`` timed:
- ``table``: pyarrow.Table; ``pandas``: pandas.DataFrame (Arrow-backed); both: wall seconds, CPU seconds of the
  process, trades/s, peak RSS above the baseline (VmHWM - VmRSS before), the value's ``nbytes`` (the DataFrame's
  ``memory_usage(deep=True)``), peak / the Arrow table's ``nbytes``, and the Arrow memory pool's peak;
- ``stream``: pyarrow.RecordBatchReader consumed batch by batch (rows counted, each batch dropped): the same figures;
- ``check``: ``materialized_minutes`` for the day alone (the recorded-minutes query ``load_input`` makes first), so
  one sees how the time divides between the instance and the lake.
Each process loads once: a step of a run loads its input once too (the SQLite connection, Arrow's thread pools and
allocator start cold). The files are in the page cache (just built or read by the previous process): a lake on
local disk that was read recently, not a cold disk. Medians of ``--repeat`` processes; the peak's maximum too.

    .venv/bin/python bench/data_loading.py [--repeat 3] [--lake-dir bench/.cache/data_loading]
        [--received-at stream|archive] [--modes check,table,pandas,stream]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetKey, DagsterInstance, PartitionKeyRange, build_input_context
from dagster._core.types.dagster_type import resolve_dagster_type

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from binance_simulator.market import UNITS, Market, symbol_config  # noqa: E402
from crypto_assets.defs.names import raw_trades_key  # noqa: E402
from crypto_assets.defs.partitions import materialized_minutes, minute_partitions  # noqa: E402
from crypto_assets.defs.raw.io_manager import RawTradesIOManager  # noqa: E402
from crypto_assets.defs.raw.resources import LakeResource  # noqa: E402
from crypto_assets.exchange.archive import day_start_ms  # noqa: E402
from crypto_assets.lake import LocalLake  # noqa: E402
from crypto_assets.lake.schema import TIMESTAMP, columns_to_table  # noqa: E402
from crypto_assets.minutes import MINUTE_MS, minute_key  # noqa: E402

SYMBOL = "BTCUSDT"
KEY: AssetKey = raw_trades_key(SYMBOL)
DAY = "2025-01-01"
D0 = day_start_ms(DAY)
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MINUTES = range(D0, D0 + DAY_MS, MINUTE_MS)
SEED = 1
MARKER = "COMPLETE.json"
BUILDING = "BUILDING.json"  # a build under way or interrupted: the day's folder is this bench's to remove
DEFAULT_LAKE = ROOT / "bench" / ".cache" / "data_loading"
MODES = ("check", "table", "pandas", "stream")
TYPES = {"table": pa.Table, "pandas": pd.DataFrame, "stream": pa.RecordBatchReader}
GOAL_RATE = 5_000_000  # trades/s
GOAL_RATIO = 2.0  # peak RSS / the Arrow table's nbytes
STREAM_BOUND_MB = 64  # "tens of MB"
MB = 1 << 20


# ---- the lake ----------------------------------------------------------------------------------------------------
def decimal_strings(units: np.ndarray) -> pa.Array:
    """Non-negative int64 counts of 1e-8 as Binance's 8-decimal strings ('96748.61000000'), in pyarrow compute."""
    whole, frac = np.divmod(units, UNITS)
    return pc.binary_join_element_wise(
        pa.array(whole).cast(pa.string()), pc.utf8_lpad(pa.array(frac).cast(pa.string()), 8, "0"), "."
    )


def build_lake(lake_dir: Path, received_at: str) -> dict:
    """The day in ``lake_dir`` (reused when its marker says it is whole and built the same way): its marker."""
    wanted = {"symbol": SYMBOL, "day": DAY, "seed": SEED, "received_at": received_at}
    marker = lake_dir / MARKER
    lake = LocalLake(lake_dir)
    building = lake_dir / BUILDING
    if marker.exists():
        built = json.loads(marker.read_text())
        whole = all(os.path.isfile(lake.path_of(SYMBOL, m)) for m in MINUTES)
        if whole and {k: built.get(k) for k in wanted} == wanted:
            return {**built, "reused": True}
        building.write_text(marker.read_text())
        marker.unlink()
    day_folder = Path(lake.path_of(SYMBOL, D0)).parent
    if day_folder.exists() and not building.exists():  # never remove a day this bench did not write
        sys.exit(f"{day_folder} was not written by this bench (no {MARKER}): choose another --lake-dir")
    lake_dir.mkdir(parents=True, exist_ok=True)
    building.write_text(json.dumps(wanted) + "\n")
    shutil.rmtree(day_folder, ignore_errors=True)  # write_table merges: start from no file at all
    started = time.perf_counter()
    market = Market([symbol_config(SYMBOL)], seed=SEED, origin_ms=D0)
    latency = np.random.default_rng(SEED)
    trades = 0
    for hour in range(D0, D0 + DAY_MS, HOUR_MS):
        t = market[SYMBOL].trades_between(hour, hour + HOUR_MS - 1)
        table = columns_to_table(
            SYMBOL,
            pa.array(t.id, pa.int64()),
            decimal_strings(t.price),
            decimal_strings(t.qty),
            pa.array(t.time, pa.int64()),
            pa.array(t.is_buyer_maker, pa.bool_()),
        )
        if received_at == "stream":  # a few ms after the trade, in the order the stream delivers them
            received = np.maximum.accumulate(t.time + latency.integers(1, 30, len(t)))
            table = table.set_column(5, "received_at", pa.array(received, pa.int64()).cast(TIMESTAMP))
        bounds = np.searchsorted(t.time, np.arange(hour, hour + HOUR_MS + 1, MINUTE_MS))
        for i, minute in enumerate(range(hour, hour + HOUR_MS, MINUTE_MS)):
            lake.write_table(SYMBOL, minute, table.slice(bounds[i], bounds[i + 1] - bounds[i]))
        trades += len(t)
    files = [Path(lake.path_of(SYMBOL, m)) for m in MINUTES]
    built = {
        **wanted,
        "trades": trades,
        "files": len(files),
        "file_bytes": sum(f.stat().st_size for f in files),
        "build_s": round(time.perf_counter() - started, 1),
    }
    marker.write_text(json.dumps(built, indent=1) + "\n")
    building.unlink()
    return {**built, "reused": False}


# ---- the instance --------------------------------------------------------------------------------------------------
def record_day(home: str) -> None:
    """The day's 1,440 minutes of raw_trades/btcusdt recorded in the instance in ``home``."""
    from instance_cost import record_materializations  # bulk inserts: one event at a time is ~20 ms on SQLite

    with DagsterInstance.local_temp(home) as instance:
        record_materializations(instance, SYMBOL, list(MINUTES))
        recorded = materialized_minutes(instance, KEY, D0, D0 + DAY_MS)
    assert len(recorded) == len(MINUTES), f"{len(recorded)} minutes recorded, not {len(MINUTES)}"


# ---- one measurement, in its own process -------------------------------------------------------------------------
def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024
    return found


def reset_peak() -> bool:
    """The peak RSS (VmHWM) reset to the current RSS (Linux >= 4.0), False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, lake_dir: str, home: str) -> dict:
    instance = DagsterInstance.local_temp(home)
    partitions = minute_partitions(1, now=datetime.fromtimestamp((D0 + DAY_MS) / 1000, UTC))  # from the day's start
    context = build_input_context(
        name=None,
        asset_key=KEY,
        dagster_type=resolve_dagster_type(TYPES.get(mode, pa.Table)),
        asset_partition_key_range=PartitionKeyRange(minute_key(D0), minute_key(D0 + DAY_MS - MINUTE_MS)),
        asset_partitions_def=partitions,
        instance=instance,
    )
    manager = RawTradesIOManager(lake=LakeResource(url=lake_dir))
    window = context.asset_partitions_time_window
    assert (int(window.start.timestamp() * 1000), int(window.end.timestamp() * 1000)) == (D0, D0 + DAY_MS)
    gc.collect()
    reset = reset_peak()
    base = proc_status()["VmRSS"]
    pool = pa.default_memory_pool()
    pool_before = pool.bytes_allocated()
    cpu, started = cpu_seconds(), time.perf_counter()
    value_bytes = table_bytes = None
    if mode == "check":
        rows = len(materialized_minutes(instance, KEY, D0, D0 + DAY_MS))
    elif mode == "stream":
        reader = manager.load_input(context)
        rows = 0
        for batch in reader:
            rows += batch.num_rows
            del batch
    else:
        value = manager.load_input(context)
        rows = len(value)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    status = proc_status()
    if mode == "table":
        value_bytes = table_bytes = value.nbytes
    elif mode == "pandas":
        value_bytes = int(value.memory_usage(deep=True, index=False).sum())
        table_bytes = sum(value[c].array._pa_array.nbytes for c in value.columns)
    return {
        "mode": mode,
        "rows": rows,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_bytes": status["VmHWM"] - base,
        "peak_reset": reset,
        "base_bytes": base,
        "value_bytes": value_bytes,
        "table_bytes": table_bytes,
        "pool_peak_bytes": pool.max_memory() - pool_before,
        "pool_backend": pool.backend_name,
    }


def measure(mode: str, lake_dir: Path, home: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--lake-dir", str(lake_dir), "--instance-dir", home],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        sys.exit(f"the {mode} process failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- report ----------------------------------------------------------------------------------------------------------
def report(mode: str, runs: list[dict], expected_rows: int, day_table_bytes: int | None, check_s: float | None) -> str:
    rows = {r["rows"] for r in runs}
    want = len(MINUTES) if mode == "check" else expected_rows
    assert rows == {want}, f"{mode}: {rows} rows, expected {want}"
    wall = statistics.median(r["wall_s"] for r in runs)
    cpu = statistics.median(r["cpu_s"] for r in runs)
    peaks = [r["peak_bytes"] for r in runs]
    walls = ", ".join(f"{r['wall_s']:.3f}" for r in runs)
    if mode == "check":
        return f"  check  materialized_minutes of the day: {wall * 1000:.0f} ms (cpu {cpu * 1000:.0f} ms; runs {walls})"
    rate = want / wall
    line = (
        f"  {mode:<6} {wall:.3f} s (cpu {cpu:.2f} s; runs {walls}), {rate / 1e6:.2f} M trades/s, peak RSS above "
        f"baseline {statistics.median(peaks) / MB:.0f} MB (max {max(peaks) / MB:.0f}), Arrow pool peak "
        f"{statistics.median(r['pool_peak_bytes'] for r in runs) / MB:.0f} MB"
    )
    if check_s is not None:
        line += f"; the recorded-minutes check ~{check_s * 1000:.0f} ms of it ({check_s / wall:.0%})"
    if runs[0]["table_bytes"] is not None:
        line += (
            f"; value {runs[0]['value_bytes'] / MB:.0f} MB, Arrow table nbytes {runs[0]['table_bytes'] / MB:.0f} MB, "
            f"peak / nbytes {statistics.median(peaks) / runs[0]['table_bytes']:.2f}"
        )
    elif day_table_bytes:
        line += f"; {statistics.median(peaks) / day_table_bytes:.1%} of the day's table ({day_table_bytes / MB:.0f} MB)"
    return line


def summary(mode: str, runs: list[dict], expected_rows: int, day_table_bytes: int | None) -> str:
    wall = statistics.median(r["wall_s"] for r in runs)
    rate = expected_rows / wall
    peak = max(r["peak_bytes"] for r in runs)
    rate_ok = "met" if rate >= GOAL_RATE else "MISSED"
    text = f"  {mode:<6} rate {rate / 1e6:.2f} M trades/s vs >= {GOAL_RATE / 1e6:.0f} M: {rate_ok}"
    if mode == "stream":
        bounded = peak <= STREAM_BOUND_MB * MB
        of_day = f", {peak / day_table_bytes:.1%} of the day's table" if day_table_bytes else ""
        return text + (
            f"; memory {peak / MB:.0f} MB (max of the runs{of_day}) vs <= {STREAM_BOUND_MB} MB: "
            f"{'bounded' if bounded else 'NOT BOUNDED'}"
        )
    ratio = peak / runs[0]["table_bytes"]
    return (
        text
        + f"; peak {ratio:.2f}x the table's nbytes (max of the runs) vs <= {GOAL_RATIO:g}x: "
        + ("met" if ratio <= GOAL_RATIO else "MISSED")
    )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3, help="fresh processes per mode; the median is printed")
    p.add_argument("--lake-dir", type=Path, default=DEFAULT_LAKE, help=f"the cached lake (default {DEFAULT_LAKE})")
    p.add_argument(
        "--received-at",
        choices=("stream", "archive"),
        default="stream",
        help="received_at as the live stream writes it (default) or null as the archive backfill does",
    )
    p.add_argument("--modes", default=",".join(MODES), help=f"which of {','.join(MODES)} (default all)")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--instance-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, str(args.lake_dir.resolve()), args.instance_dir)))
        return
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        p.error(f"unknown modes {sorted(unknown)}; choose among {', '.join(MODES)}")
    lake_dir = args.lake_dir.resolve()
    print(f"load before: {load()} on {os.cpu_count()} CPUs")
    built = build_lake(lake_dir, args.received_at)
    how = "reused" if built["reused"] else f"built in {built['build_s']} s"
    print(
        f"lake {lake_dir} ({how}): {SYMBOL} {DAY}, {built['files']} minute files, {built['trades']:,} trades, "
        f"{built['file_bytes'] / MB:.1f} MB on disk ({built['file_bytes'] / built['trades']:.1f} B/trade), "
        f"received_at {built['received_at']}"
    )
    with tempfile.TemporaryDirectory(prefix="data-loading-") as home:
        started = time.perf_counter()
        record_day(home)
        print(f"instance {home}: {len(MINUTES)} minutes recorded in {time.perf_counter() - started:.1f} s (untimed)")
        results: dict[str, list[dict]] = {mode: [] for mode in modes}
        for _ in range(args.repeat):  # interleaved rounds: a change of the machine's load spreads over every mode
            for mode in modes:
                results[mode].append(measure(mode, lake_dir, home))
    first = next(iter(results.values()))[0]
    print(
        f"each a fresh process, median of {args.repeat}; baseline RSS after imports "
        f"~{first['base_bytes'] / MB:.0f} MB; "
        f"peak reset by clear_refs: {first['peak_reset']}; Arrow pool {first['pool_backend']}"
    )
    day_table = next((rs[0]["table_bytes"] for rs in results.values() if rs[0]["table_bytes"]), None)
    check_s = statistics.median(r["wall_s"] for r in results["check"]) if "check" in results else None
    for mode in modes:
        print(report(mode, results[mode], built["trades"], day_table, check_s), flush=True)
    print("against the goals:")
    for mode in modes:
        if mode != "check":
            print(summary(mode, results[mode], built["trades"], day_table))
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
