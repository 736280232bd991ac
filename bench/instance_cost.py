"""What recording raw_trades costs the Dagster instance: event rows, database bytes and seconds per symbol-day, on
SQLite (``dagster dev``'s default) and on PostgreSQL (``deploy/dagster.yaml``'s storage).

One real run of ``raw_trades/solusdt`` over ``--minutes`` (default 60) minutes of an in-process simulator on a fixed
clock (a slow symbol: the REST path, whose events are the same as the archive's), once per storage:
- SQLite: ``DagsterInstance.local_temp`` in a throw-away folder; bytes = the size of its ``.db`` files after the run,
  less their size before it;
- PostgreSQL: a throw-away server (``crypto_assets_tests/postgres_server.py``: this machine's ``initdb`` / ``pg_ctl``)
  on a free port, the instance configured as in ``deploy/dagster.yaml`` (psycopg2);
  bytes = ``pg_database_size`` after less before.
Rows = the run's event log entries (``all_logs``), of which asset events (a materialization and three checks per
minute) grow with minutes; seconds = the run's wall time (fetching ~1,800 trades over REST included, a second or
two). Each figure is then scaled to a symbol-day (1,440 minutes), the run's fixed rows (start, step, log lines)
with it: an upper bound.
The gap sensor's tick time with 3 and 100 symbols is not measured here yet.

    .venv/bin/python bench/instance_cost.py [--minutes 60] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dagster import DagsterInstance, materialize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG
from crypto_assets.defs.partitions import minute_partitions
from crypto_assets.defs.raw.assets import build_raw_trades_asset
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.exchange.archive import day_start_ms
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets.simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets_tests.postgres_server import missing_reason, postgres_server  # noqa: E402

SYMBOL = "SOLUSDT"
DAY = "2025-01-01"
D1 = day_start_ms(DAY)
NOW = D1 + 86_400_000 + 6 * 3_600_000  # the simulator's clock: 2025-01-02 06:00, the day before complete
MINUTES_PER_DAY = 1440
NO_CAPTURE = """compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""


class FixedClock:
    def __call__(self) -> int:
        return NOW


def run_once(sim: Simulator, instance: DagsterInstance, lake: str, minutes: int) -> tuple[int, float]:
    """Materialize ``minutes`` minutes of the day in one run: (event log entries of the run, seconds)."""
    asset = build_raw_trades_asset(SYMBOL, minute_partitions(2, now=datetime.fromtimestamp(NOW / 1000, UTC)))
    first = D1 + 10 * 3_600_000
    started = time.monotonic()
    result = materialize(
        [asset],
        resources={
            "exchange": ExchangeResource(rest_url=sim.rest_url, ws_url="ws://127.0.0.1:1", symbols=[SYMBOL]),
            "lake": LakeResource(url=lake),
        },
        instance=instance,
        tags={RANGE_START_TAG: minute_key(first), RANGE_END_TAG: minute_key(first + (minutes - 1) * MINUTE_MS)},
    )
    seconds = time.monotonic() - started
    assert result.success
    return len(instance.all_logs(result.run_id)), seconds


def sqlite_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in home.rglob("*.db"))


def measure_sqlite(sim: Simulator, minutes: int, folder: Path) -> tuple[int, int, float]:
    home = folder / "sqlite_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as instance:
        before = sqlite_bytes(home)
        rows, seconds = run_once(sim, instance, str(folder / "lake_sqlite"), minutes)
        return rows, sqlite_bytes(home) - before, seconds


def measure_postgres(sim: Simulator, minutes: int, folder: Path) -> tuple[int, int, float]:
    with postgres_server(folder / "pg") as pg:
        pg.create_database("dagster")
        home = folder / "pg_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(
            NO_CAPTURE
            + f"""storage:
  postgres:
    postgres_db:
      hostname: {pg.host}
      port: {pg.port}
      username: dagster
      password: ""
      db_name: dagster
      scheme: postgresql+psycopg2
"""
        )
        with DagsterInstance.from_config(str(home)) as instance:
            before = pg.database_bytes("dagster")
            rows, seconds = run_once(sim, instance, str(folder / "lake_pg"), minutes)
            return rows, pg.database_bytes("dagster") - before, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    scale = MINUTES_PER_DAY / args.minutes
    config = SimulatorConfig(
        symbols=[symbol_config(SYMBOL, trades_per_second=0.5, burst_probability=0.0)], origin_ms=D1 - 2 * 3_600_000
    )
    print(f"instance cost: one run of raw_trades/{SYMBOL.lower()} over {args.minutes} minutes, scaled to a symbol-day")
    with tempfile.TemporaryDirectory(prefix="instance-cost-") as tmp, Simulator(config, clock=FixedClock()) as sim:
        storages = [("SQLite", measure_sqlite)]
        if not args.skip_postgres and missing_reason() is None:
            storages.append(("PostgreSQL", measure_postgres))
        for name, measure in storages:
            folder = Path(tmp) / name
            folder.mkdir()
            rows, size, seconds = measure(sim, args.minutes, folder)
            print(
                f"  {name}: {rows} event rows, {size / 1e6:.2f} MB, {seconds:.1f} s for {args.minutes} minutes -> per "
                f"symbol-day ~{rows * scale:,.0f} rows, ~{size * scale / 1e6:.0f} MB, ~{seconds * scale / 60:.1f} min "
                f"of recording ({seconds / max(rows, 1) * 1000:.1f} ms per event row)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
