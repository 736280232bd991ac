"""A backfill launched the way the UI launches one, while the live stream repairs its holes: one weight budget, no 418.

Runs `scripts/demo.sh` (the simulator beside `dagster dev`, as `make demo` does) on free ports with a throw-away
DAGSTER_HOME, lake and weight-budget folder, against a hostile exchange (`--hostile`: every stream connection cut
after 40-100 s, bursts of 10-50x, empty minutes) with 100 minutes of history and a deliberately low weight limit
(1200 a minute instead of 6000). The keep-alive sensor starts the live stream, which reconnects after every cut and
repairs what it missed over REST. Then the test sends the GraphQL mutation of the UI's "Materialize" / "Launch
backfill" dialog (`launchPartitionBackfill` with `assetSelection` + `partitionNames`, as the dialog sends them) for
90 minutes x 3 symbols ending a few minutes before now: runs of up to a day of minutes (today's minutes come over
REST, in paging passes of at most an hour) whose paging needs about four minutes of the whole limit, so they and the
stream's repairs really compete for the budget (checked: the exchange sees the minute's weight close to its limit
while the backfill runs).

The gap sensor is kept out of it by configuration (a one-hour look-back that ends an hour ago: nothing is ever due),
so the backfill is what fetches those minutes. At the end: the backfill is COMPLETED_SUCCESS (Dagster 1.13's
"completed" for an asset backfill whose runs all succeeded), each of its runs succeeded, every minute of every symbol
is materialized by one of its runs and its file equals the simulator's ground truth trade by trade, the exchange
answered no 418 at all and at most a handful of 429s, and the stream's repairs went on during the backfill (minutes
recorded from stream + REST). Whatever happens, everything the test started is stopped: `dagster dev`, its daemon,
code server and runs, the capture process and the simulator (they all live in the demo's own session).
"""

import os
import signal
import time
import urllib.request
from collections import Counter

import pytest
from dagster import DagsterRunStatus, RunsFilter

from crypto_assets.lake import LocalLake
from crypto_assets.minutes import MINUTE_MS, floor_minute, minute_key
from crypto_assets_tests.demo_process import Demo
from crypto_assets_tests.end_to_end_checks import assert_lake_equals_exchange

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
RATES = {"BTCUSDT": 8, "ETHUSDT": 4, "SOLUSDT": 2}  # trades/s; with the hostile bursts ~5000 weight of paging
WEIGHT_PER_MINUTE = 1200  # the exchange's limit; the shared budget spends at most 95 % of it
HISTORY_MINUTES = 100
BACKFILL_MINUTES = 90
ENDS_BEFORE_NOW_MINUTES = 3
MAX_429 = 5  # "a handful": requests already in flight when a minute fills up are forgiven by Binance
BACKFILL_TAG = "dagster/backfill"

LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on PipelineNotFoundError { message }
    ... on ConflictingExecutionParamsError { message }
    ... on PythonError { message stack }
  }
}
"""
BACKFILL_STATUS = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { id status numPartitions error { message } }
    ... on PythonError { message }
  }
}
"""


