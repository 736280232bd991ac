"""``python -m crypto_assets.simulator`` as a real subprocess: listening line, REST, streams, the control
path, and clear failures for bad arguments."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from crypto_assets_tests.simulator._support import api, collect, connect, http, messages

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MODULE = [sys.executable, "-m", "crypto_assets.simulator"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Endpoint:
    """What the test helpers need to reach a simulator: host and port (and derived URLs)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.rest_url, self.ws_url = f"http://{host}:{port}", f"ws://{host}:{port}"


def first_line(proc: subprocess.Popen, timeout: float) -> str:
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0] if line else ""


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    port = free_port()
    stderr = (tmp_path_factory.mktemp("cli") / "stderr.log").open("w+")
    proc = subprocess.Popen(MODULE + ["--host", "127.0.0.1", "--port", str(port), "--history-minutes", "2",
                                      "--rate", "BTCUSDT=80", "--ping-interval", "1"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        line = first_line(proc, 30)
        stderr.seek(0)
        assert line, f"no listening line; exit code {proc.poll()}, stderr:\n{stderr.read()}"
        yield proc, Endpoint("127.0.0.1", port), line
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        stderr.close()


def test_prints_its_listening_line(cli):
    _, ep, line = cli
    assert line.startswith("Binance simulator listening:")
    assert f"REST http://127.0.0.1:{ep.port}/api/v3" in line
    assert f"streams ws://127.0.0.1:{ep.port}/ws/<stream>" in line
    assert "symbols BTCUSDT,ETHUSDT,SOLUSDT" in line


def test_answers_rest_ping(cli):
    _, ep, _ = cli
    r = api(ep, "ping")
    assert (r.status, r.body, r.headers["x-mbx-used-weight-1m"]) == (200, b"{}", "1")


def test_streams_trades(cli):
    _, ep, _ = cli
    ws = connect(ep, "/ws/btcusdt@trade")
    try:
        events = messages(collect(ws, 5, until=lambda f: len(f) >= 3))
    finally:
        ws.close()
    assert len(events) >= 3 and all(e["e"] == "trade" and e["s"] == "BTCUSDT" for e in events)


def test_rate_argument_sets_the_trade_rate(cli):
    _, ep, _ = cli
    end = int(time.time() * 1000) - 1000
    rows = http(ep, "/_sim/trades", {"symbol": "BTCUSDT", "startTime": end - 60_000, "endTime": end}).json()
    assert 65 <= len(rows) / 60 <= 110  # --rate BTCUSDT=80 (the default is 40), bursts on top


def test_control_path_answers_promptly_in_the_foreground_process(cli):
    _, ep, _ = cli
    r = http(ep, "/_sim/faults/rest_errors", method="POST", body={"count": 1, "status": 503}, timeout=5)
    assert r.status == 200 and r.elapsed_s < 2
    assert api(ep, "ping").status == 503
    assert api(ep, "ping").status == 200
    state = http(ep, "/_sim/state", timeout=5)
    assert state.status == 200 and state.elapsed_s < 2
    assert state.json()["symbols"] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def test_terminate_stops_it(cli):
    proc, ep, _ = cli
    assert proc.poll() is None
    proc.terminate()
    proc.wait(10)
    with pytest.raises(OSError):
        socket.create_connection((ep.host, ep.port), timeout=2).close()


@pytest.mark.parametrize("rate", ["BTCUSDT", "BTCUSDT=fast", "BTCUSDT=nan", "DOGEUSDT=5", "BTCUSDT=-3"])
def test_bad_rate_argument_exits_non_zero_with_a_clear_message(rate):
    done = subprocess.run(MODULE + ["--port", str(free_port()), "--rate", rate], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert ("--rate" in done.stderr or "bad simulator configuration" in done.stderr), done.stderr
    assert rate.split("=")[0] in done.stderr or rate in done.stderr
    assert "listening" not in done.stdout


def test_a_port_in_use_exits_non_zero_with_a_clear_message():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(MODULE + ["--port", str(port)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"could not listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_symbols_argument_lists_any_symbol_with_its_binance_filters():
    """What `make demo` does with CRYPTO_SYMBOLS: shipped configurations for known symbols, a generic pair with full
    filters for the others."""
    port = free_port()
    proc = subprocess.Popen(MODULE + ["--port", str(port), "--history-minutes", "2", "--symbols",
                                      "PEPEUSDT,DOGEBTC,FOOUSDT"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = first_line(proc, 30)
        assert "symbols PEPEUSDT,DOGEBTC,FOOUSDT" in line, line
        info = api(Endpoint("127.0.0.1", port), "exchangeInfo").json()
        filters = {s["symbol"]: {f["filterType"]: f for f in s["filters"]} for s in info["symbols"]}
        assert filters["PEPEUSDT"]["LOT_SIZE"] == {"filterType": "LOT_SIZE", "minQty": "1.00000000",
                                                   "maxQty": "92233720368.00000000", "stepSize": "1.00000000"}
        assert filters["DOGEBTC"]["PRICE_FILTER"]["tickSize"] == "0.00000001"
        assert filters["FOOUSDT"]["PRICE_FILTER"] == {"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
                                                      "maxPrice": "1000000.00000000", "tickSize": "0.01000000"}
    finally:
        proc.terminate()
        proc.wait(10)
