"""A UI backfill of whole days of raw_trades under ``dagster dev``, read from the daily archive: wall time, import
trades/s per run, peak memory of a run, REST weight, and the lake against the simulator's truth.

What the UI's backfill button does, done over the same GraphQL API: ``dagster dev`` (a subprocess, in a temporary
DAGSTER_HOME and a temporary local lake) loads the project's code location against the exchange simulator (its own
process: ``SimulatorProcess``; BINANCE_REST_URL, BINANCE_WS_URL and BINANCE_ARCHIVE_URL all point at it), then
``launchPartitionBackfill`` (``assetSelection`` and ``partitionNames``, as the UI's launch dialog sends them) asks
for every minute partition of ``--days`` complete UTC days (default 7: the whole window of
CRYPTO_PARTITION_DAYS=7 but today) of ``raw_trades/<symbol>`` for each of ``--symbols`` (default
BTCUSDT, ETHUSDT, SOLUSDT, all at BTCUSDT's default rate, ``--rate`` to change: 40 trades/s plus bursts, about 3.7
million trades a day). Dagster's backfill daemon splits it by the assets' BackfillPolicy (1,440 partitions a run)
into runs, the queued run coordinator starts them, and the bench polls until the backfill is done. The assets of
one partition range go into one run: a run per day, holding a step per symbol, which the run's multiprocess
executor runs up to the machine's cores at a time.

Run concurrency: dagster.yaml sets ``concurrency.runs.max_concurrent_runs`` to the machine's cores (``--max-runs``;
Dagster's default is 10), so that while one run waits on its last step another run's steps use the idle cores; a
step of an archive day is one process (unzip, parse, prove, write Parquet, then record its 1,440 partitions), so
up to cores x cores step processes can exist at once, each with its own peak memory. ``--max-runs 1`` keeps it to
cores.

Automation off: the project's sensors and schedules are on by default. The live stream keep-alive would start a
streaming run (a capture process and REST calls), the gap sensor would backfill the last day's minutes over REST at
the same time as the archive, the analytics sensor and schedules would build dbt hours as the raw minutes land; all
of that takes the same cores and the same REST weight. So dagster.yaml holds every run a sensor or a schedule
launches in the queue (tag concurrency limits of 0 on ``dagster/sensor_name`` and ``dagster/schedule_name``), and
once the code location is loaded the bench stops every running sensor and schedule over GraphQL and terminates the
runs they queued meanwhile, before the clock starts.

The simulator: its history starts at UTC midnight ``--days + 1`` days back (``--history-from``), so every day asked
for is complete with history before it, and its archive keeps built files in ``--cache-dir`` (default
bench/.cache/archive, gitignored: ``--archive-cache-dir``), named by a fingerprint of everything a file's rows
depend on. The start of history is part of that fingerprint (trade ids count from it), so it is pinned to a UTC
midnight: a second bench run on the same UTC day reuses every file; a run on another day builds the new days.
Before the clock starts, two untimed phases, whose times are printed apart:
- pre-build: ``--build-processes`` simulators with the same market (default: one per core) download each day's
  trades and klines zips once, so that they build them into the cache folder (a BTCUSDT-rate day: ~60 s of CPU);
- warm-up of the serving simulator: every file is found in the cache (sha256 checked once), and each symbol's
  per-second index is computed up to now (a few seconds per day of history), as a running exchange has it.

Printed: the wall time of the backfill (launch -> the last run finished; goal <= 10 minutes); the runs and their
outcomes; per step, what its log says (lines of the project's archive import: ``archive import: N trades, M
minute(s) proven in S s (R trades/s); K minute(s) left to REST`` per day, goal >= 300,000 trades/s, and at the
end ``run peak memory X MB (max RSS of the run process); REST weight spent W``, goal <= 500 MB), beside the peak
resident memory the bench itself sampled from /proc (VmHWM, twice a second) of every process started under
``dagster dev`` during the backfill; the REST weight spent (sum over runs) and the REST responses the simulator
counted meanwhile; where the time goes (a run: created -> started -> its first step started, its last step ended
-> run end; a step: started -> the import done, its peak memory line -> its 1,440 minutes' events recorded -> step
end; from the runs' event logs); then per symbol-day the trades and
minute files in the lake against the simulator's truth, minute by minute: the trade count of each 1m kline of the
day's klines zip (the market's own count, equal to the trades zip's rows). The exit status is 0 when every run
succeeded and the lake equals the truth.

    .venv/bin/python bench/archive_backfill.py                          # 7 days x 3 symbols at BTC's rate
    .venv/bin/python bench/archive_backfill.py --days 1 --symbols BTCUSDT --rate 2   # a small run
    .venv/bin/python bench/archive_backfill.py --postgres               # the same on deploy/'s PostgreSQL storage
    .venv/bin/python bench/archive_backfill.py --prebuild-only          # fill the cache folder only
    .venv/bin/python bench/archive_backfill.py --report /tmp/archive-backfill-bench-XXXX/dagster_home  # a kept run
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
from dagster import DagsterEventType, DagsterInstance, RunsFilter
from dagster._core.storage.tags import BACKFILL_ID_TAG

from binance_simulator.market import symbol_config
from binance_simulator.process import SimulatorProcess
from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG
from crypto_assets.lake.paths import minute_file_path
from crypto_assets.minutes import MINUTE_MS, minute_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from crypto_assets_tests.postgres_server import postgres_server  # noqa: E402

EVENT_BATCH_SIZE = "1000"  # DAGSTER_EVENT_BATCH_SIZE, as deploy/.env.example sets it

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / "bench" / ".cache" / "archive"
DAY_MS = 86_400_000
LOCATION = {"repositoryLocationName": "crypto_assets", "repositoryName": "__repository__"}
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
FINISHED_RUNS = {"SUCCESS", "FAILURE", "CANCELED"}
GOAL_WALL_S, GOAL_RATE, GOAL_MB = 600, 300_000, 500

# The run log's lines (crypto_assets/ingest): the interface this bench reads.
IMPORT_LINE = re.compile(
    r"(?P<symbol>[A-Z0-9]+) (?P<day>\d{4}-\d{2}-\d{2}): archive import: (?P<trades>[\d,]+) trades, "
    r"(?P<minutes>\d+) minute\(s\) proven in (?P<seconds>[\d.]+) s \((?P<rate>[\d,]+) trades/s\); "
    r"(?P<left>\d+) minute\(s\) left to REST"
)
NOT_ARCHIVE_LINE = re.compile(r"(?P<symbol>[A-Z0-9]+) (?P<day>\d{4}-\d{2}-\d{2}): not from the archive(?P<why>.*)")
PROGRESS_LINE = re.compile(r"(?P<symbol>[A-Z0-9]+) (?P<day>\d{4}-\d{2}-\d{2}): (?P<pct>\d+)% of the day read")
PEAK_LINE = re.compile(r"run peak memory (?P<mb>[\d,.]+) MB")
WEIGHT_LINE = re.compile(r"REST weight spent (?P<weight>[\d,]+)")
RECORDED_LINE = re.compile(r"[A-Z0-9]+: \d+ of \d+ minute\(s\) recorded")


def number(text: str) -> float:
    return float(text.replace(",", ""))


# ---- HTTP ---------------------------------------------------------------------------------------------------------
def fetch(url: str, timeout: float = 900, method: str = "GET") -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout) as response:
        return response.read()


def drain(url: str, timeout: float = 900) -> int:
    """GET ``url`` and throw the body away; its size."""
    size = 0
    with urllib.request.urlopen(url, timeout=timeout) as response:
        while block := response.read(1 << 20):
            size += len(block)
    return size


def archive_paths(symbol: str, day: str) -> list[str]:
    trades = f"/data/spot/daily/trades/{symbol}/{symbol}-trades-{day}.zip"
    klines = f"/data/spot/daily/klines/{symbol}/1m/{symbol}-1m-{day}.zip"
    return [trades, trades + ".CHECKSUM", klines, klines + ".CHECKSUM"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the simulator ------------------------------------------------------------------------------------------------
def simulator_args(symbols: list[str], rate: float, history_from: str, cache_dir: Path) -> list[str]:
    args = ["--symbols", ",".join(symbols), "--history-from", history_from, "--archive-cache-dir", str(cache_dir)]
    for s in symbols:
        args += ["--rate", f"{s}={rate:g}"]
    return args


def prebuild(sim_args: list[str], jobs: list[tuple[str, str]], processes: int) -> tuple[float, dict]:
    """Download each (symbol, day)'s files once from ``processes`` simulators of the same market, so that the files
    are in the cache folder; (seconds, {"builds", "reused"} summed over them)."""
    shares = [jobs[i::processes] for i in range(processes) if jobs[i::processes]]
    totals: Counter = Counter()

    def one(share: list[tuple[str, str]]) -> None:
        with SimulatorProcess(*sim_args, start_timeout_s=60) as sim:
            for symbol, day in share:
                for path in archive_paths(symbol, day):
                    drain(sim.rest_url + path)
            state = json.loads(fetch(sim.rest_url + "/_sim/state"))["archive"]
        totals.update({"builds": state["builds"], "reused": state.get("reused", 0)})

    began = time.monotonic()
    with ThreadPoolExecutor(len(shares)) as pool:
        list(pool.map(one, shares))
    return time.monotonic() - began, dict(totals)


def warm_up(sim: SimulatorProcess, jobs: list[tuple[str, str]], symbols: list[str]) -> dict[tuple[str, str], bytes]:
    """Every file found in the serving simulator's cache, each symbol indexed up to now; the klines zips (the
    truth)."""
    klines = {}
    for symbol, day in jobs:
        trades, _, kline_path, _ = archive_paths(symbol, day)
        fetch(sim.rest_url + trades, method="HEAD")
        klines[(symbol, day)] = fetch(sim.rest_url + kline_path)
    now = time.time_ns() // 1_000_000
    for symbol in symbols:
        fetch(f"{sim.rest_url}/_sim/trades?symbol={symbol}&startTime={now - 1000}&endTime={now}")
    return klines


def kline_counts(data: bytes) -> dict[int, int]:
    """{minute start ms: trades} from a 1m klines zip (open time in µs from 2025 on, ms before)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        text = zf.read(zf.namelist()[0]).decode()
    counts = {}
    for row in csv.reader(io.StringIO(text)):
        open_time = int(row[0])
        counts[open_time // 1000 if open_time >= 10**15 else open_time] = int(row[8])
    return counts


def rest_responses(sim: SimulatorProcess) -> Counter:
    state = json.loads(fetch(sim.rest_url + "/_sim/state"))
    total: Counter = Counter()
    for ip in state["weights"].values():
        total.update({int(k): v for k, v in ip["responses"].items()})
    return total


# ---- dagster dev --------------------------------------------------------------------------------------------------
class DagsterDev:
    """``dagster dev`` in its own process group, its output in ``log_path``; ``gql()`` asks its GraphQL API."""

    def __init__(self, home: Path, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(self.port)]
            + ["-w", "workspace.yaml"],
            cwd=ROOT,
            env={**env, "DAGSTER_HOME": str(home)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def gql(self, query: str, variables: dict | None = None, timeout: float = 120) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise RuntimeError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def wait_loaded(self, timeout_s: float = 300) -> float:
        """Wait until the code location is loaded (its sensors answer); seconds waited."""
        began = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited ({self.proc.returncode}); see {self.log_path}")
            try:
                data = self.gql(
                    "query($s: RepositorySelector!) { sensorsOrError(repositorySelector: $s) { __typename } }",
                    {"s": LOCATION},
                    timeout=10,
                )
                if data["sensorsOrError"]["__typename"] == "Sensors":
                    return time.monotonic() - began
            except (OSError, RuntimeError, ValueError):
                pass
            if time.monotonic() - began > timeout_s:
                raise RuntimeError(f"dagster dev did not load the code location within {timeout_s} s")
            time.sleep(1)

    def stop(self) -> None:
        """SIGTERM to dagster dev (it stops its webserver, daemon and code server), then SIGKILL to what is left of
        its process group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self._log.close()


# Runs a sensor or a schedule launches before the bench has stopped them stay queued (a tag limit of 0), and are
# canceled: none of them takes a core or REST weight.
DAGSTER_YAML = """concurrency:
  runs:
    max_concurrent_runs: {max_runs}
    tag_concurrency_limits:
      - key: dagster/sensor_name
        limit: 0
      - key: dagster/schedule_name
        limit: 0
telemetry:
  enabled: false
"""
SENSORS_AND_SCHEDULES = """query($s: RepositorySelector!) {
  sensorsOrError(repositorySelector: $s) { ... on Sensors { results { name sensorState { id status } } } }
  schedulesOrError(repositorySelector: $s) { ... on Schedules { results { name scheduleState { id status } } } }
}"""
STOP_SENSOR = """mutation($id: String!) { stopSensor(id: $id) { __typename
  ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }"""
STOP_SCHEDULE = """mutation($id: String!) { stopRunningSchedule(id: $id) { __typename
  ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }"""
RUNS_IN_FLIGHT = """{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) {
  ... on Runs { results { runId jobName status } } } }"""
TERMINATE = """mutation($ids: [String!]!, $policy: TerminateRunPolicy) {
  terminateRuns(runIds: $ids, terminatePolicy: $policy) { __typename } }"""
LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename
  ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack } ... on InvalidSubsetError { message }
  ... on PartitionSetNotFoundError { message } ... on UnauthorizedError { message } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status } ... on PythonError { message } } }"""


def automation_off(dagster: DagsterDev) -> list[str]:
    """Stop every running sensor and schedule, terminate the runs they launched; what was stopped."""
    data = dagster.gql(SENSORS_AND_SCHEDULES, {"s": LOCATION})
    stopped = []
    for sensor in data["sensorsOrError"]["results"]:
        if sensor["sensorState"]["status"] == "RUNNING":
            answer = dagster.gql(STOP_SENSOR, {"id": sensor["sensorState"]["id"]})["stopSensor"]
            if answer["__typename"] != "StopSensorMutationResult":
                raise RuntimeError(f"could not stop sensor {sensor['name']}: {answer}")
            stopped.append(f"sensor {sensor['name']}")
    for schedule in data["schedulesOrError"]["results"]:
        if schedule["scheduleState"]["status"] == "RUNNING":
            answer = dagster.gql(STOP_SCHEDULE, {"id": schedule["scheduleState"]["id"]})["stopRunningSchedule"]
            if answer["__typename"] != "ScheduleStateResult":
                raise RuntimeError(f"could not stop schedule {schedule['name']}: {answer}")
            stopped.append(f"schedule {schedule['name']}")
    deadline, terminated = time.monotonic() + 180, {}
    while runs := dagster.gql(RUNS_IN_FLIGHT)["runsOrError"]["results"]:
        ids = [r["runId"] for r in runs if r["runId"] not in terminated]
        terminated.update({r["runId"]: f"{r['jobName']} {r['status'].lower()}" for r in runs if r["runId"] in ids})
        queued = [r["runId"] for r in runs if r["runId"] in ids and r["status"] in ("QUEUED", "NOT_STARTED")]
        if queued:  # never started: nothing to stop but their record
            dagster.gql(TERMINATE, {"ids": queued, "policy": "MARK_AS_CANCELED_IMMEDIATELY"})
        if started := [i for i in ids if i not in queued]:
            dagster.gql(TERMINATE, {"ids": started, "policy": "SAFE_TERMINATE"})
        if time.monotonic() > deadline:
            raise RuntimeError(f"runs still in flight after terminating them: {runs}")
        time.sleep(2)
    return stopped + [f"run {run_id[:8]} ({what}: terminated)" for run_id, what in terminated.items()]


# ---- peak memory of the run processes, sampled --------------------------------------------------------------------
class MemorySampler(threading.Thread):
    """Every ``interval_s``: the peak resident set (VmHWM) of each process below ``root_pid`` that was not there when
    it started (the run workers, their step processes, whatever they start)."""

    def __init__(self, root_pid: int, interval_s: float = 0.5):
        super().__init__(daemon=True)
        self.root_pid, self.interval_s = root_pid, interval_s
        self.before = set(self._descendants(root_pid))
        self.peaks: dict[int, tuple[int, str]] = {}  # pid -> (kB, command line)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            for pid in self._descendants(self.root_pid):
                if pid in self.before:
                    continue
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmdline = self.peaks.get(pid, (0, ""))[1] or Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                match = re.search(r"VmHWM:\s+(\d+) kB", status)
                if match:
                    cmd = cmdline if isinstance(cmdline, str) else cmdline.replace(b"\0", b" ").decode()[:120]
                    self.peaks[pid] = (max(int(match[1]), self.peaks.get(pid, (0, ""))[0]), cmd)

    @staticmethod
    def _descendants(pid: int) -> list[int]:
        out, todo = [], [pid]
        while todo:
            p = todo.pop()
            try:
                for task in Path(f"/proc/{p}/task").iterdir():
                    children = [int(c) for c in (task / "children").read_text().split()]
                    out += children
                    todo += children
            except OSError:
                continue
        return out

    def stop(self) -> tuple[float, str, int]:
        """(max MB, its command line, processes seen)."""
        self._halt.set()
        self.join(5)
        if not self.peaks:
            return 0.0, "", 0
        kb, cmd = max(self.peaks.values())
        return kb / 1024, cmd, len(self.peaks)


# ---- the run logs -------------------------------------------------------------------------------------------------
STEP_MARKS = {
    DagsterEventType.STEP_START: "STEP_START",
    DagsterEventType.STEP_SUCCESS: "STEP_SUCCESS",
    DagsterEventType.STEP_FAILURE: "STEP_FAILURE",
}


def read_run(instance: DagsterInstance, record) -> dict:
    """A run of the backfill and its steps (one per asset: Dagster puts the assets of one partition range in one
    run), from its event log: times, the archive import lines, peak memory, REST weight, errors."""
    run = record.dagster_run
    info = {
        "run_id": run.run_id,
        "status": run.status.value,
        "range": (run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)),
        "created": record.create_timestamp.timestamp(),
        "end_time": record.end_time,
        "run_start": None,
        "steps": {},
        "errors": [],
    }
    for entry in instance.all_logs(run.run_id):
        message = entry.user_message or ""
        step = None
        if entry.step_key:
            step = info["steps"].setdefault(
                entry.step_key,
                {"imports": [], "not_archive": [], "peak_mb": None, "weight": None, "marks": {}, "status": None},
            )
        if entry.dagster_event is not None:
            kind = entry.dagster_event.event_type
            if kind in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
                info["errors"].append(f"{entry.step_key or 'run'}: {message[:400]}")
            if kind == DagsterEventType.RUN_START:
                info["run_start"] = entry.timestamp
            if step is not None and kind in STEP_MARKS:
                step["marks"][STEP_MARKS[kind]] = entry.timestamp
                step["status"] = STEP_MARKS[kind].removeprefix("STEP_")
            continue
        if step is None:
            continue
        if m := IMPORT_LINE.search(message):
            step["imports"].append(
                {
                    "symbol": m["symbol"],
                    "day": m["day"],
                    "trades": int(number(m["trades"])),
                    "minutes": int(m["minutes"]),
                    "seconds": float(m["seconds"]),
                    "rate": number(m["rate"]),
                    "left": int(m["left"]),
                }
            )
        elif m := NOT_ARCHIVE_LINE.search(message):
            step["not_archive"].append(f"{m['symbol']} {m['day']}{m['why']}")
        if m := PEAK_LINE.search(message):
            step["peak_mb"] = number(m["mb"])
            step["marks"]["worked"] = entry.timestamp
        if m := WEIGHT_LINE.search(message):
            step["weight"] = int(number(m["weight"]))
        if RECORDED_LINE.search(message):
            step["marks"]["recorded"] = entry.timestamp
    return info


def _span(a: float | None, b: float | None, into: list[float]) -> None:
    if a is not None and b is not None:
        into.append(b - a)


def print_runs(runs: list[dict], launched: float, max_runs: int, status: str) -> tuple[list[float], bool]:
    """The wall time, the runs and their steps, the import figures, peak memory and REST weight from the run logs;
    (import trades/s of each symbol-day, every run succeeded)."""
    ends = [r["end_time"] for r in runs if r["end_time"]]
    wall = (max(ends) - launched) if ends else float("nan")
    outcomes = Counter(r["status"] for r in runs)
    steps = [st for r in runs for st in r["steps"].values()]
    imports = [i for st in steps for i in st["imports"]]
    rates = [i["rate"] for i in imports]
    log_peaks = [st["peak_mb"] for st in steps if st["peak_mb"] is not None]
    weights = [st["weight"] for st in steps if st["weight"] is not None]
    print(
        f"  backfill {status}: wall time {wall:.1f} s = {wall / 60:.1f} min (launch -> last run finished; goal <= "
        f"{GOAL_WALL_S // 60} min)" + (f", at most {max_runs} run(s) at a time" if max_runs else "")
    )
    run_times = [(r["end_time"] or time.time()) - r["created"] for r in runs]
    print(
        f"  runs: {len(runs)} ({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))}) with {len(steps)} "
        f"step(s) (one per asset); run time from creation {spread(run_times, '.1f')} s"
    )
    run_phases: dict[str, list[float]] = {"created -> run start": [], "run start -> first step start": []}
    run_phases["last step end -> run end"] = []
    for r in runs:
        marks = [st["marks"] for st in r["steps"].values()]
        starts = [m["STEP_START"] for m in marks if "STEP_START" in m]
        ends_ = [m.get("STEP_SUCCESS") or m.get("STEP_FAILURE") for m in marks]
        ends_ = [e for e in ends_ if e is not None]
        _span(r["created"], r["run_start"], run_phases["created -> run start"])
        _span(r["run_start"], min(starts, default=None), run_phases["run start -> first step start"])
        _span(max(ends_, default=None), r["end_time"], run_phases["last step end -> run end"])
    step_phases: dict[str, list[float]] = {"step start -> import done": [], "import done -> minutes recorded": []}
    step_phases["recorded -> step end"] = []
    for st in steps:
        m = st["marks"]
        t = [m.get("STEP_START"), m.get("worked"), m.get("recorded"), m.get("STEP_SUCCESS") or m.get("STEP_FAILURE")]
        for values, a, b in zip(step_phases.values(), t, t[1:], strict=False):
            _span(a, b, values)
    print("  run phases (s): " + "; ".join(f"{k} {spread(v, '.1f')}" for k, v in run_phases.items()))
    print("  step phases (s): " + "; ".join(f"{k} {spread(v, '.1f')}" for k, v in step_phases.items()))
    print(
        f"  archive import: {len(imports)} symbol-day(s), {sum(i['trades'] for i in imports):,} trades, "
        f"{sum(i['minutes'] for i in imports):,} minute(s) proven, {sum(i['left'] for i in imports):,} left to "
        f"REST; trades/s per symbol-day {spread(rates)} (goal >= {GOAL_RATE:,})"
    )
    not_archive = [n for st in steps for n in st["not_archive"]]
    if not_archive:
        print(f"  days not from the archive: {'; '.join(not_archive[:10])}")
    print(
        f"  peak memory of a step process: {spread(log_peaks)} MB by the run logs (goal <= {GOAL_MB})"
        if log_peaks
        else "  peak memory: no 'run peak memory' line in the run logs"
    )
    print(
        f"  REST weight spent: {sum(weights):,} (sum over {len(weights)} step log(s))"
        if weights
        else "  REST weight spent: no 'REST weight spent' line in the run logs"
    )
    for r in sorted(runs, key=lambda r: r["range"]):
        print(f"    run {r['run_id'][:8]} {r['range'][0]}..{r['range'][1]}: {r['status']}")
        for key, st in sorted(r["steps"].items()):
            m = st["marks"]
            end = m.get("STEP_SUCCESS") or m.get("STEP_FAILURE") or time.time()
            line = f"      {key}: {st['status'] or 'not started'} in {end - m.get('STEP_START', end):.1f} s"
            for i in st["imports"]:
                line += f"; {i['trades']:,} trades imported in {i['seconds']:.1f} s ({i['rate']:,.0f}/s)"
            if st["peak_mb"] is not None:
                line += f"; peak {st['peak_mb']:.0f} MB"
            if st["weight"] is not None:
                line += f"; weight {st['weight']}"
            print(line)
        for error in r["errors"][:3]:
            print(f"      error: {error}")
    return rates, bool(runs) and outcomes.get("SUCCESS", 0) == len(runs)


def report_kept(home: Path) -> int:
    """The run figures of the newest backfill in a kept DAGSTER_HOME (no lake comparison: the simulator is gone)."""
    with DagsterInstance.from_config(str(home)) as instance:
        backfill = instance.get_backfills(limit=1)[0]
        records = instance.get_run_records(RunsFilter(tags={BACKFILL_ID_TAG: backfill.backfill_id}))
        runs = [read_run(instance, r) for r in records]
    _, ok = print_runs(runs, backfill.backfill_timestamp, 0, backfill.status.value)
    return 0 if ok else 1


def spread(values: list[float], fmt: str = ",.0f") -> str:
    if not values:
        return "n/a"
    return f"min {min(values):{fmt}} / median {statistics.median(values):{fmt}} / max {max(values):{fmt}}"


# ---- main ---------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    cores = os.cpu_count() or 2
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=7, help="complete UTC days to backfill, ending yesterday (default 7)")
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT")
    default_rate = symbol_config("BTCUSDT").trades_per_second
    p.add_argument("--rate", type=float, default=default_rate, help="trades/s of every symbol (BTCUSDT's default)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="the simulator's archive cache folder")
    p.add_argument("--build-processes", type=int, default=cores, help="simulators building the files beforehand")
    p.add_argument("--max-runs", type=int, default=cores, help="dagster.yaml max_concurrent_runs (default: cores)")
    p.add_argument("--timeout-minutes", type=float, default=60, help="give the backfill up after this long")
    p.add_argument("--keep", action="store_true", help="keep the temporary DAGSTER_HOME and lake, print where")
    p.add_argument("--prebuild-only", action="store_true", help="fill the cache folder, then stop")
    p.add_argument("--report", type=Path, metavar="DAGSTER_HOME", help="print the run figures of a kept run, then stop")
    p.add_argument(
        "--postgres",
        action="store_true",
        help="the instance on a throw-away PostgreSQL server with deploy/dagster.yaml's storage and "
        "DAGSTER_EVENT_BATCH_SIZE (default: SQLite, as `make dev`)",
    )
    args = p.parse_args(argv)
    if args.report:
        return report_kept(args.report)
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if not 1 <= args.days <= 30:
        p.error("--days must be 1 to 30")

    now = dt.datetime.now(dt.UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if today + dt.timedelta(days=1) - now < dt.timedelta(minutes=args.timeout_minutes + 15):
        p.error(
            "too close to UTC midnight: the partition window moves then, and the run processes would load another "
            "window than the backfill's (start after midnight, or lower --timeout-minutes)"
        )
    days = [(today - dt.timedelta(days=n)).strftime("%Y-%m-%d") for n in range(args.days, 0, -1)]
    history_from = (today - dt.timedelta(days=args.days + 1)).strftime("%Y-%m-%d")
    first_ms = int((today - dt.timedelta(days=args.days)).timestamp() * 1000)
    end_ms = int(today.timestamp() * 1000)
    jobs = [(s, d) for d in days for s in symbols]
    sim_args = simulator_args(symbols, args.rate, history_from, args.cache_dir.resolve())
    print(
        f"archive backfill: {len(symbols)} symbol(s) x {len(days)} day(s) ({days[0]}..{days[-1]}) at "
        f"{args.rate:g} trades/s each; simulator history from {history_from} 00:00 UTC; cache {args.cache_dir}",
        flush=True,
    )

    build_s, built = prebuild(sim_args, jobs, max(1, min(args.build_processes, len(jobs))))
    print(
        f"  pre-build (untimed): {built.get('builds', 0)} file(s) built, {built.get('reused', 0)} reused from the "
        f"cache, in {build_s:.1f} s by {max(1, min(args.build_processes, len(jobs)))} simulator process(es)",
        flush=True,
    )
    if args.prebuild_only:
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="archive-backfill-bench-"))
    home, lake_dir = tmp / "dagster_home", tmp / "lake"
    home.mkdir()
    with contextlib.ExitStack() as stack:
        # removed last: the PostgreSQL server, stopped before it, copies its log into it
        stack.callback(
            lambda: (
                print(f"  kept: {tmp} (DAGSTER_HOME dagster_home/, lake/, dagster_dev.log)")
                if args.keep
                else shutil.rmtree(tmp, ignore_errors=True)
            )
        )
        storage, batch = "", {}
        if args.postgres:
            pg = stack.enter_context(postgres_server(tmp / "postgres"))
            pg.create_database("dagster")
            storage, batch = pg.instance_yaml("dagster"), {"DAGSTER_EVENT_BATCH_SIZE": EVENT_BATCH_SIZE}
        print(f"  instance: {'PostgreSQL, deploy/dagster.yaml storage' if args.postgres else 'SQLite'}", flush=True)
        (home / "dagster.yaml").write_text(DAGSTER_YAML.format(max_runs=args.max_runs) + storage)
        return backfill(args, tmp, home, lake_dir, sim_args, jobs, symbols, days, first_ms, end_ms, batch)


def backfill(args, tmp, home, lake_dir, sim_args, jobs, symbols, days, first_ms, end_ms, batch) -> int:
    """The timed backfill under dagster dev, then the figures and the lake against the truth (0: every minute exact
    and every run succeeded)."""
    with SimulatorProcess(*sim_args, start_timeout_s=60) as sim:
        began = time.monotonic()
        klines = warm_up(sim, jobs, symbols)
        state = json.loads(fetch(sim.rest_url + "/_sim/state"))["archive"]
        print(
            f"  serving simulator warm-up (untimed): {time.monotonic() - began:.1f} s (archive files built "
            f"{state['builds']}, reused {state.get('reused', 0)}; index up to now)",
            flush=True,
        )
        env = {
            **os.environ,
            "BINANCE_REST_URL": sim.rest_url,
            "BINANCE_WS_URL": sim.ws_url,
            "BINANCE_ARCHIVE_URL": sim.archive_url,
            "CRYPTO_SYMBOLS": ",".join(symbols),
            "CRYPTO_LAKE_URL": str(lake_dir),
            "CRYPTO_PARTITION_DAYS": str(args.days),
            "DBT_DUCKDB_PATH": str(tmp / "crypto.duckdb"),
            **batch,
        }
        for name in ("CRYPTO_SPOOL_DIR", "CRYPTO_WEIGHT_BUDGET_DIR", "AWS_ENDPOINT_URL"):
            env.pop(name, None)  # under the temporary DAGSTER_HOME; a local lake
        dagster = DagsterDev(home, env, tmp / "dagster_dev.log")
        sampler = None
        try:
            loaded_s = dagster.wait_loaded()
            stopped = automation_off(dagster)
            print(f"  dagster dev loaded in {loaded_s:.1f} s; stopped: {', '.join(stopped) or 'nothing'}", flush=True)
            responses_before = rest_responses(sim)
            sampler = MemorySampler(dagster.proc.pid)
            sampler.start()
            keys = [minute_key(m) for m in range(first_ms, end_ms, MINUTE_MS)]
            params = {
                "assetSelection": [{"path": ["raw_trades", s.lower()]} for s in symbols],
                "partitionNames": keys,
                "fromFailure": False,
                "title": "bench: archive backfill",
            }
            launched = time.time()
            answer = dagster.gql(LAUNCH, {"p": params})["launchPartitionBackfill"]
            if answer["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(f"launchPartitionBackfill: {answer}")
            backfill_id = answer["backfillId"]
            print(f"  backfill {backfill_id} launched: {len(keys)} minute partitions x {len(symbols)} asset(s)")
            instance = DagsterInstance.from_config(str(home))
            deadline, next_note, status = launched + args.timeout_minutes * 60, launched + 30, ""
            while True:
                status = dagster.gql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"].get("status", "?")
                records = instance.get_run_records(RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
                by_status = Counter(r.dagster_run.status.value for r in records)
                if status in DONE and all(s in FINISHED_RUNS for s in by_status):
                    break
                if time.time() > next_note:
                    print(f"    {time.time() - launched:5.0f} s: backfill {status}, runs {dict(by_status)}", flush=True)
                    next_note += 30
                if time.time() > deadline:
                    dagster.gql(
                        "mutation($id: String!) { cancelPartitionBackfill(backfillId: $id) { __typename } }",
                        {"id": backfill_id},
                    )
                    print(f"  TIMEOUT after {args.timeout_minutes} min: backfill canceled")
                    break
                time.sleep(2)
            peaks = sampler.stop()
            responses = rest_responses(sim) - responses_before
            runs = [read_run(instance, r) for r in records]
            instance.dispose()
        finally:
            dagster.stop()  # first: nothing below may leave dagster dev running
            if sampler is not None and sampler.is_alive():
                sampler.stop()

    _, all_ok = print_runs(runs, launched, args.max_runs, status)
    mb, cmd, seen = peaks
    print(f"  sampled: max VmHWM {mb:.0f} MB over the {seen} process(es) started during the backfill ({cmd!r})")
    print(f"  REST responses the simulator answered during the backfill: {dict(sorted(responses.items())) or 'none'}")

    print("  lake vs the simulator's truth (trades per minute: the count of each 1m kline of the day's klines zip):")
    exact = True
    for symbol, day in jobs:
        truth = kline_counts(klines[(symbol, day)])
        day_ms = int(dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp() * 1000)
        stored, files, wrong = 0, 0, 0
        for minute in range(day_ms, day_ms + DAY_MS, MINUTE_MS):
            path = lake_dir / minute_file_path(symbol, minute)
            rows = pq.read_metadata(path).num_rows if path.exists() else None
            files += rows is not None
            stored += rows or 0
            wrong += rows != truth.get(minute, 0)
        exact &= wrong == 0
        print(
            f"    {symbol} {day}: lake {stored:,} trades in {files} minute file(s), truth {sum(truth.values()):,} "
            f"in 1440 minutes: {'exact' if not wrong else f'{wrong} minute(s) differ'}"
        )
    print(f"  lake {'equals' if exact else 'DIFFERS FROM'} the truth, minute by minute")
    return 0 if exact and all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
