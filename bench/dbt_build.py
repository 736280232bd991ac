"""dbt build time of the hourly silver and gold models, as Dagster runs them (`dbt build --select tag:hourly
--exclude tag:unpartitioned` with the partition's window as vars, dbt start-up included), on a temporary local lake.

The lake holds one UTC day of three symbols at BTC's rate (about 40 trades/s each, the simulator's market model,
10.4 million trades in 4,320 minute files, written in the lake's own Parquet format). Printed:
- one hour partition built into a fresh DuckDB file (goal <= 15 s);
- the full day as one range (what a single-run backfill does; goal <= 60 s);
- one hour rebuilt into the day's DuckDB file (the steady state: the schedule and the gap sensor).

    .venv/bin/python bench/dbt_build.py [--hours 24] [--rate 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from binance_simulator.market import Market, symbol_config  # noqa: E402
from crypto_assets.lake.paths import minute_file_path  # noqa: E402
from crypto_assets.lake.schema import DECIMAL, TIMESTAMP, TRADE_SCHEMA, table_to_parquet  # noqa: E402
from crypto_assets.minutes import MINUTE_MS  # noqa: E402
from crypto_assets_tests.analytics_data import run_dbt, window_text  # noqa: E402

DAY_MS = 1_763_683_200_000  # 2025-11-21 00:00 UTC
HOUR_MS = 3_600_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def decimal_column(units: np.ndarray) -> pa.Array:
    """Integers of 1e-8 as the lake's decimal128(19, 8) without a detour through strings (little-endian 128-bit
    values)."""
    words = np.zeros((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = np.where(units < 0, -1, 0)
    return pa.Array.from_buffers(DECIMAL, len(units), [None, pa.py_buffer(words.tobytes())])


def write_lake(root: Path, hours: int, rate: float) -> int:
    """Minute files for ``hours`` hours from DAY_MS of every symbol; returns the number of trades."""
    market = Market(
        [symbol_config(s, trades_per_second=rate, quiet_minute_probability=0.0) for s in SYMBOLS],
        seed=1,
        origin_ms=DAY_MS - HOUR_MS,
    )
    total = 0
    for symbol in SYMBOLS:
        for hour in range(DAY_MS, DAY_MS + hours * HOUR_MS, HOUR_MS):
            t = market[symbol].trades_between(hour, hour + HOUR_MS)
            bounds = np.searchsorted(t.time, np.arange(hour, hour + HOUR_MS + 1, MINUTE_MS), side="left")
            price, qty = decimal_column(t.price), decimal_column(t.qty)
            times = pa.array(t.time, pa.int64()).cast(TIMESTAMP)
            received = pa.array(t.time + 5, pa.int64()).cast(TIMESTAMP)
            table = pa.Table.from_arrays(
                [pa.array(t.id, pa.int64()), price, qty, times, pa.array(t.is_buyer_maker, pa.bool_()), received],
                schema=TRADE_SCHEMA,
            )
            for k in range(60):
                minute = hour + k * MINUTE_MS
                rows = table.slice(int(bounds[k]), int(bounds[k + 1] - bounds[k]))
                path = root / minute_file_path(symbol, minute)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(table_to_parquet(rows, {"symbol": symbol, "minute_start_ms": str(minute)}))
            total += len(t)
    return total


def dbt_build(lake: Path, db: Path, start_ms: int, end_ms: int, scratch: Path) -> float:
    """Seconds of one `dbt build` of the hourly models over [start_ms, end_ms) (dbt start-up included)."""
    dbt_vars = {
        "lake_url": str(lake),
        "symbols": ",".join(SYMBOLS),
        "window_start": window_text(start_ms),
        "window_end": window_text(end_ms),
    }
    started = time.perf_counter()
    done = run_dbt(["build", "--select", "tag:hourly", "--exclude", "tag:unpartitioned"], db, scratch, dbt_vars)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dbt build failed:\n{done.output[-6000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24, help="hours in the lake and in the range build")
    parser.add_argument("--rate", type=float, default=40.0, help="trades per second per symbol")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dbt-bench-") as tmp:
        root = Path(tmp)
        lake = root / "lake"
        started = time.perf_counter()
        trades = write_lake(lake, args.hours, args.rate)
        files = len(SYMBOLS) * args.hours * 60
        print(
            f"lake: {trades:,} trades in {files:,} minute files ({len(SYMBOLS)} symbols x {args.hours} h at "
            f"~{args.rate:g} trades/s), written in {time.perf_counter() - started:.1f} s"
        )
        last_hour = DAY_MS + (args.hours - 1) * HOUR_MS
        one = dbt_build(lake, root / "hour.duckdb", last_hour, last_hour + HOUR_MS, root / "s1")
        print(f"one hour partition, fresh DuckDB file: {one:.1f} s (goal <= 15 s)")
        day = dbt_build(lake, root / "day.duckdb", DAY_MS, DAY_MS + args.hours * HOUR_MS, root / "s2")
        print(f"{args.hours} hours as one range (single-run backfill): {day:.1f} s (goal <= 60 s for 24 h)")
        again = dbt_build(lake, root / "day.duckdb", last_hour, last_hour + HOUR_MS, root / "s3")
        print(f"one hour rebuilt into the {args.hours}-hour DuckDB file: {again:.1f} s (goal <= 15 s)")


if __name__ == "__main__":
    main()
