"""`scripts/demo.sh` (what `make demo` runs: the simulator beside `dagster dev`) as a process that tests and benches
drive: free ports, a throw-away DAGSTER_HOME and lake, simulator faults over HTTP, the Dagster instance and GraphQL."""

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from crypto_assets.exchange.models import Trade, parse_rest_trades
from crypto_assets.minutes import MINUTE_MS
from crypto_assets_tests.ports import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]


LOCATIONS_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { name
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """POST a query to the webserver on ``port`` as the UI does; GraphQL errors fail the test with their messages."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert not answer.get("errors"), f"GraphQL errors: {answer['errors']}"
    return answer["data"]


def code_location_loaded(port: int) -> bool:
    """Whether the webserver on ``port`` has loaded every code location; one that failed to load fails here."""
    entries = graphql(port, LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
    errors = [e for e in entries if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
    assert not errors, f"the code location failed to load: {errors}"
    return bool(entries) and all(
        (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation" for e in entries
    )


class Demo:
    def __init__(self, workdir: Path, env: dict[str, str]):
        self.sim_port, self.dagster_port = free_port(), free_port()
        self.home, self.lake_path, self.log_path = workdir / "dagster_home", workdir / "lake", workdir / "demo.log"
        self.env = {
            **os.environ,
            "SIM_PORT": str(self.sim_port),
            "DAGSTER_PORT": str(self.dagster_port),
            "DAGSTER_HOME": str(self.home),
            "CRYPTO_LAKE_URL": str(self.lake_path),
            **env,
        }
        for name in ("BINANCE_REST_URL", "BINANCE_WS_URL", "BINANCE_ARCHIVE_URL", "AWS_ENDPOINT_URL"):
            self.env.pop(name, None)
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"

    def start(self) -> None:
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            ["bash", "scripts/demo.sh"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.log.close()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def instance(self) -> DagsterInstance:
        return DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home)))

    def fault(self, name: str, **args) -> None:
        request = urllib.request.Request(
            f"{self.sim_url}/_sim/faults/{name}",
            data=json.dumps(args).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()

    def minute_truth(self, symbol: str, minute_ms: int) -> list[Trade]:
        """The simulator's ground truth of one minute (``GET /_sim/trades``), as REST would deliver it."""
        answer = self.sim_get(f"/_sim/trades?symbol={symbol}&startTime={minute_ms}&endTime={minute_ms + MINUTE_MS}")
        return parse_rest_trades(symbol, json.dumps(answer).encode())

    def sim_get(self, path: str):
        with urllib.request.urlopen(self.sim_url + path, timeout=30) as response:
            return json.loads(response.read())

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.dagster_port, query, variables)

    def loaded_instance(self) -> DagsterInstance:
        """The demo's Dagster instance, opened once `dagster dev` has loaded the code location: opening it while
        dagster dev's own processes still create the SQLite storage can race them (seen: alembic "more than one
        head" in the code server, which then never starts a run). A location that failed to load fails here."""

        self.wait_for(
            "dagster dev with its code location loaded", lambda: code_location_loaded(self.dagster_port), 120, every_s=1
        )
        return self.instance()

    def wait_for(self, what: str, condition, timeout_s: float, every_s: float = 3):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            assert self.process.poll() is None, f"the demo exited while waiting for {what}:\n{self.tail()}"
            try:
                value = condition()
            except OSError:  # the webserver or the simulator is not up yet
                value = None
            if value:
                return value
            time.sleep(every_s)
        raise TimeoutError(f"no {what} within {timeout_s:.0f} s:\n{self.tail()}")
