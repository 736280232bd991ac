"""What the Dagster instance costs: event rows, database bytes and seconds per symbol-day of raw_trades, and the gap
sensor's tick time with 3 and with 100 symbols, on SQLite (``dagster dev``'s default) and on PostgreSQL
(``deploy/dagster.yaml``'s storage).

Storages, a fresh database for each measurement:
- SQLite: ``DagsterInstance.local_temp`` in a throw-away folder; bytes = the size of its ``.db`` files;
- PostgreSQL: a throw-away server (``crypto_assets_tests/postgres_server.py``: this machine's ``initdb`` / ``pg_ctl``)
  on a free port, the instance configured as in ``deploy/dagster.yaml`` (psycopg2); bytes = ``pg_database_size``.

Recording: one real run of ``raw_trades/solusdt`` over ``--minutes`` (default 60) minutes of an in-process simulator
on a fixed clock (a slow symbol: the REST path, whose events are the same as the archive's). Rows = the run's event
log entries (``all_logs``), of which asset events (a materialization and three checks per minute) grow with minutes;
bytes = after the run less before it; seconds = the run's wall time (fetching ~1,800 trades over REST included, a
second or two). Each figure is then scaled to a symbol-day (1,440 minutes), the run's fixed rows (start, step, log
lines) with it: an upper bound.

Gap sensor tick: ``raw_trades_gap_backfill`` as the definitions build it for ``--tick-symbols`` symbols (BTCUSDT,
ETHUSDT, SOLUSDT, then generic ``GEN<i>USDT`` pairs; ``CRYPTO_GAP_LOOKBACK_HOURS`` = ``--lookback-hours``, default 2;
every other setting its default), evaluated with ``build_sensor_context`` on the wall clock (Dagster's INFO lines
silenced meanwhile), against an in-process simulator listing every symbol since 5 minutes before the window, warmed
up first (``tick_market``). Each symbol's window is materialized (runless materializations, inserted in bulk) but
for three minutes (``HOLES``), so every tick has runs to request. Timed: the first tick (no cursor: each symbol's
first trade is looked up over REST, one ``historicalTrades`` request each, on a loopback: a real exchange adds its
round trip per symbol), then ``--ticks`` ticks each with the cursor of the one before (nothing launched: the same
gaps, nothing new). By default only the window is materialized; a tick reads every materialized partition of each
symbol (one grouped query per symbol over all its materialization events, whatever their age), so
``--history-days`` materializes that many days before the window too.

    .venv/bin/python bench/instance_cost.py [--minutes 60] [--skip-postgres] [--tick-symbols 3,100]
        [--lookback-hours 2] [--ticks 5] [--history-days 0] [--skip-ticks]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from dagster import AssetMaterialization, DagsterEventType, DagsterInstance, materialize
from dagster._core.events import DagsterEvent, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.definitions import build_definitions
from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG, raw_trades_key
from crypto_assets.defs.partitions import minute_partitions
from crypto_assets.defs.raw import raw_resources
from crypto_assets.defs.raw.assets import build_raw_trades_asset
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.exchange.archive import day_start_ms
from crypto_assets.minutes import MINUTE_MS, floor_minute, minute_key
from crypto_assets.settings import Settings
from crypto_assets_tests.defs.raw.conftest import sensor_context  # noqa: E402
from crypto_assets_tests.postgres_server import PostgresServer, missing_reason, postgres_server  # noqa: E402

SYMBOL = "SOLUSDT"
DAY = "2025-01-01"
D1 = day_start_ms(DAY)
NOW = D1 + 86_400_000 + 6 * 3_600_000  # the simulator's clock: 2025-01-02 06:00, the day before complete
MINUTES_PER_DAY = 1440
PG_DEPLOY = "PostgreSQL"  # deploy/dagster.yaml's storages (the event log holding its connections)
PG_PLAIN = "PostgreSQL, dagster-postgres alone"
EVENT_BATCH_SIZE = "1000"  # DAGSTER_EVENT_BATCH_SIZE, as deploy/.env.example sets it
NO_CAPTURE = """compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""
GAP_SENSOR = "raw_trades_gap_backfill"
TICK_BASE_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
HOLES = (3, 4, 40)  # minutes before the current one left unmaterialized in every symbol's window
INSERT_BATCH = 2000  # events per insert statement


