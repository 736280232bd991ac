"""One-run REST backfill of an hour of BTC-rate trades for three symbols: time and share of the weight ceiling.

The simulator runs as its own process (no shared GIL) with BTCUSDT, ETHUSDT and SOLUSDT all trading at BTCUSDT's
default rate (40 trades/s plus bursts: ~155,000 trades an hour each) and 75 minutes of history. The bench then does
what a UI backfill of the last hour does with raw_trades' backfill policy (at most 60 minutes per run): one Dagster
run per symbol over the 60 complete minutes that ended most recently (tags dagster/asset_partition_range_start/end), the
three runs at the same time (``--mode threads``: three ``materialize()`` calls in this process, sharing the
process's weight budget; ``--mode processes``: one process each, as Dagster's run launcher would, each with its own
budget that learns the others' weight only from X-MBX-USED-WEIGHT-1M), on a real DagsterInstance in a temporary
DAGSTER_HOME and a temporary local lake. In threads mode the instance captures no compute logs: Dagster's local
compute log manager dup2()s the process's stdout/stderr per step, which three runs in one process interleave.

Printed: wall time (the three runs started -> the last one ended), trades written (compared trade for trade with the
simulator's ground truth) and the 180 partitions recorded, trades/s, the REST weight spent per exchange minute
(from every response's X-MBX-USED-WEIGHT-1M) against the 6000 limit and the client's 95 % ceiling, and the share
of the weight ceiling. historicalTrades moves 1000 trades per 25 weight, so 6000 weight a minute allows 4,000
trades/s; the client spends at most 95 % of it (3,800/s). Goal: close to the ceiling, and no 429 and no 418.

The weight is spent in a burst at the start of each exchange minute, so the wall time of a run of two minutes is
quantised by where in the minute it starts: the bench starts at second ``--start-second`` (default 3) of an
exchange minute (of one in which every symbol has traded already, so the hour's last minute can be proven). The
hour, with bursts ~155,000 trades a symbol, needs ~11,600 weight: two full budgets of 5,700 plus a few hundred in a
third minute, so ~2 min 5 s from that start. The share of the weight ceiling is wall-clock trades/s over 4,000/s;
trades per weight (against the 40 of a full historicalTrades page) shows what the non-paging calls and the last
partial page of each symbol cost.

    .venv/bin/python bench/raw_trades_backfill.py [--mode threads|processes] [--start-second 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
from dagster import DagsterInstance, materialize

from binance_simulator.market import symbol_config
from binance_simulator.process import SimulatorProcess
from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG, raw_trades_key
from crypto_assets.defs.partitions import minute_partitions
from crypto_assets.defs.raw import raw_resources
from crypto_assets.defs.raw.assets import build_raw_trades_asset
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.exchange import endpoints
from crypto_assets.exchange.models import parse_rest_trades
from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.lake import lake_from_url
from crypto_assets.lake.schema import trades_to_table
from crypto_assets.minutes import MINUTE_MS, minute_key

NO_CAPTURE = """compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
MINUTES = 60
HISTORY_MINUTES = 75
WEIGHT_LIMIT = 6000
TRADES_PER_PAGE = endpoints.MAX_LIMIT
PAGE_WEIGHT = endpoints.REST_WEIGHTS[endpoints.HISTORICAL_TRADES]
CEILING_TRADES_PER_S = WEIGHT_LIMIT / PAGE_WEIGHT * TRADES_PER_PAGE / 60  # 4,000

_responses: list[tuple[int, str, int, int | None]] = []  # (local ms, path, status, X-MBX-USED-WEIGHT-1M)
_responses_lock = threading.Lock()


def _record(response, *args, **kwargs):
    used = response.headers.get("X-MBX-USED-WEIGHT-1M")
    with _responses_lock:
        _responses.append(
            (
                time.time_ns() // 1_000_000,
                urlsplit(response.url).path,
                response.status_code,
                int(used) if used else None,
            )
        )


class RecordingExchange(ExchangeResource):
    """The project's exchange resource, with every REST response noted (time, path, status, used weight)."""

    def rest_client(self, timeout: float = 10) -> BinanceRestClient:
        client = super().rest_client(timeout)
        client._session.hooks["response"].append(_record)
        return client


