"""Recovery after a one-hour outage, then the stream path's latency: measured on the real thing.

`scripts/demo.sh` (the simulator beside `dagster dev`, exactly what `make demo` runs) starts against an exchange that
has traded for 65 minutes on three symbols at BTC rate (40 trades/s each) while nothing captured it: a one-hour
outage (gap window CRYPTO_GAP_LOOKBACK_HOURS=1, other settings at their defaults).

1. Recovery: wall time from start-up until every minute of the outage hour, for all three symbols, is materialized
   with its three checks passed. Goal: <= 3 min. (The gap window reaches back one hour from the sensor's first tick,
   which comes some 30 s after start-up: the minute 60 minutes before start-up is outside it, so the outage hour
   counted is the 59 whole minutes before the start-up minute, plus that minute itself.)
2. Latency: the stream then runs for ``--minutes`` (default 5); for every minute it records, the time from the
   minute's end to its materialization event in Dagster's event log. Goal: p95 <= 3 s.
3. Hostile exchange (``--hostile-minutes``, default 10; 0 skips it): the capture process alone
   (``python -m crypto_assets.ingest.capture_process``, as the streaming run starts it, with its REST repair and a
   budget folder of its own) against a simulator in hostile mode (every connection cut after 40-100 s: dropped,
   half-open or serverShutdown; bursts of 10-50x; empty minutes), three symbols at 40 trades/s, killed with SIGKILL
   at 1/3 and 2/3 of the time and restarted ``RESTART_AFTER_S`` later (what the keep-alive sensor does, faster).
   From the capture process's own reports (stdout): the share of the window's minutes it recorded (the rest would be
   the gap backfill's), minute end -> written (``written_at_ms``) p50 / p95, the time from the last kill until every
   minute up to the kill is recorded again, and the REST weight it spent (the budget file's per-minute counts, read
   every few seconds). Every minute it recorded is compared with the simulator's ground truth (``/_sim/trades``).
   Measured 2026-12-01 (10 min, 8 connections cut: 4 dropped, 2 half-open, 2 serverShutdown): 24 of 24 minutes
   recorded by the stream (14 ``stream+rest``, 8 ``stream``, 2 empty), all equal to the ground truth; minute end ->
   written p50 0.07 s, p95 0.16 s; every minute up to the restart's minute recorded 7.5 s after the last kill (that
   minute ended 7.4 s after it); 1,318 REST weight for 30 repairs in 8 minutes, no 429 or 418.

    .venv/bin/python bench/stream_recovery_and_latency.py [--minutes 5] [--hostile-minutes 10] [--only-hostile]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster import DagsterEventType, EventRecordsFilter  # noqa: E402

from binance_simulator.process import SimulatorProcess  # noqa: E402
from crypto_assets.defs.names import raw_trades_key  # noqa: E402
from crypto_assets.ingest.capture_process import (  # noqa: E402
    ENVIRONMENT,
    CaptureConfig,
    LogLine,
    MinuteDecided,
    command,
    decode_message,
)
from crypto_assets.ingest.minute_checks import MINUTE_CHECK  # noqa: E402
from crypto_assets.lake import LocalLake  # noqa: E402
from crypto_assets.minutes import MINUTE_MS, floor_minute, minute_key, minute_start_ms  # noqa: E402
from crypto_assets_tests.demo_process import Demo  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
RESTART_AFTER_S = 5.0  # hostile part: a killed capture process is started again this long after the kill
warnings.filterwarnings("ignore", category=DeprecationWarning)  # get_event_records: the one query by check partition


def verified_minutes(instance) -> dict[str, set[str]]:
    """Per symbol, the partitions that are materialized and have their minute_complete check passed."""
    passed: Counter = Counter()
    for record in instance.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION), limit=1_000_000
    ):
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.passed and evaluation.check_name == MINUTE_CHECK:
            passed[(evaluation.asset_key, evaluation.partition)] += 1
    out = {}
    for symbol in SYMBOLS:
        key = raw_trades_key(symbol)
        materialized = instance.get_materialized_partitions(key)
        out[symbol] = {p for p in materialized if passed[(key, p)]}
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def outage_and_latency(minutes: float) -> None:
    """Parts 1 and 2: `make demo`'s script after a one-hour outage, then the stream's latency under Dagster."""
    rates = " ".join(f"--rate {s}=40" for s in SYMBOLS)
    with tempfile.TemporaryDirectory() as workdir:
        demo = Demo(
            Path(workdir),
            {
                "CRYPTO_SYMBOLS": ",".join(SYMBOLS),
                "CRYPTO_GAP_LOOKBACK_HOURS": "1",
                "CRYPTO_PARTITION_DAYS": "1",
                "SIM_ARGS": f"--history-minutes 65 {rates}",
            },
        )
        started = time.time()
        start_minute = floor_minute(int(started * 1000))
        outage = [minute_key(m) for m in range(start_minute - 59 * MINUTE_MS, start_minute + MINUTE_MS, MINUTE_MS)]
        demo.start()
        try:
            instance = demo.wait_for(
                "Dagster instance", lambda: (demo.home / "history").exists() and demo.instance(), 120, every_s=1
            )
            hour_s = recovered_s = None  # the outage hour alone; with the minute the stream joined during
            deadline = started + 600
            while time.time() < deadline:
                verified = verified_minutes(instance)
                left = sum(len(set(outage) - verified[s]) for s in SYMBOLS)
                if hour_s is None and left == sum(outage[-1] not in verified[s] for s in SYMBOLS):
                    hour_s = time.time() - started
                if left == 0:
                    recovered_s = time.time() - started
                    break
                time.sleep(2)
            trades = sum(
                r.asset_materialization.metadata["dagster/row_count"].value
                for s in SYMBOLS
                for r in instance.fetch_materializations(raw_trades_key(s), limit=10_000).records
                if r.partition_key in outage
            )
            print(
                "recovery after a 1 h outage, 3 symbols at 40 trades/s: "
                + (
                    f"{recovered_s:.0f} s until all {3 * len(outage)} minutes were materialized and verified "
                    f"({trades:,} trades; goal <= 180 s); the {len(outage) - 1} minutes before the start-up minute "
                    f"alone after {hour_s:.0f} s"
                    if recovered_s
                    else f"NOT recovered within 600 s, {left} minutes left: "
                    f"{ {s: sorted(set(outage) - verified[s]) for s in SYMBOLS} }"
                ),
                flush=True,
            )
            gap_runs = [r for r in instance.get_runs(limit=1000) if r.job_name == "raw_trades_from_rest"]
            print(
                f"  gap backfill runs: {len(gap_runs)} ({dict(Counter(r.status.value for r in gap_runs))})", flush=True
            )

            measure_from = floor_minute(int(time.time() * 1000)) + MINUTE_MS
            time.sleep(max(0.0, measure_from / 1000 - time.time()) + minutes * 60 + 15)
            lags = []
            for symbol in SYMBOLS:
                for record in instance.fetch_materializations(raw_trades_key(symbol), limit=1000).records:
                    metadata = record.asset_materialization.metadata
                    minute_end = minute_start_ms(record.partition_key) + MINUTE_MS
                    if metadata["source"].value == "stream" and minute_end > measure_from:
                        lags.append(record.timestamp - minute_end / 1000)
            if lags:
                print(
                    f"stream path, minute end -> recorded materialization over {len(lags)} minutes: "
                    f"p50 {statistics.median(lags):.2f} s, p95 {percentile(lags, 0.95):.2f} s, max {max(lags):.2f} s "
                    f"(goal p95 <= 3 s)",
                    flush=True,
                )
            else:
                print("stream path: no minute recorded from the stream during the measurement", flush=True)
        finally:
            demo.stop()


# ---- part 3: the capture process against a hostile exchange, killed twice ------------------------------------------
class CaptureProcess:
    """One capture process at a time, started (again) with the same arguments; its stdout reports collected."""

    def __init__(self, args: list[str], workdir: Path):
        self.args, self.workdir = args, workdir
        self.recorded: dict[tuple[str, int], tuple[int, str]] = {}  # (symbol, minute) -> (written_at_ms, source)
        self.given_up: Counter = Counter()  # (symbol, minute) -> times a process reported it unproven
        self.repairs = 0  # "repaired over REST" log lines
        self.starts = 0
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.starts += 1
        stderr = open(self.workdir / f"capture-{self.starts}.stderr", "wb")
        self.process = subprocess.Popen(
            self.args, env={**os.environ, **ENVIRONMENT}, stdout=subprocess.PIPE, stderr=stderr
        )
        stderr.close()
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            message = decode_message(line)
            with self._lock:
                if isinstance(message, MinuteDecided):
                    outcome, key = message.result(), (message.symbol, message.minute_start_ms)
                    if outcome.ok and key not in self.recorded:
                        self.recorded[key] = (
                            outcome.written_at_ms or int(time.time() * 1000),
                            outcome.summary.source if outcome.summary else "?",
                        )
                    elif not outcome.ok:
                        self.given_up[key] += 1
                elif isinstance(message, LogLine) and "repaired over REST" in message.message:
                    self.repairs += 1

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def snapshot(self) -> dict[tuple[str, int], tuple[int, str]]:
        with self._lock:
            return dict(self.recorded)


class BudgetWatcher:
    """The REST weight the capture processes charged, per exchange minute, from their shared budget file (it keeps
    the last few minutes; read every ``every_s`` seconds, each minute's highest count is its total)."""

    def __init__(self, folder: Path, every_s: float = 5.0):
        self.folder, self.every_s = folder, every_s
        self.per_minute: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while True:
            self.read()
            if self._stop.wait(self.every_s):
                self.read()
                return

    def read(self) -> None:
        for path in self.folder.glob("*.json"):
            try:
                used = json.loads(path.read_text()).get("used", {})
            except (OSError, ValueError):
                continue  # being replaced: the next read sees it
            for minute, weight in used.items():
                self.per_minute[int(minute)] = max(self.per_minute.get(int(minute), 0), int(weight))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(10)
        return sum(self.per_minute.values())


def sim_get(base_url: str, path: str):
    with urllib.request.urlopen(base_url + path, timeout=30) as response:
        return json.loads(response.read())


def hostile(minutes: float) -> None:
    """Part 3: see the module docstring."""
    rates = [arg for s in SYMBOLS for arg in ("--rate", f"{s}=40")]
    with (
        tempfile.TemporaryDirectory() as tmp,
        SimulatorProcess("--symbols", ",".join(SYMBOLS), "--history-minutes", "5", "--hostile", *rates) as sim,
    ):
        workdir = Path(tmp)
        lake_path, budget_dir = workdir / "lake", workdir / "budget"
        budget_dir.mkdir()
        capture = CaptureProcess(
            command(
                CaptureConfig(
                    ws_url=sim.ws_url,
                    rest_url=sim.rest_url,
                    budget_dir=str(budget_dir),
                    symbols=list(SYMBOLS),
                    lake_url=str(lake_path),
                    endpoint_url=None,
                    spool_dir=str(workdir / "spool"),
                    spool_max_mb=256,
                )
            ),
            workdir,
        )
        watcher = BudgetWatcher(budget_dir)
        started = time.time()
        first_ms = floor_minute(int(started * 1000)) + MINUTE_MS  # the first whole minute
        kills_ms = []
        capture.start()
        try:
            for fraction in (1 / 3, 2 / 3):
                time.sleep(max(0.0, started + fraction * minutes * 60 - time.time()))
                capture.kill()
                kills_ms.append(int(time.time() * 1000))
                time.sleep(RESTART_AFTER_S)
                capture.start()
            time.sleep(max(0.0, started + minutes * 60 - time.time()))
            end_ms = floor_minute(int(time.time() * 1000)) - MINUTE_MS  # the last minute decided by now: grace
            time.sleep(max(0.0, (end_ms + MINUTE_MS) / 1000 + 10 - time.time()))
        finally:
            capture.stop()
            weight = watcher.stop()
        recorded = capture.snapshot()
        window = [(s, m) for s in SYMBOLS for m in range(first_ms, end_ms, MINUTE_MS)]
        done = [k for k in window if k in recorded]
        lags = [(recorded[k][0] - (k[1] + MINUTE_MS)) / 1000 for k in done]
        sources = Counter(recorded[k][1] for k in done)
        state = sim_get(sim.rest_url, "/_sim/state")
        cuts = Counter(c["kind"] for c in state["hostile"]["cuts"])
        responses = Counter()
        for ip in state["weights"].values():
            responses.update(ip["responses"])
        print(
            f"hostile exchange, capture process alone, {minutes:g} min, 3 symbols at 40 trades/s, kill -9 at "
            f"{', '.join(f'{(k / 1000 - started):.0f} s' for k in kills_ms)} (restart {RESTART_AFTER_S:.0f} s later); "
            f"connections cut by the exchange: {dict(cuts)}",
            flush=True,
        )
        print(
            f"  minutes recorded by the stream: {len(done)} of {len(window)} ({len(done) / max(1, len(window)):.0%}; "
            f"sources {dict(sources)}); left to the gap backfill: "
            f"{sorted(f'{s} {minute_key(m)}' for s, m in set(window) - set(done))}",
            flush=True,
        )
        if lags:
            print(
                f"  minute end -> written: p50 {statistics.median(lags):.2f} s, p95 {percentile(lags, 0.95):.2f} s, "
                f"max {max(lags):.2f} s over {len(lags)} minutes",
                flush=True,
            )
        last_kill = kills_ms[-1]
        restart_minute = floor_minute(last_kill + int(RESTART_AFTER_S * 1000))  # the new process joins in it
        hit = [k for k in window if k[1] <= restart_minute]  # up to the minute the restarted process joined in
        if restart_minute >= end_ms:
            print(
                "  after the last kill: the restart's minute is past the window; run longer to measure healing",
                flush=True,
            )
        elif all(k in recorded for k in hit):
            healed_s = (max(recorded[k][0] for k in hit) - last_kill) / 1000
            print(
                f"  after the last kill: every minute up to the restart's minute recorded {healed_s:.1f} s later "
                f"(that minute ended {(restart_minute + MINUTE_MS - last_kill) / 1000:.1f} s after the kill; "
                f"restart after {RESTART_AFTER_S:.0f} s)",
                flush=True,
            )
        else:
            print(
                f"  after the last kill: NOT healed by the stream, missing "
                f"{sorted(f'{s} {minute_key(m)}' for s, m in hit if (s, m) not in recorded)}",
                flush=True,
            )
        print(
            f"  REST weight spent by the capture processes (their budget file): {weight} in {len(watcher.per_minute)} "
            f"minute(s), {capture.repairs} repair(s); simulator responses {dict(responses)}",
            flush=True,
        )
        lake, differ = LocalLake(lake_path), []
        for symbol, minute in done:
            truth = [
                t["id"]
                for t in sim_get(
                    sim.rest_url, f"/_sim/trades?symbol={symbol}&startTime={minute}&endTime={minute + MINUTE_MS}"
                )
            ]
            if lake.read_minute(symbol, minute).column("trade_id").to_pylist() != truth:
                differ.append(f"{symbol} {minute_key(minute)}")
        print(
            f"  recorded minutes equal to the exchange's ground truth: {len(done) - len(differ)} of {len(done)}"
            + (f"; DIFFERENT: {differ}" if differ else ""),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5, help="how long to measure the stream's latency")
    parser.add_argument(
        "--hostile-minutes",
        type=float,
        default=10,
        help="how long the capture process runs against a hostile exchange (0: skip that part)",
    )
    parser.add_argument("--only-hostile", action="store_true", help="skip the outage and latency parts")
    args = parser.parse_args()
    if not args.only_hostile:
        outage_and_latency(args.minutes)
    if args.hostile_minutes > 0:
        hostile(args.hostile_minutes)


if __name__ == "__main__":
    main()