class FixedClock:
    def __call__(self) -> int:
        return NOW


class SqliteStorage:
    name = "SQLite"

    def __init__(self, folder: Path):
        self.folder = folder

    @contextmanager
    def instance(self, label: str) -> Iterator[DagsterInstance]:
        home = self.folder / label
        home.mkdir()
        with DagsterInstance.local_temp(str(home)) as instance:
            yield instance

    def bytes(self, label: str) -> int:
        return sum(p.stat().st_size for p in (self.folder / label).rglob("*.db"))


class PostgresStorage:
    """A database per instance on the throw-away server, configured as ``deploy/dagster.yaml`` configures its
    storage (``deploy``), or as dagster-postgres's plain ``storage: postgres``."""

    def __init__(self, pg: PostgresServer, folder: Path, deploy: bool = True):
        self.pg, self.folder, self.deploy = pg, folder, deploy
        self.name = PG_DEPLOY if deploy else PG_PLAIN

    @contextmanager
    def instance(self, label: str) -> Iterator[DagsterInstance]:
        self.pg.create_database(label)
        home = self.folder / label
        home.mkdir()
        (home / "dagster.yaml").write_text(NO_CAPTURE + self.pg.instance_yaml(label, deploy_storages=self.deploy))
        with DagsterInstance.from_config(str(home)) as instance:
            yield instance

    def bytes(self, label: str) -> int:
        return self.pg.database_bytes(label)


@contextmanager
def storage_of(name: str, folder: Path) -> Iterator[SqliteStorage | PostgresStorage]:
    """``name``: "SQLite", PG_DEPLOY or PG_PLAIN."""
    folder.mkdir()
    if name == "SQLite":
        yield SqliteStorage(folder)
        return
    with postgres_server(folder / "pg") as pg:
        yield PostgresStorage(pg, folder, deploy=name == PG_DEPLOY)


# ---- recording a run -------------------------------------------------------------------------------------------
def run_once(sim: Simulator, instance: DagsterInstance, lake: str, minutes: int) -> tuple[int, float]:
    """Materialize ``minutes`` minutes of the day in one run: (event log entries of the run, seconds)."""
    asset = build_raw_trades_asset(SYMBOL, minute_partitions(2, now=datetime.fromtimestamp(NOW / 1000, UTC)))
    first = D1 + 10 * 3_600_000
    started = time.monotonic()
    result = materialize(
        [asset],
        resources=raw_resources(
            ExchangeResource(rest_url=sim.rest_url, ws_url="ws://127.0.0.1:1", symbols=[SYMBOL]),
            LakeResource(url=lake),
        ),
        instance=instance,
        tags={RANGE_START_TAG: minute_key(first), RANGE_END_TAG: minute_key(first + (minutes - 1) * MINUTE_MS)},
    )
    seconds = time.monotonic() - started
    assert result.success
    return len(instance.all_logs(result.run_id)), seconds


def measure_recording(storage, sim: Simulator, minutes: int) -> tuple[int, int, float]:
    """(event rows, database bytes, seconds) of one run over ``minutes`` minutes."""
    with storage.instance("recording") as instance:
        before = storage.bytes("recording")
        rows, seconds = run_once(sim, instance, str(storage.folder / "lake"), minutes)
        return rows, storage.bytes("recording") - before, seconds


# ---- the gap sensor's tick ---------------------------------------------------------------------------------------
def tick_symbols(count: int) -> list[str]:
    """The default three, then generic pairs (the simulator lists any symbol it is configured with)."""
    return list(TICK_BASE_SYMBOLS[:count]) + [f"GEN{i:03d}USDT" for i in range(count - len(TICK_BASE_SYMBOLS))]


