"""Stopping `dagster dev` ends the streaming run CANCELED, leaves no process behind, and the next start streams at once.

Runs `scripts/demo.sh` (the simulator beside `dagster dev`, as `make demo` does) on free ports with a throw-away
DAGSTER_HOME and lake, which holds two failed stream runs from before: one failure more in a row and the keep-alive
would wait before the next start (``FAILURE_BACKOFF_AFTER``).

1. Once the streaming run is started and has recorded a minute: SIGINT to the demo's process group (Ctrl-C in its
   terminal). The demo exits on its own; the run ends CANCELED, not FAILURE (what Dagster makes of an interrupt it
   did not ask for: "Execution was interrupted unexpectedly"); its step and capture processes are gone, and so is
   every process the demo started.
2. `dagster dev` again on the same DAGSTER_HOME: the keep-alive starts a new streaming run on its first ticks (no
   back-off: none of its ticks skips for failures in a row); the first run is still CANCELED.
3. Once that run is streaming: SIGTERM to `dagster dev` alone. Its code server would keep the run going for ever;
   the run sees `dagster dev` gone and terminates itself: CANCELED, and again nothing is left running.
"""

import os
import signal
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterRunStatus

from crypto_assets.defs.raw.keepalive import FAILURE_BACKOFF_AFTER, build_live_stream_keepalive
from crypto_assets.defs.raw.live_stream import SYMBOLS_TAG, live_trades_stream
from crypto_assets_tests.demo_process import Demo
from crypto_assets_tests.end_to_end_checks import capture_processes, step_pids, stream_runs

SYMBOL = "BTCUSDT"
ENV = {
    "CRYPTO_SYMBOLS": SYMBOL,
    "CRYPTO_PARTITION_DAYS": "1",
    "CRYPTO_GAP_LOOKBACK_HOURS": "1",
    "SIM_ARGS": "--history-minutes 3",
}
KEEPALIVE = build_live_stream_keepalive(live_trades_stream)
# the keep-alive's first request after `dagster dev` has loaded the code location: its first tick, or the next one
# (the daemon starts its sensor loop a little after the webserver answers), plus slack for two loaded cores
FIRST_REQUEST_WITHIN_S = 2 * KEEPALIVE.minimum_interval_seconds + 20
ENDINGS = {
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.RUN_CANCELING,
    DagsterEventType.RUN_CANCELED,
    DagsterEventType.RUN_FAILURE,
}
ENDED_WITHIN_S = 30  # after the demo exits: the run worker, the code server and the capture process end with it


