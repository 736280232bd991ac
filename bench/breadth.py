"""Breadth: the project at 500 simulator symbols (every USDT pair, `CRYPTO_SYMBOLS=quote:USDT`) under `dagster dev`,
on SQLite (default) or PostgreSQL (``--postgres``).

The exchange: ``python -m binance_simulator`` started by ``scripts/demo.sh`` (what ``make demo`` runs, driven by
``crypto_assets_tests/demo_process.Demo``) with BTCUSDT, ETHUSDT and SOLUSDT at their default rates (40, 20, 5
trades/s) and ``--quiet-symbols`` (default 497) generated quiet ones (0.01-0.5 trades/s, many empty minutes; seven in
eight quoted in USDT), ``--history-minutes`` of history (default 5). The project selects the USDT pairs among them
(about 440 of the 500), with a fresh DAGSTER_HOME and lake in a temporary folder, every other setting at its default
(so the gap sensor backfills each symbol's minutes before the stream started, as on any fresh deployment). With
``--postgres`` DAGSTER_HOME's dagster.yaml stores in a throw-away PostgreSQL server
(``crypto_assets_tests/postgres_server.py``) with ``deploy/dagster.yaml``'s storages and DAGSTER_EVENT_BATCH_SIZE as
in ``deploy/.env.example`` (the pooled event log, ``crypto_assets/defs/instance.py``), plus ``dagster.dev.yaml``'s
settings. ``--shards N`` sets ``CRYPTO_STREAM_SHARDS=N`` for ``dagster dev``: the keep-alive sensor keeps N streaming
runs, each with its own capture process and a share of the symbols.

Measured, in order:
1. code location loaded by ``dagster dev`` (seconds from start-up; its first load reads exchangeInfo);
2. a window of ``--minutes`` whole minutes (default 4), starting with the first whole minute after the capture
   process has run for a minute: CPU of the capture process (``python -m crypto_assets.ingest.capture_process``,
   found by its lake in /proc; with ``--shards`` each of them) and of its parent (the streaming run's step, which
   records the minutes in Dagster),
   as % of one core from /proc/<pid>/stat utime+stime over the window; peak RSS (VmHWM at the end; VmRSS sampled
   every 5 s); instance rows (``event_logs``: on SQLite every shard's .db file, on PostgreSQL the table) and bytes
   (every .db file of DAGSTER_HOME / ``pg_database_size``) at the window's start and end, per symbol-minute recorded
   in it (any source);
3. minute end -> recorded: for every streamed symbol (the universe kept in the lake) and every minute of the window,
   its materialization's event timestamp less the minute's end, over those recorded by the stream (source
   ``stream``); p50 / p95 / max, for each minute its first and last symbol recorded (the first: about when the capture
   process decided it; the spread: the writes of one minute's symbols), and how many of the expected symbol-minutes
   were recorded (by the stream, by any source) 20 s after the window;
4. the daemon's own ticks of ``raw_trades_gap_backfill``, ``live_stream_keepalive`` and ``symbol_universe`` over
   the whole run (GraphQL ``sensorState.ticks``: end less start), and each sensor evaluated directly
   (``build_sensor_context`` on the running instance, definitions built in this process) 3 times;
5. code location load time, in a fresh process: ``python -c "import crypto_assets.definitions"`` with the universe
   kept in the lake (the run's lake) and with an empty lake (the first load, which reads exchangeInfo), 2 times each;
6. the webserver's asset graph (``dagster dev``'s webserver): ``assetNodes`` with the fields the graph lays out
   (key, group, dependencies, kinds; all assets), the UI's ``AssetCatalogGroupTableQuery`` shape for one raw group,
   and a live-data query like the UI's ``AssetGraphLiveQuery`` (latest materialization, partition stats, latest run)
   over every raw asset, in batches of 50; 3 times each;
7. after ``dagster dev`` stopped: the gap sensor's tick at 500 symbols (the simulator's 500, as an explicit list;
   ``CRYPTO_GAP_LOOKBACK_HOURS`` = ``--lookback-hours``, default 2 as in instance_cost.py; deployed: 24, whose
   set-up, 720,000 bulk-inserted materializations, takes ~4 minutes here) on a fresh instance of the same
   storage, as ``bench/instance_cost.py`` does it (``record_materializations``: the window materialized in bulk, an
   in-process simulator with the weight limit lifted, warmed up): the first tick (no cursor: 500 first-trade
   lookups, at most 20 s of them per tick), then 3 ticks with gaps (3 holes per symbol: run requests) and 3 ticks
   with nothing to do (holes filled).

    .venv/bin/python bench/breadth.py [--postgres] [--shards 1] [--minutes 4] [--quiet-symbols 497]
        [--lookback-hours 2] [--skip-ticks]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from instance_cost import (  # noqa: E402
    EVENT_BATCH_SIZE,
    GAP_SENSOR,
    PostgresStorage,
    SqliteStorage,
    record_materializations,
)
from partitions_view import graphql  # noqa: E402
from stream_recovery_and_latency import percentile  # noqa: E402

from binance_simulator import Simulator, SimulatorConfig, symbol_config  # noqa: E402
from binance_simulator.process import SimulatorProcess  # noqa: E402
from crypto_assets.definitions import build_definitions  # noqa: E402
from crypto_assets.defs.names import raw_trades_key  # noqa: E402
from crypto_assets.defs.raw.resources import ExchangeResource  # noqa: E402
from crypto_assets.ingest.universe import Selection, kept  # noqa: E402
from crypto_assets.lake import LocalLake  # noqa: E402
from crypto_assets.minutes import MINUTE_MS, floor_minute, minute_key, minute_start_ms  # noqa: E402
from crypto_assets.settings import Settings  # noqa: E402
from crypto_assets_tests.defs.raw.conftest import sensor_context  # noqa: E402
from crypto_assets_tests.demo_process import PROJECT_ROOT, Demo  # noqa: E402
from crypto_assets_tests.end_to_end_checks import capture_processes  # noqa: E402
from crypto_assets_tests.postgres_server import postgres_server  # noqa: E402

BUSY = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
SENSORS = ("raw_trades_gap_backfill", "live_stream_keepalive", "symbol_universe")
LATENCY_GOAL_S = 5.0
TICK_GOAL_S = 5.0
HOLES = (3, 4, 40)  # minutes before the current one left unmaterialized per symbol in the "with gaps" ticks
CLK_TCK = os.sysconf("SC_CLK_TCK")
GRAPH_QUERY = """
query BreadthAssetGraph {
  assetNodes {
    id assetKey { path } groupName isPartitioned isMaterializable isExecutable jobNames kinds
    dependencyKeys { path } dependedByKeys { path }
    repository { id name location { id name } }
  }
}"""
GROUP_QUERY = """
query AssetCatalogGroupTableQuery($group: AssetGroupSelector) {
  assetNodes(group: $group) {
    id assetKey { path } groupName opNames description isPartitioned isObservable isMaterializable kinds
    owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    repository { id name location { id name } }
  }
}"""
LIVE_QUERY = """
query BreadthAssetGraphLive($assetKeys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $assetKeys, loadMaterializations: true) {
    id
    assetMaterializations(limit: 1) { timestamp runId }
    partitionStats { numMaterialized numMaterializing numPartitions numFailed }
  }
  assetsLatestInfo(assetKeys: $assetKeys) {
    id unstartedRunIds inProgressRunIds latestRun { id status endTime }
  }
}"""
TICKS_QUERY = """
query BreadthSensorTicks {
  repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name
    sensorState { ticks(limit: 500) { status timestamp endTimestamp } } } } } }
}"""


# ---- process figures from /proc -----------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15 of stat)


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class RssSampler:
    def __init__(self, pids: dict[str, int], every_s: float = 5.0):
        self.pids, self.every_s = pids, every_s
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for name, pid in self.pids.items():
                try:
                    self.peak[name] = max(self.peak[name], memory_kb(pid, "VmRSS"))
                except OSError:
                    pass

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(10)
        return self.peak


# ---- the instance's rows and bytes ---------------------------------------------------------------------------------
class InstanceSize:
    def __init__(self, home: Path, pg=None, database: str = "dagster"):
        self.home, self.pg, self.database = home, pg, database

    def rows_bytes(self) -> tuple[int, int]:
        if self.pg is not None:
            return int(self.pg.psql(self.database, "select count(*) from event_logs")), self.pg.database_bytes(
                self.database
            )
        rows = size = 0
        for path in self.home.rglob("*.db"):
            size += path.stat().st_size
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
                    rows += conn.execute("select count(*) from event_logs").fetchone()[0]
            except sqlite3.Error:
                pass  # no event_logs table (runs.db, schedules.db)
        return rows, size


# ---- the deployment ------------------------------------------------------------------------------------------------
class DevDeployment(Demo):
    """What ``scripts/demo.sh`` runs, started here: the simulator (``SimulatorProcess``) and ``dagster dev`` against
    it, without demo.sh's preflight, which fails with ``CRYPTO_SYMBOLS=quote:USDT`` (``crypto_assets/preflight.py``
    takes ``settings.symbols[0]``, empty for a quote selection: IndexError)."""

    def __init__(self, workdir: Path, env: dict[str, str], sim_args: list[str]):
        super().__init__(workdir, env)
        self.sim = SimulatorProcess(*sim_args, start_timeout_s=120)

    def start(self) -> None:
        self.sim.__enter__()
        self.sim_port, self.sim_url = self.sim.port, self.sim.rest_url
        self.env.update(
            BINANCE_REST_URL=self.sim.rest_url, BINANCE_WS_URL=self.sim.ws_url, BINANCE_ARCHIVE_URL=self.sim.rest_url
        )
        config = self.home / "dagster.yaml"
        if not config.exists():
            config.write_text((PROJECT_ROOT / "dagster.dev.yaml").read_text())
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(PROJECT_ROOT / ".venv/bin/dagster"), "dev", "-h", "127.0.0.1", "-p", str(self.dagster_port)]
            + ["-w", "workspace.yaml"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def stop(self) -> None:
        try:
            super().stop()
        except ProcessLookupError:
            self.log.close()
        finally:
            self.sim.stop()


def sensor_ticks(demo: Demo) -> dict[str, list[float]]:
    data, _ = graphql(demo.dagster_port, TICKS_QUERY)
    out: dict[str, list[float]] = {}
    for repo in data["repositoriesOrError"]["nodes"]:
        for sensor in repo["sensors"]:
            if sensor["name"] in SENSORS:
                out[sensor["name"]] = [
                    t["endTimestamp"] - t["timestamp"]
                    for t in sensor["sensorState"]["ticks"]
                    if t["endTimestamp"] and t["status"] != "STARTED"
                ]
    return out


def timed(fn, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return times


def spread(times: list[float]) -> str:
    if not times:
        return "none"
    return f"median {statistics.median(times):.2f} s, max {max(times):.2f} s (n = {len(times)})"


def load_time(env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/python"), "-c", "import crypto_assets.definitions"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - began


def stream_window(demo: Demo, minutes: int, size: InstanceSize, report, shards: int = 1) -> None:
    started = time.time()
    instance = demo.loaded_instance()
    report(f"dagster dev: code location loaded {time.time() - started:.0f} s after start-up")

    def all_captures() -> list[int] | None:
        found = capture_processes(demo.lake_path)
        return found if len(found) >= shards else None

    captures = demo.wait_for(f"{shards} capture process(es)", all_captures, 240 * shards, every_s=1)
    pids = {}
    for n, capture in enumerate(sorted(captures)):
        suffix = "" if shards == 1 else f" {n}"
        pids[f"capture{suffix}"], pids[f"step{suffix}"] = capture, parent_pid(capture)
        report(
            f"capture process{suffix} {capture} (step {parent_pid(capture)}) running {time.time() - started:.0f} s "
            "after start-up"
        )
    window_start = floor_minute(int(time.time() * 1000)) + 2 * MINUTE_MS  # a minute of warm-up at least
    window_end = window_start + minutes * MINUTE_MS
    time.sleep(max(0.0, window_start / 1000 - time.time()))
    pids["simulator"] = demo.sim._proc.pid
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    wall0 = time.monotonic()
    rows0, bytes0 = size.rows_bytes()
    sampler = RssSampler(pids)
    time.sleep(max(0.0, window_end / 1000 - time.time()))
    wall = time.monotonic() - wall0
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    rows1, bytes1 = size.rows_bytes()
    peak_rss = sampler.stop()
    hwm = {name: memory_kb(pid, "VmHWM") for name, pid in pids.items()}
    for name in pids:
        report(
            f"{name} process CPU over the {wall:.0f} s window: {100 * cpu[name] / wall:.0f} % of a core; "
            f"RSS sampled max {peak_rss[name] / 1024:.0f} MB, peak (VmHWM) {hwm[name] / 1024:.0f} MB"
        )
    time.sleep(max(0.0, window_end / 1000 + 20 - time.time()))

    universe = kept(Selection(quote_asset="USDT"), LocalLake(demo.lake_path))
    streamed = universe.streamed()
    window = range(window_start, window_end, MINUTE_MS)
    lags, by_source, recorded_any = [], {}, 0
    lags_by_minute: dict[str, list[float]] = {}
    in_window_start = {minute_key(m) for m in window}
    for symbol in streamed:
        seen = set()
        for record in instance.fetch_materializations(raw_trades_key(symbol), limit=200).records:
            if record.partition_key not in in_window_start or record.partition_key in seen:
                continue
            seen.add(record.partition_key)
            source = record.asset_materialization.metadata["source"].value
            by_source[source] = by_source.get(source, 0) + 1
            if source == "stream":
                lag = record.timestamp - (minute_start_ms(record.partition_key) + MINUTE_MS) / 1000
                lags.append(lag)
                lags_by_minute.setdefault(record.partition_key, []).append(lag)
        recorded_any += len(seen)
    expected = len(streamed) * len(window)
    report(
        f"{len(streamed)} symbols streamed ({universe.describe()}); window {minute_key(window_start)}.."
        f"{minute_key(window_end - MINUTE_MS)}: {recorded_any} of {expected} symbol-minutes recorded 20 s after it "
        f"(by source: {by_source})"
    )
    if lags:
        p95 = percentile(lags, 0.95)
        report(
            f"minute end -> recorded (stream) over {len(lags)} symbol-minutes: p50 {statistics.median(lags):.2f} s, "
            f"p95 {p95:.2f} s, max {max(lags):.2f} s (goal p95 <= {LATENCY_GOAL_S:g} s: "
            f"{'met' if p95 <= LATENCY_GOAL_S else 'NOT met'})"
        )
        report(
            "per minute of the window, its first and last symbol recorded (s after the minute's end): "
            + ", ".join(f"{min(v):.1f}-{max(v):.1f}" for _, v in sorted(lags_by_minute.items()))
        )
    recorded_window = max(1, recorded_any)
    report(
        f"instance over the window: +{rows1 - rows0:,} event rows, +{(bytes1 - bytes0) / 1e6:.1f} MB -> "
        f"{(rows1 - rows0) / recorded_window:.1f} rows and {(bytes1 - bytes0) / recorded_window / 1e3:.1f} kB per "
        f"recorded symbol-minute (whole instance: {rows1:,} rows, {bytes1 / 1e6:.1f} MB)"
    )
    gap_runs = [r for r in instance.get_runs(limit=5000) if r.job_name == "raw_trades_from_rest"]
    log = demo.log_path.read_text(errors="replace")
    report(
        f"gap backfill runs so far: {len(gap_runs)}; dagster dev's log: {log.count('not recorded from the stream')} "
        f"'not recorded from the stream', {log.count('no closed 1m kline')} of them without a closed kline, "
        f"{log.lower().count('reconnect')} lines saying reconnect, {log.lower().count('silent')} saying silent"
    )


def other_measures(demo: Demo, env: dict[str, str], report) -> None:
    for name, ticks in sensor_ticks(demo).items():
        report(f"daemon ticks of {name}: {spread(ticks)}")
    settings = Settings.from_env(
        {k: v for k, v in env.items() if k.startswith(("CRYPTO_", "BINANCE_", "DAGSTER_HOME"))}, dotenv_path=None
    )
    defs = build_definitions(settings)
    instance = demo.instance()
    logging.disable(logging.INFO)
    try:
        for name in SENSORS:
            sensor = defs.resolve_sensor_def(name)
            cursor = None

            def tick(sensor=sensor):
                nonlocal cursor
                result = sensor.evaluate_tick(sensor_context(defs, sensor, instance, cursor))
                cursor = result.cursor

            times = timed(tick, 3)
            report(
                f"{name} evaluated directly on the running instance: first {times[0]:.2f} s, then {spread(times[1:])}"
            )
    finally:
        logging.disable(logging.NOTSET)

    with tempfile.TemporaryDirectory() as empty:
        kept_times = [load_time(env) for _ in range(2)]
        first_times = [load_time({**env, "CRYPTO_LAKE_URL": f"{empty}/lake{i}"}) for i in range(2)]
    report(
        f"code location load (python -c 'import crypto_assets.definitions'): universe kept in the lake "
        f"{spread(kept_times)}; first load, exchangeInfo read {spread(first_times)}"
    )

    data, size = graphql(demo.dagster_port, GRAPH_QUERY)
    nodes = data["assetNodes"]
    raw = [n for n in nodes if n["assetKey"]["path"][0] == "raw_trades"]
    groups = sorted({n["groupName"] for n in raw})
    times = timed(lambda: graphql(demo.dagster_port, GRAPH_QUERY), 3)
    report(
        f"asset graph (assetNodes, all): {len(nodes)} assets ({len(raw)} raw in {len(groups)} groups), "
        f"{size / 1e6:.2f} MB, {spread(times)}"
    )
    biggest = max(groups, key=lambda g: sum(n["groupName"] == g for n in raw))
    selector = {"groupName": biggest, "repositoryName": raw[0]["repository"]["name"]}
    selector["repositoryLocationName"] = raw[0]["repository"]["location"]["name"]
    times = timed(lambda: graphql(demo.dagster_port, GROUP_QUERY, {"group": selector}), 3)
    report(
        f"AssetCatalogGroupTableQuery, group {biggest} ({sum(n['groupName'] == biggest for n in raw)} assets): "
        f"{spread(times)}"
    )
    keys = [{"path": n["assetKey"]["path"]} for n in raw]
    batches = [keys[i : i + 50] for i in range(0, len(keys), 50)]
    per_batch: list[float] = []

    def live():
        for batch in batches:
            began = time.perf_counter()
            graphql(demo.dagster_port, LIVE_QUERY, {"assetKeys": batch})
            per_batch.append(time.perf_counter() - began)

    times = timed(live, 3)
    report(
        f"live data of every raw asset ({len(batches)} batches of <= 50): all {spread(times)}; "
        f"per batch {spread(per_batch)}"
    )


# ---- the gap sensor at 500 symbols ---------------------------------------------------------------------------------
def gap_ticks(storage, quiet: int, lookback_hours: int, folder: Path, report) -> None:
    config = SimulatorConfig(
        symbols=[symbol_config(s) for s in BUSY],
        quiet_symbols=quiet,
        history_minutes=lookback_hours * 60 + 5,
        weight_per_minute=10**9,
    )
    budget = folder / "tick_budget"
    budget.mkdir()
    began = time.monotonic()
    with Simulator(config) as sim:
        symbols = [c.symbol for c in config.all_symbols()]
        exchange = ExchangeResource(
            rest_url=sim.rest_url, ws_url="ws://127.0.0.1:1", symbols=symbols, weight_budget_dir=str(budget)
        )
        client = exchange.rest_client()
        try:
            for symbol in symbols:
                client.first_trade(symbol)
        finally:
            client.close()
        report(f"tick simulator ({len(symbols)} symbols) warmed in {time.monotonic() - began:.0f} s")
        with storage.instance("ticks") as instance:
            settings = Settings.from_env(
                {
                    "CRYPTO_SYMBOLS": ",".join(symbols),
                    "BINANCE_REST_URL": sim.rest_url,
                    "CRYPTO_GAP_LOOKBACK_HOURS": str(lookback_hours),
                    "CRYPTO_WEIGHT_BUDGET_DIR": str(budget),
                    "CRYPTO_LAKE_URL": str(folder / "tick_lake"),
                },
                dotenv_path=None,
            )
            defs = build_definitions(settings)
            sensor = defs.resolve_sensor_def(GAP_SENSOR)
            now_minute = floor_minute(int(time.time() * 1000))
            holes = [now_minute - h * MINUTE_MS for h in HOLES]
            first_minute = now_minute - lookback_hours * 60 * MINUTE_MS
            minutes = [m for m in range(first_minute, now_minute, MINUTE_MS) if m not in holes]
            began = time.monotonic()
            for symbol in symbols:
                record_materializations(instance, symbol, minutes)
            report(
                f"gap sensor instance: {len(minutes) * len(symbols):,} materializations ({lookback_hours} h x "
                f"{len(symbols)} symbols) recorded in {time.monotonic() - began:.0f} s"
            )
            cursor = None

            def tick() -> int:
                nonlocal cursor
                result = sensor.evaluate_tick(sensor_context(defs, sensor, instance, cursor))
                cursor = result.cursor
                return len(result.run_requests or [])

            logging.disable(logging.INFO)
            try:
                firsts, known_after = [], []
                for _ in range(5):  # the first-trade lookups stop after 20 s a tick: until every symbol's is known
                    began = time.perf_counter()
                    tick()
                    firsts.append(time.perf_counter() - began)
                    known_after.append(len(json.loads(cursor)["first_trades"]))
                    if known_after[-1] == len(symbols):
                        break
                requests = []

                def with_gaps():
                    requests.append(tick())

                gaps = timed(with_gaps, 3)
                for symbol in symbols:
                    for hole in holes:
                        record_materializations(instance, symbol, [hole])
                idle_requests = []
                idle = timed(lambda: idle_requests.append(tick()), 3)
            finally:
                logging.disable(logging.NOTSET)
            known = len(json.loads(cursor)["first_trades"])
            report(
                f"gap sensor tick, {len(symbols)} symbols, {lookback_hours} h window: first tick(s) until every "
                f"first trade is known ({known} of {len(symbols)}; after each: {known_after}): "
                f"{', '.join(f'{t:.1f}' for t in firsts)} s; "
                f"with gaps ({requests} run requests) {spread(gaps)}; nothing to do ({idle_requests} requests) "
                f"{spread(idle)} (goal <= {TICK_GOAL_S:g} s: "
                f"{'met' if max(gaps + idle) <= TICK_GOAL_S else 'NOT met'})"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", action="store_true", help="the instance on a throw-away PostgreSQL server")
    parser.add_argument(
        "--shards", type=int, default=1, help="CRYPTO_STREAM_SHARDS for dagster dev: the streaming runs"
    )
    parser.add_argument("--minutes", type=int, default=4, help="whole minutes of streaming measured")
    parser.add_argument("--quiet-symbols", type=int, default=497, help="generated quiet symbols besides the 3 busy")
    parser.add_argument("--history-minutes", type=int, default=5, help="the simulated market's history")
    parser.add_argument(
        "--lookback-hours", type=int, default=2, help="gap sensor window of the tick measurement (24 as deployed)"
    )
    parser.add_argument("--skip-ticks", action="store_true", help="skip the gap sensor tick at 500 symbols")
    parser.add_argument("--only-ticks", action="store_true", help="only the gap sensor tick at 500 symbols")
    args = parser.parse_args()
    storage_name = "PostgreSQL" if args.postgres else "SQLite"
    if args.shards != 1:
        storage_name += f", {args.shards} shards"

    def report(line: str) -> None:
        print(f"[{storage_name} {time.strftime('%H:%M:%S')}] {line}", flush=True)

    with tempfile.TemporaryDirectory(prefix="breadth-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        pg = stack.enter_context(postgres_server(workdir / "pg")) if args.postgres else None
        if not args.only_ticks:
            sim_args = ["--symbols", ",".join(BUSY), "--quiet-symbols", str(args.quiet_symbols)]
            sim_args += ["--history-minutes", str(args.history_minutes)]
            env = {"CRYPTO_SYMBOLS": "quote:USDT"}
            if args.shards != 1:
                env["CRYPTO_STREAM_SHARDS"] = str(args.shards)
            demo = DevDeployment(workdir, env, sim_args)
            demo.home.mkdir()
            if pg is not None:
                pg.create_database("dagster")
                instance_yaml = pg.instance_yaml("dagster")  # first: demo.sh keeps a dagster.yaml not its own
                dev_yaml = (PROJECT_ROOT / "dagster.dev.yaml").read_text()
                (demo.home / "dagster.yaml").write_text(instance_yaml + "\n" + dev_yaml)
                demo.env["DAGSTER_EVENT_BATCH_SIZE"] = EVENT_BATCH_SIZE
            size = InstanceSize(demo.home, pg)
            demo.start()
            try:
                stream_window(demo, args.minutes, size, report, args.shards)
                other_measures(demo, demo.env, report)
            except Exception:
                print(demo.tail(), file=sys.stderr)
                raise
            finally:
                demo.stop()
        if not args.skip_ticks:
            folder = workdir / "ticks"
            folder.mkdir()
            storage = PostgresStorage(pg, folder) if pg is not None else SqliteStorage(folder)
            gap_ticks(storage, args.quiet_symbols, args.lookback_hours, folder, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
