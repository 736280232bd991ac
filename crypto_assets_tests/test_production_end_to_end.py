"""`deploy/dagster.yaml` for real: PostgreSQL, S3 and Dagster's three processes apart, two of them killed with kill -9.

The test starts what a production deployment runs, each a process of its own on 127.0.0.1:
- a PostgreSQL server made from this machine's packages (``postgres_server.py``): the instance's storage;
- moto's S3 server: the lake (``s3://lake/crypto``) and the compute logs' bucket;
- the exchange simulator (in this process), with history since the start of the previous UTC hour;
- ``dagster api grpc`` (the code server), ``dagster-webserver`` and ``dagster-daemon run``, loading
  ``deploy/workspace.yaml`` with a DAGSTER_HOME whose ``dagster.yaml`` is ``deploy/dagster.yaml`` with one change: the
  DefaultRunLauncher instead of the DockerRunLauncher (no Docker engine here), so run workers are processes launched
  by the code server. Storage, run queue limits, run monitoring, run retries and S3 compute logs are the file's own.

Nobody clicks anything until the dbt hour: the keep-alive sensor starts the stream, which records minutes (the UI's
GraphQL shows their source); the gap sensor heals the history before it (the gap). Then the previous hour's dbt build
is launched through the webserver (GraphQL, as the UI launches a partition) and builds from S3 while the exchange
misbehaves: the stream is dropped, gets a malformed frame and a half-open socket, and REST answers a 429 storm. Then
the streaming run's step process is killed with SIGKILL (the keep-alive sensor starts another run), and after it the
daemon and the code server, which are started again. Afterwards:
- exactly one streaming run is in flight, and one capture process writes the lake;
- the stream records minutes again;
- every minute from the start of the previous hour to the last whole minute is materialized (no minute lost), and
  every minute file in S3 equals the simulator's ground truth trade by trade; no REST caller was banned.
Everything the test started is stopped, also when it fails (each process is the leader of its own session: the run
workers and capture processes started under the code server are killed with it at the end).
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import duckdb
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from dagster._core.instance.ref import InstanceRef

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.defs.analytics.schedules import HOURLY_JOB
from crypto_assets.defs.names import IN_FLIGHT_STATUSES
from crypto_assets.defs.raw.gap_backfill import GAP_TAG
from crypto_assets.lake import lake_from_url
from crypto_assets.minutes import MINUTE_MS, floor_minute
from crypto_assets.minutes import hour_key as hour_key_of
from crypto_assets.settings import PROJECT_ROOT
from crypto_assets_tests.demo_process import code_location_loaded, graphql
from crypto_assets_tests.end_to_end_checks import (
    STREAM_QUERY,
    SYMBOLS,
    assert_lake_equals_exchange,
    capture_processes,
    missing_partitions,
    step_pids,
    stream_minutes_recorded,
    stream_runs,
)
from crypto_assets_tests.ground_truth import truth
from crypto_assets_tests.ports import free_port
from crypto_assets_tests.postgres_server import postgres_server

pytestmark = [pytest.mark.integration, pytest.mark.e2e]  # postgres_server fails naming what is missing

HOUR_MS = 3_600_000
LAKE_URL = "s3://lake/crypto"
COMPUTE_LOGS_BUCKET = "compute-logs"
BIN = Path(sys.executable).parent
# Slow symbols: the test is about the topology, not volume (the other end-to-end tests run realistic rates); the gap
# runs that heal up to two hours of history then take seconds each, not a minute.
TRADES_PER_SECOND = 4.0
LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def instance_yaml() -> str:
    """deploy/dagster.yaml with the DefaultRunLauncher in place of the DockerRunLauncher; the rest unchanged."""
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    assert config["run_launcher"]["class"] == "DockerRunLauncher"
    config["run_launcher"] = {"module": "dagster", "class": "DefaultRunLauncher"}
    return yaml.safe_dump(config, sort_keys=False)


class Deployment:
    """The code server, the webserver and the daemon, each started (and restarted) as its own process and session."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir, self.env = workdir, env
        self.webserver_port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        self.sessions: list[int] = []  # every process group ever started: all are killed at the end

    def command(self, name: str) -> list[str]:
        workspace = str(PROJECT_ROOT / "deploy" / "workspace.yaml")
        return {
            "code": [str(BIN / "dagster"), "api", "grpc", "-h", "127.0.0.1", "-p", self.env["DAGSTER_CODE_SERVER_PORT"]]
            + ["-m", "crypto_assets.definitions"],
            "webserver": [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.webserver_port)]
            + ["-w", workspace],
            "daemon": [str(BIN / "dagster-daemon"), "run", "-w", workspace],
        }[name]

    def start(self, name: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")
        process = subprocess.Popen(
            self.command(name),
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        self.sessions.append(process.pid)

    def start_code_server(self) -> None:
        """The code server, started and waited for until it answers its health check (compose's healthcheck)."""
        self.start("code")
        port = self.env["DAGSTER_CODE_SERVER_PORT"]
        health = [str(BIN / "dagster"), "api", "grpc-health-check", "-p", port, "-h", "127.0.0.1"]
        self.wait_for(
            "the code server's health check",
            lambda: subprocess.run(health, env=self.env, capture_output=True, timeout=30).returncode == 0,
            180,
            every_s=1,
        )

    def kill9(self, name: str) -> None:
        """SIGKILL the process alone (what a crashed container or OOM kill does), not its children."""
        process = self.processes.pop(name)
        process.kill()
        process.wait(10)

    def tail(self) -> str:
        return "\n".join(
            f"--- {name}.log\n" + (self.workdir / f"{name}.log").read_text(errors="replace")[-1500:]
            for name in ("code", "webserver", "daemon")
        )

    def wait_for(self, what: str, condition: Callable, timeout_s: float, every_s: float = 3):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            for name, process in self.processes.items():
                assert process.poll() is None, f"the {name} exited while waiting for {what}:\n{self.tail()}"
            try:
                value = condition()
            except OSError:  # the webserver is not up yet
                value = None
            if value:
                return value
            time.sleep(every_s)
        raise TimeoutError(f"no {what} within {timeout_s:.0f} s:\n{self.tail()}")

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.webserver_port, query, variables)

    def stop(self) -> None:
        for signum, grace_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            for session in self.sessions:
                try:
                    os.killpg(session, signum)
                except ProcessLookupError:
                    pass
            deadline = time.time() + grace_s
            while time.time() < deadline and any(alive(s) for s in self.sessions):
                time.sleep(0.2)


def alive(session: int) -> bool:
    try:
        os.killpg(session, 0)
        return True
    except ProcessLookupError:
        return False


def launch_hour_build(deployment: Deployment, hour_key: str) -> str:
    """The dbt hour launched through the webserver, as the UI launches one partition of the hourly job."""
    params = {
        "selector": {
            "repositoryLocationName": "crypto_assets",
            "repositoryName": "__repository__",
            "jobName": HOURLY_JOB,
        },
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": hour_key}]},
    }
    result = deployment.graphql(LAUNCH_RUN, {"executionParams": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", f"the dbt hour was not launched: {result}"
    return result["run"]["runId"]


@pytest.mark.timeout(840)
def test_the_production_topology_streams_heals_builds_and_survives_kill_9_of_daemon_and_code_server(
    tmp_path, moto_endpoint, monkeypatch
):
    started = time.time()
    now_ms = int(started * 1000)
    hour_ms = now_ms // HOUR_MS * HOUR_MS - HOUR_MS  # the previous UTC hour: complete, all of it history
    symbols = [symbol_config(s, trades_per_second=TRADES_PER_SECOND) for s in SYMBOLS]
    config = SimulatorConfig(symbols=symbols, origin_ms=hour_ms - 2 * MINUTE_MS)
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", **_keys(aws))
    for bucket in ("lake", COMPUTE_LOGS_BUCKET):
        s3.create_bucket(Bucket=bucket)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml())

    with postgres_server(tmp_path / "postgres") as pg, Simulator(config) as sim:
        pg.create_database("dagster")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BINANCE_", "AWS_", "CRYPTO_", "DAGSTER_"))},
            **pg.dagster_env("dagster"),
            **aws,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto_endpoint,
            "DAGSTER_HOME": str(home),
            "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
            "DAGSTER_CODE_SERVER_PORT": str(free_port()),
            "DAGSTER_COMPUTE_LOGS_BUCKET": COMPUTE_LOGS_BUCKET,
            "BINANCE_REST_URL": sim.rest_url,
            "BINANCE_WS_URL": sim.ws_url,
            "BINANCE_ARCHIVE_URL": sim.archive_url,
            "CRYPTO_SYMBOLS": ",".join(SYMBOLS),
            "CRYPTO_LAKE_URL": LAKE_URL,
            "CRYPTO_PARTITION_DAYS": "1",
            # the history to heal starts at the previous UTC hour: nearly 2 h back when the test starts at xx:59, and
            # the gap sensor (newest first) reaches the oldest minutes minutes later; 2 h let them age out of its view
            "CRYPTO_GAP_LOOKBACK_HOURS": "3",
            "CRYPTO_GAP_SETTLE_SECONDS": "15",
            "CRYPTO_SPOOL_DIR": str(tmp_path / "state" / "spool"),
            "CRYPTO_WEIGHT_BUDGET_DIR": str(tmp_path / "state" / "weight_budget"),
            "DBT_DUCKDB_PATH": str(tmp_path / "state" / "crypto.duckdb"),
        }
        for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
            monkeypatch.setenv(name, env[name])  # this process reads the instance too
        for name in ("AWS_ENDPOINT_URL", "DAGSTER_COMPUTE_LOGS_BUCKET", *aws):
            monkeypatch.setenv(name, env[name])
        deployment = Deployment(tmp_path, env)
        try:
            deployment.start_code_server()  # webserver and daemon start once it answers, as in docker-compose.yml
            deployment.start("webserver")
            deployment.start("daemon")
            deployment.wait_for(
                "the webserver with the code server's location",
                lambda: code_location_loaded(deployment.webserver_port),
                120,
                1,
            )
            instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))

            # -- no click: the keep-alive sensor starts the stream, which records minutes as they close (in the full
            # suite, beside two other deployments booting on 2 cores, more than 240 s was seen)
            streamed = deployment.wait_for(
                "a minute recorded by the stream",
                lambda: stream_minutes_recorded(instance, "BTCUSDT", now_ms),
                360,
            )
            ui = deployment.graphql(STREAM_QUERY, {"partition": streamed[0]})["assetOrError"]["assetMaterializations"]
            assert any(e.get("text") in ("stream", "stream+rest") for m in ui for e in m["metadataEntries"]), ui

            # -- the gap sensor heals the history before it: the previous hour and what follows, every symbol
            heal_end = floor_minute(now_ms)
            deployment.wait_for(
                "the history healed by the gap sensor",
                lambda: not missing_partitions(instance, hour_ms, heal_end, SYMBOLS),
                360,
                every_s=5,
            )
            assert any(GAP_TAG in r.tags for r in instance.get_runs()), "no gap run healed the history"

            # -- an hour of dbt, launched through the webserver, builds from S3 while the exchange misbehaves
            hour_key = hour_key_of(hour_ms)
            build = launch_hour_build(deployment, hour_key)
            sim.drop_connections()
            time.sleep(15)
            sim.send_malformed("ETHUSDT", 1)
            sim.half_open(duration_s=45)  # the stream notices after 30 s of silence and reconnects
            time.sleep(20)
            sim.rate_limit_storm(30, retry_after_s=2)
            deployment.wait_for(
                "the stream reconnected after the half-open socket",
                lambda: stream_minutes_recorded(instance, "BTCUSDT", int(time.time() * 1000) - 2 * MINUTE_MS),
                150,
            )
            finished = deployment.wait_for(
                "the dbt hour's run to finish",
                lambda: (r := instance.get_run_by_id(build)) and r.is_finished and r,
                300,
            )
            assert finished.status == DagsterRunStatus.SUCCESS, deployment.tail()
            assert hour_key in instance.get_materialized_partitions(AssetKey("candles_1h"))
            with duckdb.connect(env["DBT_DUCKDB_PATH"], read_only=True) as warehouse:
                candles = warehouse.execute("select symbol, trade_count, minute_count from candles_1h").fetchall()
            assert sorted(candles) == sorted(
                (symbol, len(truth(sim, symbol, hour_ms, hour_ms + HOUR_MS)), 60) for symbol in SYMBOLS
            )

            # -- the streaming run's step process dies hard: the keep-alive sensor starts one other run, no second
            def stream_step():  # a run just started by the keep-alive may not have started its step yet
                runs = stream_runs(instance, [DagsterRunStatus.STARTED])
                return (runs[0], step_pids(instance, runs[0])) if runs and step_pids(instance, runs[0]) else None

            victim, pids = deployment.wait_for("a streaming run with its step process", stream_step, 90)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            deployment.wait_for(
                "the replacement streaming run",
                lambda: [r for r in stream_runs(instance, [DagsterRunStatus.STARTED]) if r.run_id != victim.run_id],
                120,
            )

            # -- kill -9 of the daemon and the code server, then both started again
            before_kill = {r.run_id for r in stream_runs(instance)}
            deployment.kill9("daemon")
            deployment.kill9("code")
            killed_at = time.time()
            print(f"kill -9 of the daemon and the code server at {time.strftime('%H:%M:%S')}", flush=True)
            time.sleep(10)
            deployment.start_code_server()
            deployment.start("daemon")
            deployment.wait_for(
                "a minute recorded by the stream after the restart",
                lambda: stream_minutes_recorded(instance, "BTCUSDT", floor_minute(int(killed_at * 1000)) + MINUTE_MS),
                240,
            )
            time.sleep(max(0.0, killed_at + 90 - time.time()))  # the keep-alive has ticked for a minute since
            in_flight = stream_runs(instance, IN_FLIGHT_STATUSES)
            assert len(in_flight) == 1, f"streaming runs in flight after the restart: {[r.run_id for r in in_flight]}"
            assert len(capture_processes(LAKE_URL)) == 1
            kept = "the same" if in_flight[0].run_id in before_kill else "a new one"
            print(f"after the restart: streaming run {in_flight[0].run_id[:8]} ({kept})", flush=True)

            # -- no minute lost: every minute materialized, every file equal to the exchange's ground truth
            end_ms = floor_minute(int(time.time() * 1000)) - MINUTE_MS
            deployment.wait_for(
                "every minute up to the last one materialized",
                lambda: not missing_partitions(instance, hour_ms, end_ms, SYMBOLS),
                240,
                every_s=5,
            )
            lake = lake_from_url(LAKE_URL, endpoint_url=moto_endpoint)
            assert_lake_equals_exchange(lake, lambda s, m: truth(sim, s, m, m + MINUTE_MS), SYMBOLS, hour_ms, end_ms)
            weights = sim.state()["weights"]
            assert all(ip["bans"] == 0 for ip in weights.values()), weights  # the 429 storm never became a 418
            print(f"production topology: {(time.time() - started) / 60:.1f} min in all", flush=True)
        finally:
            deployment.stop()


def _keys(aws: dict[str, str]) -> dict[str, str]:
    return {"aws_access_key_id": aws["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": aws["AWS_SECRET_ACCESS_KEY"]}