def processes_of(home: Path) -> list[int]:
    """Every process started for the DAGSTER_HOME ``home`` (all inherit DAGSTER_HOME from the demo: simulator,
    `dagster dev`, code servers, run worker, step process, capture process)."""
    wanted = b"DAGSTER_HOME=" + str(home).encode()
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if wanted in environ.read_bytes().split(b"\0"):
                pids.append(int(environ.parent.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return [pid for pid in pids if pid != os.getpid()]


def dagster_dev_pid(demo: Demo) -> int:
    """The `dagster dev` process demo.sh runs (its child)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_bytes().rsplit(b")", 1)[1].split()[1])
            args = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == demo.process.pid and b"dev" in args and any(a.endswith(b"dagster") for a in args):
            return int(stat.parent.name)
    raise AssertionError(f"no `dagster dev` under the demo (pid {demo.process.pid})")


def streaming_run(demo: Demo, instance, not_in: set[str], recorded: bool):
    """The started stream run (not one of ``not_in``) whose capture process runs (and which has recorded a minute,
    if ``recorded``)."""

    def found():
        for run in stream_runs(instance, [DagsterRunStatus.STARTED]):
            if run.run_id in not_in or not step_pids(instance, run) or not capture_processes(demo.lake_path):
                continue
            if recorded and not instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
                continue
            return run
        return None

    what = "a streaming run with its capture process" + (" that has recorded a minute" if recorded else "")
    return demo.wait_for(what, found, 240, every_s=1)


def assert_ended_canceled(demo: Demo, instance, run, how: str) -> None:
    """The run CANCELED (not FAILURE) and nothing the demo started still running, within ENDED_WITHIN_S."""
    steps = step_pids(instance, run)
    deadline = time.time() + ENDED_WITHIN_S
    while time.time() < deadline:
        status = instance.get_run_by_id(run.run_id).status
        if status in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS):
            if not processes_of(demo.home):
                break
        time.sleep(0.5)
    events = [
        f"{e.dagster_event.event_type_value}: {(e.dagster_event.message or '')[:200]}"
        for e in instance.all_logs(run.run_id, of_type=ENDINGS)
    ]
    assert status == DagsterRunStatus.CANCELED, f"after {how}: run {run.run_id} is {status.value}: {events}"
    assert not capture_processes(demo.lake_path), f"after {how}: a capture process is left"
    assert not [pid for pid in steps if Path(f"/proc/{pid}").exists()], f"after {how}: its step process is left"
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:150] for pid in processes_of(demo.home)}
    assert not left, f"after {how}: processes left running: {left}"


def keepalive_skips(instance) -> list[str]:
    """The keep-alive's skip reasons so far, newest first (from its ticks in the instance)."""
    [state] = [s for s in instance.all_instigator_state() if s.name == KEEPALIVE.name]
    return [t.skip_reason or "" for t in instance.get_ticks(state.instigator_origin_id, state.selector_id)]


@pytest.mark.e2e
@pytest.mark.integration
@pytest.mark.timeout(600)
def test_stopping_dagster_dev_cancels_the_stream_run_and_the_next_start_streams_at_once(tmp_path):
    demo = Demo(tmp_path, ENV)
    demo.home.mkdir()
    with demo.instance() as instance:  # its storage created before `dagster dev` opens it
        for _ in range(FAILURE_BACKOFF_AFTER - 1):
            instance.report_run_failed(instance.create_run_for_job(live_trades_stream, tags={SYMBOLS_TAG: SYMBOL}))

    demos = [demo]
    try:
        # -- 1. Ctrl-C: SIGINT to the whole process group
        demo.start()
        instance = demo.loaded_instance()
        first = streaming_run(demo, instance, set(), recorded=True)
        demo.stop()  # SIGINT to the group; SIGKILL only if it has not exited within 30 s
        assert demo.process.returncode == 130, f"the demo did not exit on Ctrl-C by itself:\n{demo.tail()}"
        assert_ended_canceled(demo, instance, first, "Ctrl-C")
        demo.log_path.rename(tmp_path / "demo-ctrl-c.log")

        # -- 2. the next start: a new streaming run at once, the first one still canceled
        demo = Demo(tmp_path, ENV)
        demos.append(demo)
        demo.start()
        instance = demo.loaded_instance()
        loaded = time.time()
        second = demo.wait_for(
            "a new streaming run",
            lambda: [r for r in stream_runs(instance) if r.run_id != first.run_id],
            FIRST_REQUEST_WITHIN_S,
            every_s=1,
        )[0]
        print(f"second streaming run requested {time.time() - loaded:.0f}s after the code location loaded", flush=True)
        assert not [s for s in keepalive_skips(instance) if "failed in a row" in s], keepalive_skips(instance)
        assert instance.get_run_by_id(first.run_id).status == DagsterRunStatus.CANCELED

        # -- 3. SIGTERM to `dagster dev` alone
        second = streaming_run(demo, instance, {first.run_id}, recorded=False)
        os.kill(dagster_dev_pid(demo), signal.SIGTERM)
        demo.process.wait(60)
        demo.log.close()
        assert_ended_canceled(demo, instance, second, "SIGTERM to dagster dev")
        assert instance.get_run_by_id(first.run_id).status == DagsterRunStatus.CANCELED
    finally:
        for demo in demos:
            if demo.process.poll() is None:
                demo.stop()
        for pid in processes_of(demo.home):  # whatever a failed assertion left running
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