def record_materializations(instance: DagsterInstance, symbol: str, minutes: list[int]) -> None:
    """``minutes`` of ``raw_trades/<symbol>`` materialized, as the runless events ``report_runless_asset_event``
    writes: all but the newest in bulk inserts into the event index (one event at a time costs ~20 ms on SQLite), the
    newest through ``report_runless_asset_event`` itself, which also updates the asset's own row."""
    key = raw_trades_key(symbol)
    entries = [
        EventLogEntry(
            user_message="",
            level=logging.INFO,
            job_name=RUNLESS_JOB_NAME,
            run_id=RUNLESS_RUN_ID,
            error_info=None,
            timestamp=time.time(),
            dagster_event=DagsterEvent(
                event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                event_specific_data=StepMaterializationData(AssetMaterialization(key, partition=minute_key(m))),
                job_name=RUNLESS_JOB_NAME,
            ),
        )
        for m in minutes[:-1]
    ]
    storage = instance.event_log_storage
    for i in range(0, len(entries), INSERT_BATCH):
        with storage.index_connection() as conn:
            conn.execute(storage.prepare_insert_event_batch(entries[i : i + INSERT_BATCH]))
    instance.report_runless_asset_event(AssetMaterialization(key, partition=minute_key(minutes[-1])))


@contextmanager
def tick_market(count: int, lookback_hours: int, budget_dir: Path) -> Iterator[tuple[Simulator, list[str], Path]]:
    """A simulator listing ``count`` symbols since 5 minutes before the window, each symbol's first trade asked for
    once before any tick: a cold simulator builds a symbol's history on its first request (0.1-0.5 s per symbol
    here), which a real exchange does not. Its weight limit (which clients learn from ``exchangeInfo``) is lifted:
    the warm-up and the first ticks of both storages, 25 weight per symbol each, fall within a few minutes. Every
    client of the simulator shares the weight budget in ``budget_dir``."""
    symbols = tick_symbols(count)
    config = SimulatorConfig(
        symbols=[symbol_config(s, trades_per_second=0.2, burst_probability=0.0) for s in symbols],
        history_minutes=lookback_hours * 60 + 5,
        weight_per_minute=10**9,
    )
    with Simulator(config) as sim:
        exchange = ExchangeResource(
            rest_url=sim.rest_url, ws_url="ws://127.0.0.1:1", symbols=symbols, weight_budget_dir=str(budget_dir)
        )
        client = exchange.rest_client()
        try:
            for symbol in symbols:
                assert client.first_trade(symbol) is not None
        finally:
            client.close()
        yield sim, symbols, budget_dir


