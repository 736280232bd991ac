"""The streaming run's memory at 10x BTC rates: resident memory of the `live_trades_stream` step process.

`scripts/demo.sh` (simulator + `dagster dev`, as `make demo`) with three symbols at 400 trades/s each (10x BTCUSDT's
40/s); the keep-alive sensor starts the stream; its step process's resident set size (VmRSS, /proc) is sampled every
10 s for ``--minutes`` (default 10). Prints start, max and end RSS and the slope over the second half (flat means
no growth per minute). Goal: <= 200 MB and flat.

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

from crypto_assets.defs.raw_trades import raw_trades_key  # noqa: E402
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
        demo = Demo(Path(workdir), {"CRYPTO_SYMBOLS": ",".join(SYMBOLS), "CRYPTO_GAP_LOOKBACK_HOURS": "1",
                                    "CRYPTO_PARTITION_DAYS": "1", "SIM_ARGS": f"--history-minutes 2 {rates}"})
        demo.start()
        try:
            instance = demo.wait_for("Dagster instance", lambda: (demo.home / "history").exists() and demo.instance(),
                                     120, every_s=1)
            pid = demo.wait_for("stream step process", lambda: stream_pid(instance), 180, every_s=2)
            samples: list[tuple[float, float]] = []
            t0 = time.time()
            while time.time() - t0 < args.minutes * 60:
                rss = rss_mb(pid)
                if rss is None:
                    print(f"the stream process {pid} is gone after {time.time() - t0:.0f} s")
                    break
                samples.append((time.time() - t0, rss))
                time.sleep(10)
            recorded = sum(1 for r in instance.fetch_materializations(raw_trades_key("BTCUSDT"), limit=1000).records
                           if r.asset_materialization.metadata["source"].value == "stream")
        finally:
            demo.stop()
    if not samples:
        print("no memory sample")
        return
    second_half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    slope = ((second_half[-1][1] - second_half[0][1]) / ((second_half[-1][0] - second_half[0][0]) / 60)
             if len(second_half) > 1 and second_half[-1][0] > second_half[0][0] else 0.0)
    print(f"stream step process at 3 x 400 trades/s over {samples[-1][0] / 60:.1f} min ({len(samples)} samples, "
          f"{recorded} BTCUSDT minutes recorded from the stream): RSS start {samples[0][1]:.0f} MB, "
          f"max {max(s[1] for s in samples):.0f} MB, end {samples[-1][1]:.0f} MB; second-half slope "
          f"{slope:+.2f} MB/min (goal <= 200 MB and flat)")


if __name__ == "__main__":
    main()