def launch_ui_backfill(demo: Demo, keys: list[str]) -> str:
    """The UI dialog's mutation for the raw_trades assets of SYMBOLS over ``keys``; returns the backfill id."""
    params = {
        "assetSelection": [{"path": ["raw_trades", s.lower()]} for s in SYMBOLS],
        "partitionNames": keys,
        "fromFailure": False,
        "tags": [],
        "title": "test: UI backfill under load",
    }
    result = demo.graphql(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", f"the backfill was not launched: {result}"
    return result["backfillId"]


def backfill_status(demo: Demo, backfill_id: str) -> dict:
    backfill = demo.graphql(BACKFILL_STATUS, {"backfillId": backfill_id})["partitionBackfillOrError"]
    assert backfill["__typename"] == "PartitionBackfill", backfill
    return backfill


def rate_limit_answers(demo: Demo) -> Counter:
    """REST answers by status over every client IP, from the simulator's own counters (they cost no weight)."""
    total: Counter = Counter()
    for ip in demo.sim_get("/_sim/state")["weights"].values():
        total.update({int(status): n for status, n in ip["responses"].items()})
    return total


def used_weight(demo: Demo) -> int:
    return max((ip["used_weight"] for ip in demo.sim_get("/_sim/state")["weights"].values()), default=0)


def stop_session(demo: Demo, grace_s: float = 15) -> None:
    """Stop the demo (SIGINT to its process group, SIGKILL after 30 s); give what is still shutting down in its
    session (`dagster dev`'s webserver, daemon, code servers, run workers, the capture process) ``grace_s`` to exit,
    then SIGKILL each one left, by pid, and wait until none is: nothing outlives the test."""
    session = demo.process.pid
    try:
        demo.stop()
    finally:
        deadline = time.time() + grace_s
        while session_members(session) and time.time() < deadline:
            time.sleep(0.5)
        for pid in session_members(session):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while session_members(session) and time.time() < deadline:
            time.sleep(0.2)
        assert not session_members(session), f"still alive after SIGKILL: {session_members(session)}"


def session_members(session: int) -> list[int]:
    """Live processes (zombies excluded) whose session id is ``session``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()  # fields[0]: the state, fields[3]: the session
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z" and int(entry) != os.getpid():
            pids.append(int(entry))
    return pids


def backfill_materialized(instance, backfill_run_ids: set[str], symbol: str) -> set[str]:
    """The partitions of ``symbol`` that a run of the backfill recorded as materialized."""
    from crypto_assets.defs.names import raw_trades_key

    records = instance.fetch_materializations(raw_trades_key(symbol), limit=1000).records
    return {r.partition_key for r in records if r.run_id in backfill_run_ids}


def repaired_minutes(instance, symbol: str, after_s: float, before_s: float) -> list[str]:
    """Minutes the stream recorded with trades repaired over REST (source stream+rest) between two times."""
    from crypto_assets.defs.names import raw_trades_key

    records = instance.fetch_materializations(raw_trades_key(symbol), limit=200).records
    return [
        r.partition_key
        for r in records
        if after_s <= r.timestamp <= before_s and r.asset_materialization.metadata["source"].value == "stream+rest"
    ]


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.timeout(720)
def test_a_ui_backfill_and_the_stream_repairs_share_the_budget_without_a_418(tmp_path):
    demo = Demo(
        tmp_path,
        {
            "CRYPTO_SYMBOLS": ",".join(SYMBOLS),
            "CRYPTO_PARTITION_DAYS": "1",
            "CRYPTO_WEIGHT_BUDGET_DIR": str(tmp_path / "weight_budget"),
            # the gap sensor keeps running but never finds a minute due: its window ends an hour ago and is an hour long
            "CRYPTO_GAP_LOOKBACK_HOURS": "1",
            "CRYPTO_GAP_SETTLE_SECONDS": "3600",
            "DEMO_HOSTILE": "1",
            "DEMO_HISTORY_MINUTES": str(HISTORY_MINUTES),
            "SIM_ARGS": f"--weight-per-minute {WEIGHT_PER_MINUTE} "
            + " ".join(f"--rate {symbol}={rate}" for symbol, rate in RATES.items()),
        },
    )
    demo.start()
    try:
        # -- no click: the keep-alive sensor starts the stream (hostile: cut every 40-100 s, repaired over REST)
        instance = demo.loaded_instance()
        demo.wait_for(
            "stream run",
            lambda: instance.get_runs(RunsFilter(job_name="live_trades_stream", statuses=[DagsterRunStatus.STARTED])),
            150,
        )

        # -- the UI's backfill: 90 minutes x 3 symbols, ending a few minutes before now
        end_ms = floor_minute(int(time.time() * 1000)) - ENDS_BEFORE_NOW_MINUTES * MINUTE_MS
        first_ms = end_ms - BACKFILL_MINUTES * MINUTE_MS
        keys = [minute_key(m) for m in range(first_ms, end_ms, MINUTE_MS)]
        launched_s = time.time()
        backfill_id = launch_ui_backfill(demo, keys)

        peak_used = 0

        def finished():
            nonlocal peak_used
            peak_used = max(peak_used, used_weight(demo))
            status = backfill_status(demo, backfill_id)["status"]
            return status if status not in ("REQUESTED", "CANCELING", "FAILING") else None

        status = demo.wait_for(f"backfill {backfill_id} finished", finished, 480, every_s=2)
        finished_s = time.time()
        backfill = backfill_status(demo, backfill_id)
        runs = instance.get_runs(RunsFilter(tags={BACKFILL_TAG: backfill_id}))
        failed = {r.run_id: r.status.value for r in runs if r.status != DagsterRunStatus.SUCCESS}
        assert status == "COMPLETED_SUCCESS" and not failed, (
            f"backfill {backfill_id}: {status} ({backfill.get('error')}); runs not successful: {failed}\n{demo.tail()}"
        )

        # -- the budget was really contested: the exchange saw the minute's weight near its limit
        assert peak_used >= 0.8 * WEIGHT_PER_MINUTE, f"weight never above {peak_used}/min: no competition"

        # -- every minute of every symbol, materialized by the backfill's runs
        run_ids = {r.run_id for r in runs}
        missing = {s: sorted(set(keys) - backfill_materialized(instance, run_ids, s)) for s in SYMBOLS}
        assert not any(missing.values()), f"not materialized by backfill {backfill_id}: {missing}"

        # -- the lake equals the exchange's ground truth, trade by trade
        assert_lake_equals_exchange(LocalLake(demo.lake_path), demo.minute_truth, SYMBOLS, first_ms, end_ms)

        # -- no ban, at most a handful of 429s, over the whole session (stream repairs, backfill, sensors)
        answers = rate_limit_answers(demo)
        assert answers[418] == 0, f"the exchange banned the IP: {dict(answers)}"
        assert answers[429] <= MAX_429, f"{answers[429]} answers 429 (at most {MAX_429}): {dict(answers)}"

        # -- and the stream repaired its holes over REST while the backfill ran (the two really shared the budget)
        repaired = {s: repaired_minutes(instance, s, launched_s, finished_s + 30) for s in SYMBOLS}
        assert any(repaired.values()), "no minute recorded from stream+rest during the backfill"
        print(
            f"backfill {backfill_id}: {len(runs)} runs in {finished_s - launched_s:.0f} s; peak weight "
            f"{peak_used}/{WEIGHT_PER_MINUTE}; answers {dict(answers)}; repaired minutes {repaired}"
        )
    finally:
        stop_session(demo)
    with pytest.raises(OSError):  # the simulator is gone with the demo
        urllib.request.urlopen(f"{demo.sim_url}/api/v3/ping", timeout=2)
