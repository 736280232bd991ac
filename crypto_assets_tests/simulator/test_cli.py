"""``python -m binance_simulator`` as a real subprocess: listening line, REST, streams, the control
path, and clear failures for bad arguments."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from binance_simulator.process import SimulatorProcess
from crypto_assets_tests.simulator._support import api, collect, connect, http, messages

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MODULE = [sys.executable, "-m", "binance_simulator"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cli():
    with SimulatorProcess("--history-minutes", "2", "--rate", "BTCUSDT=80", "--ping-interval", "1") as sim:
        yield sim


def listening_line(sim: SimulatorProcess) -> str:
    return sim.output().partition("\n")[0]


def test_prints_its_listening_line(cli):
    line = listening_line(cli)
    assert line.startswith("Binance simulator listening:")
    assert f"REST http://127.0.0.1:{cli.port}/api/v3" in line
    assert f"streams ws://127.0.0.1:{cli.port}/ws/<stream>" in line
    assert "symbols BTCUSDT,ETHUSDT,SOLUSDT" in line


def test_answers_rest_ping(cli):
    r = api(cli, "ping", source_ip="127.0.0.2")  # an IP of its own: SimulatorProcess's start-up ping weighs too
    assert (r.status, r.body, r.headers["x-mbx-used-weight-1m"]) == (200, b"{}", "1")


def test_streams_trades(cli):
    ws = connect(cli, "/ws/btcusdt@trade")
    try:
        events = messages(collect(ws, 5, until=lambda f: len(f) >= 3))
    finally:
        ws.close()
    assert len(events) >= 3 and all(e["e"] == "trade" and e["s"] == "BTCUSDT" for e in events)


def test_rate_argument_sets_the_trade_rate(cli):
    end = int(time.time() * 1000) - 1000
    rows = http(cli, "/_sim/trades", {"symbol": "BTCUSDT", "startTime": end - 60_000, "endTime": end}).json()
    assert 65 <= len(rows) / 60 <= 110  # --rate BTCUSDT=80 (the default is 40), bursts on top


def test_control_path_answers_promptly_in_the_foreground_process(cli):
    r = http(cli, "/_sim/faults/rest_errors", method="POST", body={"count": 1, "status": 503}, timeout=5)
    assert r.status == 200 and r.elapsed_s < 2
    assert api(cli, "ping").status == 503
    assert api(cli, "ping").status == 200
    state = http(cli, "/_sim/state", timeout=5)
    assert state.status == 200 and state.elapsed_s < 2
    assert state.json()["symbols"] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def test_terminate_stops_it(cli):
    socket.create_connection((cli.host, cli.port), timeout=2).close()
    cli.stop()  # SIGTERM, as SimulatorProcess sends it
    with pytest.raises(OSError):
        socket.create_connection((cli.host, cli.port), timeout=2).close()


@pytest.mark.parametrize("rate", ["BTCUSDT", "BTCUSDT=fast", "BTCUSDT=nan", "DOGEUSDT=5", "BTCUSDT=-3"])
def test_bad_rate_argument_exits_non_zero_with_a_clear_message(rate):
    done = subprocess.run(
        MODULE + ["--port", str(free_port()), "--rate", rate], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "--rate" in done.stderr or "bad simulator configuration" in done.stderr, done.stderr
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
    with SimulatorProcess("--history-minutes", "2", "--symbols", "PEPEUSDT,DOGEBTC,FOOUSDT") as sim:
        line = listening_line(sim)
        assert "symbols PEPEUSDT,DOGEBTC,FOOUSDT" in line, line
        info = api(sim, "exchangeInfo").json()
        filters = {s["symbol"]: {f["filterType"]: f for f in s["filters"]} for s in info["symbols"]}
        assert filters["PEPEUSDT"]["LOT_SIZE"] == {
            "filterType": "LOT_SIZE",
            "minQty": "1.00000000",
            "maxQty": "92233720368.00000000",
            "stepSize": "1.00000000",
        }
        assert filters["DOGEBTC"]["PRICE_FILTER"]["tickSize"] == "0.00000001"
        assert filters["FOOUSDT"]["PRICE_FILTER"] == {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.01000000",
            "maxPrice": "1000000.00000000",
            "tickSize": "0.01000000",
        }
