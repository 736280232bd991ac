"""GraphQL time of the partitions view of one raw asset on a running dagster-webserver (goal <= 3 s at the default
window).

Starts ``dagster-webserver -w workspace.yaml`` (the project's code location, module crypto_assets.definitions, in
the code server the webserver spawns; no daemon, so no schedule runs and competes for the CPU) with a throw-away
DAGSTER_HOME and the exchange URLs pointing at a closed port (loading the definitions does not contact the
exchange), waits until GraphQL answers with the asset, then times the queries the UI issues for
raw_trades/btcusdt, copied from dagster-webserver's UI bundle:

- PartitionHealthQuery: partitionKeysByDimension + assetPartitionStatuses, what the asset's Partitions tab and the
  Materialize dialog (partition picker with its health bar) load; the headline figure;
- FullPartitionsQuery: partitionKeysByDimension alone;
- AssetCheckPartitionHealthQuery: the same for one of the asset's partitioned check (minute_complete);
- AssetStaleStatusQuery: assetNodes partitionStats (counts only, the asset graph and overview).

Each is sent ``--reps`` times in a row (the first included); printed: keys returned, response size, first,
median and max seconds (client side: request sent -> whole JSON read). Done at CRYPTO_PARTITION_DAYS=30 (the
default, goal <= 3 s for the partitions view), then 7 and 90 for context (90 with 3 repetitions). The
instance is empty: no materialization, so the status ranges are trivial; the keys are the cost.

    .venv/bin/python bench/partitions_view.py [--days 30,7,90] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from crypto_assets.settings import DEFAULT_PARTITION_DAYS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ASSET_KEY = ["raw_trades", "btcusdt"]
CHECK_NAME = "minute_complete"
GOAL_S = 3.0
START_TIMEOUT_S = 90

TIME_STATUSES = "ranges { status startTime endTime startKey endKey }"
QUERIES = {
    "PartitionHealthQuery": """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on TimePartitionStatuses { %(time)s }
        ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey primaryDimEndKey primaryDimStartTime primaryDimEndTime
            secondaryDim {
              ... on TimePartitionStatuses { %(time)s }
              ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
            }
          }
        }
      }
    }
  }
}"""
    % {"time": TIME_STATUSES},
    "FullPartitionsQuery": """
query FullPartitionsQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode { id partitionKeysByDimension { name type partitionKeys } }
  }
}""",
    "AssetCheckPartitionHealthQuery": """
query AssetCheckPartitionHealthQuery($assetKey: AssetKeyInput!, $checkName: String!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      assetCheckOrError(checkName: $checkName) {
        ... on AssetCheck {
          name
          partitionKeysByDimension { name type partitionKeys }
          partitionStatuses {
            ... on AssetCheckDefaultPartitionStatuses {
              succeededPartitions failedPartitions inProgressPartitions skippedPartitions executionFailedPartitions
            }
            ... on AssetCheckTimePartitionStatuses { ranges { startTime endTime startKey endKey status } }
          }
        }
      }
    }
  }
}""",
    "AssetStaleStatusQuery": """
query AssetStaleStatusQuery($assetKeys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $assetKeys) {
    id
    assetKey { path }
    isMaterializable
    staleStatus
    partitionStats { numMaterialized numMaterializing numPartitions numFailed }
  }
}""",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None, timeout: float = 120) -> tuple[dict, int]:
    """The query's data and the response's size in bytes; raises on a GraphQL error."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    answer = json.loads(body)
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {json.dumps(answer['errors'])[:1000]}")
    return answer["data"], len(body)


def variables_of(name: str) -> dict:
    if name == "AssetStaleStatusQuery":
        return {"assetKeys": [{"path": ASSET_KEY}]}
    if name == "AssetCheckPartitionHealthQuery":
        return {"assetKey": {"path": ASSET_KEY}, "checkName": CHECK_NAME}
    return {"assetKey": {"path": ASSET_KEY}}


def keys_returned(name: str, data: dict) -> int:
    if name == "AssetStaleStatusQuery":
        return data["assetNodes"][0]["partitionStats"]["numPartitions"]
    node = data["assetNodeOrError"]
    if name == "AssetCheckPartitionHealthQuery":
        node = node["assetCheckOrError"]
    return sum(len(d["partitionKeys"]) for d in node["partitionKeysByDimension"])


class Webserver:
    """dagster-webserver for the project's workspace in its own session, stopped with its whole process group."""

    def __init__(self, days: int, home: str, lake: str):
        self.port = free_port()
        self.days = days
        self.env = {
            **os.environ,
            "DAGSTER_HOME": home,
            "CRYPTO_PARTITION_DAYS": str(days),
            "CRYPTO_LAKE_URL": lake,
            "BINANCE_REST_URL": "http://127.0.0.1:9",
            "BINANCE_WS_URL": "ws://127.0.0.1:9",
        }
        self.log_path = Path(home) / "webserver.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Webserver:
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                str(PROJECT_ROOT / ".venv/bin/dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-w",
                "workspace.yaml",
            ],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        started = time.monotonic()
        probe = "query { assetNodeOrError(assetKey: {path: %s}) { __typename } }" % json.dumps(ASSET_KEY)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster-webserver exited: {self.log_path.read_text()[-3000:]}")
            if time.monotonic() - started > START_TIMEOUT_S:
                self.__exit__()
                raise RuntimeError(
                    f"no asset over GraphQL within {START_TIMEOUT_S} s: {self.log_path.read_text()[-3000:]}"
                )
            try:
                data, _ = graphql(self.port, probe, timeout=10)
                if data["assetNodeOrError"]["__typename"] == "AssetNode":
                    self.started_s = time.monotonic() - started
                    return self
            except (OSError, RuntimeError, KeyError, TypeError):
                pass  # not up yet, or the code location still loading
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        for sig, wait_s in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # the code server it spawned lives in the same process group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None
        self.log.close()


def measure(days: int, reps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(f"{tmp}/home")
        with Webserver(days, f"{tmp}/home", f"{tmp}/lake") as web:
            print(f"CRYPTO_PARTITION_DAYS={days}: webserver answering with the asset after {web.started_s:.1f} s")
            for name, query in QUERIES.items():
                times, keys, size = [], 0, 0
                for _ in range(reps):
                    began = time.perf_counter()
                    data, size = graphql(web.port, query, variables_of(name))
                    times.append(time.perf_counter() - began)
                    keys = keys_returned(name, data)
                goal = ""
                if name == "PartitionHealthQuery" and days == DEFAULT_PARTITION_DAYS:
                    goal = f" (goal <= {GOAL_S:g} s: {'met' if statistics.median(times) <= GOAL_S else 'NOT met'})"
                print(
                    f"  {name:31s} {keys:>7,} keys {size / 1e6:6.2f} MB  first {times[0]:5.2f} s  median "
                    f"{statistics.median(times):5.2f} s  max {max(times):5.2f} s  ({reps} runs){goal}"
                )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", default="30,7,90", help="CRYPTO_PARTITION_DAYS values to measure, in order")
    p.add_argument("--reps", type=int, default=5, help="repetitions of each query (at most 3 beyond 60 days)")
    args = p.parse_args(argv)
    for days in [int(d) for d in args.days.split(",") if d.strip()]:
        measure(days, args.reps if days <= 60 else min(args.reps, 3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