def run_symbol(
    symbol: str,
    rest_url: str,
    lake_url: str,
    home: str,
    first_ms: int,
    last_ms: int,
    instance: DagsterInstance | None = None,
) -> dict:
    """One run of raw_trades/<symbol> over the minutes first_ms..last_ms (inclusive), as a backfill launches it."""
    asset = build_raw_trades_asset(symbol, minute_partitions(1))
    resources = raw_resources(
        RecordingExchange(rest_url=rest_url, ws_url="ws://127.0.0.1:1", symbols=list(SYMBOLS)),
        LakeResource(url=lake_url),
    )
    tags = {RANGE_START_TAG: minute_key(first_ms), RANGE_END_TAG: minute_key(last_ms)}
    own = instance is None
    if own:  # a process of its own (a pool worker): its responses are this run's
        instance = DagsterInstance.from_config(home)
        with _responses_lock:
            _responses.clear()
    try:
        started = time.time()
        result = materialize(
            [asset],
            resources=resources,
            instance=instance,
            tags=tags,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        ended = time.time()
        error = None
        if not result.success:
            failures = [e for e in result.all_events if e.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")]
            error = "; ".join(
                str(
                    e.step_failure_data.error.message
                    if e.step_failure_data and e.step_failure_data.error
                    else e.message
                )[:800]
                for e in failures
            )
        with _responses_lock:
            responses = list(_responses) if own else []
        return {
            "symbol": symbol,
            "success": result.success,
            "started": started,
            "ended": ended,
            "error": error,
            "run_id": result.run_id,
            "responses": responses,
        }
    finally:
        if own:
            instance.dispose()


def _run_symbol_in_child(args: tuple) -> dict:
    return run_symbol(*args)


def get_json(url: str, timeout: float = 60):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def get_bytes(url: str, timeout: float = 60) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def wait_for_start(sim_url: str, start_second: float) -> int:
    """Sleep until second ``start_second`` of an exchange minute in which every symbol has already traded (so the
    last minute of the range has its end confirmed by a later trade); return the start of that minute."""
    while True:
        now = time.time()
        minute = int(now // 60) * 60
        target = minute + start_second
        if now > target + 1:  # too late in this minute: the next one
            target += 60
            minute += 60
        time.sleep(max(0.0, target - time.time()))
        minute_ms = minute * 1000
        now_ms = time.time_ns() // 1_000_000  # the ground truth ignores the clock: ask only up to now
        traded = all(
            get_bytes(f"{sim_url}/_sim/trades?symbol={s}&startTime={minute_ms}&endTime={now_ms}").strip() != b"[]"
            for s in SYMBOLS
        )
        if traded:
            return minute_ms
        print(f"  (a symbol has not traded yet in minute {minute_key(minute_ms)}: waiting for the next minute)")
        time.sleep(1.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--mode",
        choices=("threads", "processes"),
        default="threads",
        help="the three runs as threads of this process (one weight budget) or as processes (one each)",
    )
    p.add_argument("--start-second", type=float, default=3.0, help="second of the exchange minute to start at")
    args = p.parse_args(argv)

    rate = symbol_config("BTCUSDT").trades_per_second
    sim_args = ["--symbols", ",".join(SYMBOLS), "--history-minutes", str(HISTORY_MINUTES)]
    for s in SYMBOLS:
        sim_args += ["--rate", f"{s}={rate:g}"]
    with SimulatorProcess(*sim_args) as sim, tempfile.TemporaryDirectory() as tmp:
        home, lake_url = f"{tmp}/dagster_home", f"{tmp}/lake"
        os.makedirs(home)
        current = wait_for_start(sim.rest_url, args.start_second)
        first_ms, last_ms = current - MINUTES * MINUTE_MS, current - MINUTE_MS
        jobs = [(s, sim.rest_url, lake_url, home, first_ms, last_ms) for s in SYMBOLS]
        began = time.time()
        if args.mode == "threads":
            # Dagster's local compute log manager captures each step's output by dup2()-ing this process's fds 1
            # and 2 onto the step's log file and back: three runs in threads interleave that and can leave stdout
            # and stderr pointing into one run's log file (seen here: every figure below vanished). No capture here.
            Path(home, "dagster.yaml").write_text(NO_CAPTURE)
            fds_before = [os.readlink(f"/proc/self/fd/{fd}") for fd in (1, 2)]
            with DagsterInstance.from_config(home) as instance, ThreadPoolExecutor(len(SYMBOLS)) as pool:
                results = list(pool.map(lambda job: run_symbol(*job, instance=instance), jobs))
                responses = list(_responses)
                materialized = {s: instance.get_materialized_partitions(raw_trades_key(s)) for s in SYMBOLS}
            if [os.readlink(f"/proc/self/fd/{fd}") for fd in (1, 2)] != fds_before:
                print("warning: the runs left stdout/stderr redirected", file=sys.__stderr__)
        else:
            # The storages are created (and migrated) here first: three processes creating them at once collide.
            with DagsterInstance.from_config(home) as instance:
                instance.get_runs(limit=1)
                pool = multiprocessing.get_context("spawn").Pool(len(SYMBOLS))
                try:
                    results = pool.map(_run_symbol_in_child, jobs)
                finally:
                    pool.close()  # not terminate(): Dagster turns the workers' SIGTERM into a KeyboardInterrupt
                    pool.join()
                responses = [r for res in results for r in res["responses"]]
                materialized = {s: instance.get_materialized_partitions(raw_trades_key(s)) for s in SYMBOLS}
        state = get_json(f"{sim.rest_url}/_sim/state")

        # Ground truth: every trade of the hour from the simulator's model, against the lake's files.
        lake = lake_from_url(lake_url)
        expected_keys = {minute_key(m) for m in range(first_ms, last_ms + 1, MINUTE_MS)}
        written = truth_total = 0
        mismatches: list[str] = []
        for s in SYMBOLS:
            truth = parse_rest_trades(
                s,
                get_bytes(f"{sim.rest_url}/_sim/trades?symbol={s}&startTime={first_ms}&endTime={last_ms + MINUTE_MS}"),
            )
            truth_total += len(truth)
            tables = [lake.read_minute(s, m) for m in range(first_ms, last_ms + 1, MINUTE_MS)]
            missing = sum(t is None for t in tables)
            present = [t for t in tables if t is not None]
            stored = pa.concat_tables(present).num_rows if present else 0
            written += stored
            if missing or not present or not pa.concat_tables(present).equals(trades_to_table(truth)):
                mismatches.append(f"{s}: {missing} minute file(s) missing, {stored} stored vs {len(truth)} true")
            if materialized[s] != expected_keys:
                mismatches.append(f"{s}: {len(materialized[s] & expected_keys)} of {MINUTES} partitions recorded")

    wall = max(r["ended"] for r in results) - began
    statuses: Counter = Counter()
    for ip in state["weights"].values():
        statuses.update({int(k): v for k, v in ip["responses"].items()})
    # Weight per exchange minute: the highest X-MBX-USED-WEIGHT-1M the exchange reported in it (loopback: one IP).
    used_by_minute: dict[int, int] = defaultdict(int)
    weight_by_path: Counter = Counter()
    calls_by_path: Counter = Counter()
    for ms, path, status, used in responses:
        if used is not None:
            used_by_minute[ms // MINUTE_MS] = max(used_by_minute[ms // MINUTE_MS], used)
        if status == 200:
            weight_by_path[path] += endpoints.REST_WEIGHTS.get(path, 1)
            calls_by_path[path] += 1
    weight = sum(weight_by_path.values())
    minutes_used = sorted(used_by_minute)
    per_minute = ", ".join(f"{used_by_minute[m]:,}" for m in minutes_used)
    ceiling = int(WEIGHT_LIMIT * 0.95)
    rate_achieved = written / wall
    runs = "; ".join(
        f"{r['symbol']} {'ok' if r['success'] else 'FAILED'} {r['ended'] - r['started']:.1f} s" for r in results
    )
    calls = ", ".join(
        f"{path.rsplit('/', 1)[-1]} {calls_by_path[path]} x {endpoints.REST_WEIGHTS.get(path, 1)}"
        for path in sorted(calls_by_path, key=lambda p: -weight_by_path[p])
    )

    print(
        f"raw_trades backfill ({args.mode}): {len(SYMBOLS)} symbols x {MINUTES} min at {rate:g} trades/s, "
        f"{minute_key(first_ms)}..{minute_key(last_ms)} UTC, started at second {(began % 60):.1f} of the minute"
    )
    print(f"  wall time {wall:.1f} s (runs: {runs})")
    print(
        f"  trades written {written:,} (simulator ground truth {truth_total:,}; "
        f"{'identical, trade for trade' if not mismatches else 'MISMATCH: ' + '; '.join(mismatches)}); "
        f"partitions recorded {sum(len(v & expected_keys) for v in materialized.values())} of "
        f"{len(SYMBOLS) * MINUTES}"
    )
    print(
        f"  throughput {rate_achieved:,.0f} trades/s = {rate_achieved / CEILING_TRADES_PER_S:.1%} of the "
        f"{CEILING_TRADES_PER_S:,.0f}/s the {WEIGHT_LIMIT}/min weight limit allows "
        f"({rate_achieved / (CEILING_TRADES_PER_S * 0.95):.1%} of the client's 95 % ceiling)"
    )
    print(
        f"  weight {weight:,} in {len(minutes_used)} exchange minute(s), used per minute (X-MBX-USED-WEIGHT-1M): "
        f"{per_minute} of {WEIGHT_LIMIT:,} (client ceiling {ceiling:,}); calls: {calls}"
    )
    print(
        f"  {written / weight:.1f} trades per weight ({written / weight / (TRADES_PER_PAGE / PAGE_WEIGHT):.1%} of a "
        f"full page's {TRADES_PER_PAGE // PAGE_WEIGHT}); at the client's ceiling the hour's weight takes "
        f"{weight / ceiling * 60:.0f} s of budget, at the full limit {weight / WEIGHT_LIMIT * 60:.0f} s"
    )
    print(f"  responses: {dict(sorted(statuses.items()))} (429: {statuses.get(429, 0)}, 418: {statuses.get(418, 0)})")
    for r in results:
        if r["error"]:
            print(f"  {r['symbol']} failed: {r['error']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