def measure_ticks(
    storage, sim: Simulator, symbols: list[str], budget_dir: Path, lookback_hours: int, history_days: int, ticks: int
) -> tuple[float, list[float], int, float]:
    """(first tick s, steady ticks s, materializations recorded, setup s) for ``symbols``, listed by ``sim``; each
    symbol materialized over the window and ``history_days`` before it."""
    label = f"ticks_{len(symbols)}"
    started = time.monotonic()
    with storage.instance(label) as instance:
        settings = Settings.from_env(
            {
                "CRYPTO_SYMBOLS": ",".join(symbols),
                "BINANCE_REST_URL": sim.rest_url,
                "CRYPTO_GAP_LOOKBACK_HOURS": str(lookback_hours),
                "CRYPTO_WEIGHT_BUDGET_DIR": str(budget_dir),
                "CRYPTO_LAKE_URL": str(storage.folder / label / "lake"),
            },
            dotenv_path=None,
        )
        defs = build_definitions(settings)
        sensor = defs.resolve_sensor_def(GAP_SENSOR)
        now_minute = floor_minute(int(time.time() * 1000))
        holes = {now_minute - h * MINUTE_MS for h in HOLES}
        first_minute = now_minute - (lookback_hours * 60 + history_days * MINUTES_PER_DAY) * MINUTE_MS
        minutes = [m for m in range(first_minute, now_minute, MINUTE_MS) if m not in holes]
        for symbol in symbols:
            record_materializations(instance, symbol, minutes)
        setup = time.monotonic() - started

        def tick(cursor: str | None) -> tuple[float, str]:
            context = sensor_context(defs, sensor, instance, cursor)
            began = time.monotonic()
            result = sensor.evaluate_tick(context)
            seconds = time.monotonic() - began
            assert result.run_requests, result.skip_message  # the holes are due
            return seconds, result.cursor

        logging.disable(logging.INFO)  # the sensor's own logger prints a line per symbol's first trade
        try:
            first, cursor = tick(None)
            known = json.loads(cursor)["first_trades"]
            assert len(known) == len(symbols), f"first trades known for {len(known)} of {len(symbols)} symbols"
            steady = []
            for _ in range(ticks):
                seconds, cursor = tick(cursor)
                steady.append(seconds)
        finally:
            logging.disable(logging.NOTSET)
    return first, steady, len(minutes) * len(symbols), setup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, default=60, help="minutes of the recorded run")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--tick-symbols", default="3,100", help="symbol counts the gap sensor is timed with")
    parser.add_argument("--lookback-hours", type=int, default=2, help="CRYPTO_GAP_LOOKBACK_HOURS of the timed sensor")
    parser.add_argument("--ticks", type=int, default=5, help="steady-state ticks timed after the first")
    parser.add_argument(
        "--history-days", type=int, default=0, help="days materialized before the window too (a tick reads them)"
    )
    parser.add_argument("--skip-ticks", action="store_true", help="only the recording figures")
    args = parser.parse_args()
    os.environ["DAGSTER_EVENT_BATCH_SIZE"] = EVENT_BATCH_SIZE
    counts = [] if args.skip_ticks else [int(n) for n in args.tick_symbols.split(",") if n.strip()]
    scale = MINUTES_PER_DAY / args.minutes
    config = SimulatorConfig(
        symbols=[symbol_config(SYMBOL, trades_per_second=0.5, burst_probability=0.0)], origin_ms=D1 - 2 * 3_600_000
    )
    names = ["SQLite"] + (["PostgreSQL"] if not args.skip_postgres and missing_reason() is None else [])
    with tempfile.TemporaryDirectory(prefix="instance-cost-") as tmp, ExitStack() as markets:
        started = time.monotonic()
        tick_markets = [
            markets.enter_context(tick_market(count, args.lookback_hours, Path(tmp) / f"weight_budget_{count}"))
            for count in counts
        ]
        if counts:
            print(
                f"tick simulators for {args.tick_symbols} symbols started and warmed in "
                f"{time.monotonic() - started:.0f} s",
                flush=True,
            )
        for name in names:
            folder = Path(tmp) / name
            with storage_of(name, folder) as storage:
                with Simulator(config, clock=FixedClock()) as sim:
                    rows, size, seconds = measure_recording(storage, sim, args.minutes)
                print(
                    f"{name}: one run of raw_trades/{SYMBOL.lower()} over {args.minutes} minutes: {rows} event rows, "
                    f"{size / 1e6:.2f} MB, {seconds:.1f} s -> per symbol-day ~{rows * scale:,.0f} rows, "
                    f"~{size * scale / 1e6:.0f} MB, ~{seconds * scale / 60:.1f} min of recording "
                    f"({seconds / max(rows, 1) * 1000:.1f} ms per event row)",
                    flush=True,
                )
                history = f" + {args.history_days} day(s) of history" if args.history_days else ""
                for sim, symbols, budget_dir in tick_markets:
                    first, steady, recorded, setup = measure_ticks(
                        storage, sim, symbols, budget_dir, args.lookback_hours, args.history_days, args.ticks
                    )
                    print(
                        f"  gap sensor tick, {name}, {len(symbols)} symbols, {args.lookback_hours} h window{history} "
                        f"({recorded:,} minutes materialized, set up in {setup:.0f} s): first {first:.2f} s, "
                        f"steady median {statistics.median(steady):.2f} s (max {max(steady):.2f} s of {len(steady)})",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
