"""The alert rules proven on a real Prometheus server (Debian's ``prometheus``, installed by ``make test-tools``)
scraping a real capture process that streams from the simulator: while the simulator drops the stream's connections
and the lake goes away, Prometheus's HTTP API shows the reconnect counter, the lake's write errors and the spool's
gauges moving, and ReconnectStorm, LakeWriteFailing and SpoolGrowing going pending or firing; on a healthy capture no
alert fires and every metric the rules and the dashboard query is scraped.

Prometheus runs with the shipped deploy/prometheus/alerts.yml, copied by the test with every ``for:`` divided by
``FOR_SCALE`` (the expressions untouched), and scrapes and evaluates every second."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.ingest.capture_process import ENVIRONMENT, CaptureConfig, LogLine, command, decode_message
from crypto_assets_tests.ports import free_port
from crypto_assets_tests.test_monitoring import (
    PROMETHEUS,
    SCRAPE_JOB,
    dashboard_queries,
    dashboards,
    metric_names,
    rules,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]  # minutes of real time: a lake outage over a minute's end

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
FOR_SCALE = 20  # for: 1m -> 3 s, 2m -> 6 s, 5m -> 15 s, 10m -> 30 s
DURATION = re.compile(r"([0-9]+)([smh])")


def seconds(duration: str) -> int:
    [(number, unit)] = DURATION.findall(duration)
    return int(number) * {"s": 1, "m": 60, "h": 3600}[unit]


def shortened_rules(path: Path) -> Path:
    """The shipped rules with every ``for:`` divided by FOR_SCALE, written beside the test's Prometheus."""
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["for"] = f"{max(1, seconds(rule['for']) // FOR_SCALE)}s"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class PrometheusServer:
    """``prometheus`` on 127.0.0.1, scraping ``target`` as the job of the shipped rules every second."""

    def __init__(self, folder: Path, target: str):
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: `make test-tools` installs it (Debian's prometheus package)"
        folder.mkdir(parents=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(shortened_rules(folder / "alerts.yml"))],
            "scrape_configs": [{"job_name": SCRAPE_JOB, "static_configs": [{"targets": [target]}]}],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(folder / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.folder = folder
        wait_for("Prometheus ready", self._ready, 60, every_s=0.2)

    def _ready(self) -> bool:
        assert self.process.poll() is None, (self.folder / "prometheus.log").read_text()[-3000:]
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def query(self, expr: str) -> float | None:
        """One instant query's single value (the sum of its series), None when it returns no series."""
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert answer["status"] == "success", answer
        series = answer["data"]["result"]
        return sum(float(s["value"][1]) for s in series) if series else None

    def alerts(self) -> dict[str, str]:
        """Alert name -> its state (pending or firing) of every active alert."""
        answer = requests.get(f"{self.url}/api/v1/alerts", timeout=5).json()
        assert answer["status"] == "success", answer
        return {a["labels"]["alertname"]: a["state"] for a in answer["data"]["alerts"]}

    def metric_names(self) -> set[str]:
        answer = requests.get(f"{self.url}/api/v1/label/__name__/values", timeout=5).json()
        return set(answer["data"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


def wait_for(what, condition, timeout_s, every_s=1.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if value := condition():
            return value
        time.sleep(every_s)
    raise TimeoutError(f"no {what} within {timeout_s:.0f} s")


class Capture:
    """A capture process serving its metrics on ``metrics_port``; its reports are read (and kept) by a thread."""

    def __init__(self, sim, tmp_path: Path, metrics_port: int):
        self.lake = tmp_path / "lake"
        self.process = subprocess.Popen(
            command(
                CaptureConfig(
                    ws_url=sim.ws_url,
                    rest_url=sim.rest_url,
                    budget_dir=str(tmp_path / "budget"),
                    symbols=SYMBOLS,
                    lake_url=str(self.lake),
                    endpoint_url=None,
                    spool_dir=str(tmp_path / "spool"),
                    spool_max_mb=64,
                    symbols_per_connection=1,  # two connections: a drop is two reconnects
                    metrics_host="127.0.0.1",
                    metrics_port=metrics_port,
                )
            ),
            env={**os.environ, **ENVIRONMENT},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.logs: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            message = decode_message(line)
            if isinstance(message, LogLine):
                self.logs.append(message.message)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def sim():
    """A simulator of its own: the test drops its connections."""
    with Simulator(SimulatorConfig(symbols=[symbol_config(s) for s in SYMBOLS], history_minutes=5)) as simulator:
        yield simulator


@pytest.fixture
def monitored(sim, tmp_path):
    """A capture process and a Prometheus scraping it, once Prometheus sees it up."""
    metrics_port = free_port()
    capture = Capture(sim, tmp_path, metrics_port)
    prometheus = None
    try:
        prometheus = PrometheusServer(tmp_path / "prometheus", f"127.0.0.1:{metrics_port}")
        wait_for("capture process up in Prometheus", lambda: prometheus.query(f'up{{job="{SCRAPE_JOB}"}} == 1'), 60)
        yield capture, prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        capture.stop()


class AlertLog:
    """Every state each alert was seen in, polled from Prometheus every second on a thread."""

    def __init__(self, prometheus: PrometheusServer):
        self.prometheus = prometheus
        self.seen: dict[str, set[str]] = {}
        self.started = time.monotonic()
        self.first_seen: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(1.0):
            for name, state in self.prometheus.alerts().items():
                self.seen.setdefault(name, set()).add(state)
                self.first_seen.setdefault((name, state), time.monotonic() - self.started)

    def stop(self) -> dict[str, set[str]]:
        self._stop.set()
        self._thread.join(10)
        return self.seen


@pytest.mark.timeout(240)
def test_a_healthy_capture_fires_no_alert_and_every_queried_metric_is_scraped(monitored):
    capture, prometheus = monitored
    alerts = AlertLog(prometheus)
    trades = f'sum(crypto_capture_trades_received_total{{job="{SCRAPE_JOB}"}})'
    first = wait_for("trades counted", lambda: prometheus.query(trades), 30)
    # a minute's end passes (written and recorded), and Prometheus evaluates the rules for a while after it
    wait_for(
        "a minute recorded",
        lambda: prometheus.query(f'sum(crypto_capture_minutes_recorded_total{{job="{SCRAPE_JOB}"}}) > 0'),
        130,
    )
    time.sleep(30)
    seen = alerts.stop()
    assert prometheus.query(trades) > first
    firing = {name: states for name, states in seen.items() if "firing" in states}
    assert firing == {}, (firing, capture.logs[-20:])
    # pending at most while the first scrape was not in (CaptureDown's absent()): none after it
    late = {key: at for key, at in alerts.first_seen.items() if at > 5}
    assert late == {}, late
    assert prometheus.alerts() == {}

    # every series the rules and the dashboard query is in what Prometheus scraped from the capture process
    queried = {name for rule in rules() for name in metric_names(rule["expr"])}
    queried |= {name for path in dashboards() for expr in dashboard_queries(path) for name in metric_names(expr)}
    assert queried - prometheus.metric_names() == set()
    assert prometheus.query(f'crypto_capture_last_price{{job="{SCRAPE_JOB}", symbol="BTCUSDT"}}') > 0


@pytest.mark.timeout(420)
def test_dropped_connections_and_a_lost_lake_move_the_metrics_and_fire_their_alerts(monitored, sim, tmp_path):
    capture, prometheus = monitored
    alerts = AlertLog(prometheus)
    job = f'job="{SCRAPE_JOB}"'
    reconnects = f"sum(crypto_capture_reconnects_total{{{job}}})"
    assert prometheus.query(reconnects) == 0

    # 1. The exchange drops the stream's connections, again once both are back, until more than 5 reconnects.
    drops = 0
    while (prometheus.query(reconnects) or 0) < 7 and drops < 8:
        before = prometheus.query(reconnects) or 0
        wait_for("both connections up", lambda: prometheus.query(f"crypto_capture_connections{{{job}}}") == 2, 90)
        if sim.drop_connections() == 0:  # not connected to the simulator yet (a loaded machine): drop again
            time.sleep(1)
            continue
        drops += 1
        wait_for(
            f"reconnects after drop {drops}",
            lambda before=before: (
                (prometheus.query(reconnects) or 0) >= before + 2
                and prometheus.query(f"crypto_capture_connections{{{job}}}") == 2
            ),
            90,
        )
    assert prometheus.query(reconnects) >= 7, capture.logs[-20:]
    assert prometheus.query(f'crypto_capture_reconnects_total{{{job}, cause="error"}}') >= 7
    wait_for("ReconnectStorm firing", lambda: alerts.seen.get("ReconnectStorm", set()) >= {"pending", "firing"}, 60)

    # 2. The lake goes away (its folder replaced by a file: no minute file can be written, even by root) over a
    # minute's end: minutes are spooled, writes fail.
    away = tmp_path / "lake-away"
    capture.lake.rename(away)
    capture.lake.write_text("not a folder")
    spool = f"crypto_capture_spool_minutes{{{job}}}"
    errors = f"crypto_lake_write_errors_total{{{job}}}"
    try:
        assert prometheus.query(spool) == 0 and prometheus.query(errors) == 0
        wait_for("minutes in the spool", lambda: (prometheus.query(spool) or 0) >= 2, 100)
        assert prometheus.query(errors) >= 1
        assert prometheus.query(f"crypto_capture_spool_bytes{{{job}}}") > 0
        wait_for(
            "LakeWriteFailing and SpoolGrowing firing",
            lambda: (
                alerts.seen.get("LakeWriteFailing", set()) >= {"pending", "firing"}
                and alerts.seen.get("SpoolGrowing", set()) >= {"pending", "firing"}
            ),
            60,
        )
    finally:
        # 3. The lake is back: the spool drains.
        capture.lake.unlink()
        away.rename(capture.lake)
    wait_for("the spool drained", lambda: prometheus.query(spool) == 0, 60)
    seen = alerts.stop()
    # only what the faults explain: nothing about REST, the exchange's ban, lag or a dead process
    assert set(seen) <= {"ReconnectStorm", "LakeWriteFailing", "SpoolGrowing", "CaptureDown", "MinutesGivenUpPiling"}, (
        seen
    )
    assert "firing" not in seen.get("CaptureDown", set())
