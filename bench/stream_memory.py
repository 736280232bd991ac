"""The streaming process's memory at 10x BTC rates.

`scripts/demo.sh` (simulator + `dagster dev`, as `make demo`) with three symbols at 400 trades/s each (10x BTCUSDT's
40/s); the keep-alive sensor starts the stream. The streaming process is the capture process the stream's step
starts (``crypto_assets.ingest.capture_process``: WebSocket, minute assembly, lake writes); its resident set size
(VmRSS, /proc) is sampled every 10 s for ``--minutes`` (default 10), and so is the Dagster step process that records
its minutes. Prints start, max and end RSS of each and the slope over the second half (flat means no growth per
minute). Goal: <= 200 MB and flat.

    .venv/bin/python bench/stream_memory.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster import DagsterEventType, DagsterRunStatus, RunsFilter  # noqa: E402

from crypto_assets.defs.names import raw_trades_key  # noqa: E402
from crypto_assets_tests.demo_process import Demo  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def capture_pid(step_pid: int) -> int | None:
    for child in children(step_pid):
        if "capture_process" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
            return child
    return None


def stream_pid(instance) -> int | None:
    runs = instance.get_runs(RunsFilter(job_name="live_trades_stream", statuses=[DagsterRunStatus.STARTED]))
    if not runs:
        return None
    pids = {e.dagster_event.pid for e in instance.all_logs(runs[0].run_id, of_type=DagsterEventType.STEP_START)}
    return next(iter(pids), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    args = parser.parse_args()
    rates = " ".join(f"--rate {s}=400" for s in SYMBOLS)
    with tempfile.TemporaryDirectory() as workdir:
        demo = Demo(
            Path(workdir),
            {
                "CRYPTO_SYMBOLS": ",".join(SYMBOLS),
                "CRYPTO_GAP_LOOKBACK_HOURS": "1",
                "CRYPTO_PARTITION_DAYS": "1",
                "SIM_ARGS": f"--history-minutes 2 {rates}",
            },
        )
        demo.start()
        try:
            instance = demo.wait_for(
                "Dagster instance", lambda: (demo.home / "history").exists() and demo.instance(), 120, every_s=1
            )
            step = demo.wait_for("stream step process", lambda: stream_pid(instance), 180, every_s=2)
            pid = demo.wait_for("capture process", lambda: capture_pid(step), 60, every_s=1)
            samples: list[tuple[float, float]] = []
            step_samples: list[tuple[float, float]] = []
            t0 = time.time()
            while time.time() - t0 < args.minutes * 60:
                rss, step_rss = rss_mb(pid), rss_mb(step)
                if rss is None or step_rss is None:
                    print(
                        f"the capture process {pid} or its step process {step} is gone after {time.time() - t0:.0f} s"
                    )
                    break
                samples.append((time.time() - t0, rss))
                step_samples.append((time.time() - t0, step_rss))
                time.sleep(10)
            recorded = sum(
                1
                for r in instance.fetch_materializations(raw_trades_key("BTCUSDT"), limit=1000).records
                if r.asset_materialization.metadata["source"].value == "stream"
            )
        finally:
            demo.stop()
    if not samples:
        print("no memory sample")
        return
    print(
        f"3 symbols x 400 trades/s over {samples[-1][0] / 60:.1f} min ({len(samples)} samples, {recorded} BTCUSDT "
        f"minutes recorded from the stream):"
    )
    print("  capture process (the streaming process): " + describe(samples) + " (goal <= 200 MB and flat)")
    print("  Dagster step process recording its minutes: " + describe(step_samples))


def describe(samples: list[tuple[float, float]]) -> str:
    second_half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    slope = (
        (second_half[-1][1] - second_half[0][1]) / ((second_half[-1][0] - second_half[0][0]) / 60)
        if len(second_half) > 1 and second_half[-1][0] > second_half[0][0]
        else 0.0
    )
    return (
        f"RSS start {samples[0][1]:.0f} MB, max {max(s[1] for s in samples):.0f} MB, end {samples[-1][1]:.0f} MB, "
        f"second-half slope {slope:+.2f} MB/min"
    )


if __name__ == "__main__":
    main()
