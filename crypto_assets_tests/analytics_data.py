"""Lake data for the analytics tests (dbt and Dagster): two complete past hours of simulator ground truth, written
with the lake's own ``write_minute``, built once per test session and shared (a local lake per variant)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.defs.analytics.dbt_project import dbt_executable
from crypto_assets.lake import Lake, LocalLake
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets.settings import DBT_PROJECT_DIR
from crypto_assets_tests.ground_truth import truth

HOUR_MS = 3_600_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")  # 40, 20 and 5 trades/s; SOLUSDT has quiet minutes (5 %)


def hour_key(hour_ms: int) -> str:
    """The hour partition key of the hour starting at ``hour_ms`` (the key of its first minute)."""
    return minute_key(hour_ms)


def window_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Hours:
    """The two complete hours before the current one (H1, H2), and the simulator that traded them."""

    sim: Simulator
    h1: int
    h2: int

    @property
    def keys(self) -> tuple[str, str]:
        return hour_key(self.h1), hour_key(self.h2)


def start_simulator(now_ms: int) -> Simulator:
    """A started simulator (REST klines for the exactness test) whose history covers the two hours and one before."""
    h1 = now_ms // HOUR_MS * HOUR_MS - 2 * HOUR_MS
    config = SimulatorConfig(symbols=[symbol_config(s) for s in SYMBOLS], origin_ms=h1 - HOUR_MS, seed=7)
    return Simulator(config).__enter__()


_TRADES: dict[tuple[str, int], list] = {}


def minute_trades(sim: Simulator, symbol: str, minute_ms: int) -> list:
    key = (symbol, minute_ms)
    if key not in _TRADES:
        _TRADES[key] = truth(sim, symbol, minute_ms, minute_ms + MINUTE_MS)
    return _TRADES[key]


def write_hours(
    lake: Lake,
    sim: Simulator,
    hours_ms: Iterable[int],
    symbols: Iterable[str] = SYMBOLS,
    skip: Iterable[tuple[str, int]] = (),
) -> int:
    """Write every minute of ``hours_ms`` for ``symbols`` (minus the (symbol, minute) pairs in ``skip``)."""
    skipped, rows = set(skip), 0
    for hour in hours_ms:
        for symbol in symbols:
            for minute in range(hour, hour + HOUR_MS, MINUTE_MS):
                if (symbol, minute) not in skipped:
                    rows += lake.write_minute(symbol, minute, minute_trades(sim, symbol, minute)).rows
    return rows


def copy_lake(source: Path, target: Path, skip: Iterable[tuple[str, int]] = ()) -> LocalLake:
    shutil.copytree(source, target)
    lake = LocalLake(target)
    for symbol, minute in skip:
        Path(lake.path_of(symbol, minute)).unlink()
    return lake


@dataclass
class DbtRun:
    returncode: int
    output: str
    results: dict[str, dict]  # unique_id -> run result

    def status(self, name_fragment: str) -> list[str]:
        return [r["status"] for uid, r in self.results.items() if name_fragment in uid]


def run_dbt(
    command: list[str],
    duckdb_path: Path,
    scratch: Path,
    dbt_vars: dict | None = None,
    target: str = "dev",
    env: dict[str, str] | None = None,
) -> DbtRun:
    """Run the dbt CLI on the project (its own target and log folders under ``scratch``); the run results."""
    scratch.mkdir(parents=True, exist_ok=True)
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    values = {"duckdb_path": str(duckdb_path), **(dbt_vars or {})}
    args = [
        dbt_executable(),
        *command,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target",
        target,
        "--target-path",
        str(scratch / "target"),
        "--log-path",
        str(scratch / "logs"),
        "--vars",
        json.dumps(values),
    ]
    done = subprocess.run(
        args, cwd=DBT_PROJECT_DIR, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )
    results_path = (
        scratch / "target" / ("sources.json" if command[:2] == ["source", "freshness"] else "run_results.json")
    )
    results = {}
    if results_path.exists():
        results = {r["unique_id"]: r for r in json.loads(results_path.read_text())["results"]}
    return DbtRun(done.returncode, done.stdout + done.stderr, results)
