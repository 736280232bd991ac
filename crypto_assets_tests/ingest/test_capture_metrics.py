"""The capture process's Prometheus endpoint, scraped over HTTP while it streams from the simulator: trades counted
per symbol, a minute recorded by its source, a dropped connection counted as a reconnect; and a taken port is a
warning in the run's log while the capture goes on."""

import socket
import threading
import time
from decimal import Decimal

import pytest
import requests

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.exchange.models import Kline
from crypto_assets.ingest.capture_process import Alive, LogLine, decode_message
from crypto_assets.ingest.spool import MinuteSpool, SpooledMinute
from crypto_assets.minutes import MINUTE_MS
from crypto_assets_tests.ground_truth import past_minute, truth
from crypto_assets_tests.ingest.test_capture_process import start
from crypto_assets_tests.ingest.test_metrics import scraped
from crypto_assets_tests.ports import free_port

pytestmark = pytest.mark.integration

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@pytest.fixture
def sim():
    """A simulator of its own: the test drops its connections."""
    with Simulator(SimulatorConfig(symbols=[symbol_config(s) for s in SYMBOLS], history_minutes=5)) as simulator:
        yield simulator


def scrape(port: int) -> dict:
    return scraped(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)


def wait_for(port: int, condition, what: str, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    got: dict = {}
    while time.monotonic() < deadline:
        try:
            got = scrape(port)
        except requests.ConnectionError:
            got = {}
        if got and condition(got):
            return got
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout_s} s; last scrape: {sorted(got.items())[:60]}")


def trades(got: dict, symbol: str) -> float:
    return got.get(("crypto_capture_trades_received_total", (("symbol", symbol),)), 0)


def reconnects(got: dict) -> float:
    return sum(v for (name, _), v in got.items() if name == "crypto_capture_reconnects_total")


def spool_one_minute(sim, folder) -> None:
    """A proven minute left in the spool (as by a process that died while the lake was down): the new process
    writes it at once, so a minute is recorded without waiting for one to end. Its trades come over REST (no
    ``received_at``): source ``rest``."""
    minute = past_minute(sim, 3)
    minute_trades = truth(sim, "BTCUSDT", minute, minute + MINUTE_MS)
    assert minute_trades
    kline = Kline(
        "BTCUSDT",
        minute,
        minute + MINUTE_MS - 1,
        *(["0"] * 4),
        str(sum(Decimal(t.qty) for t in minute_trades)),
        "0",
        len(minute_trades),
        "0",
        "0",
        first_trade_id=minute_trades[0].trade_id,
        last_trade_id=minute_trades[-1].trade_id,
    )
    spool = MinuteSpool(folder, 2**20)
    spool.put(SpooledMinute("BTCUSDT", minute, minute_trades, kline, minute + MINUTE_MS))
    spool.close()


def test_metrics_scraped_over_http_follow_the_capture(sim, tmp_path):
    spool_one_minute(sim, tmp_path / "spool")
    port = free_port()
    capture = start(sim, tmp_path, metrics_port=port, shard="0/1")
    lines: list[bytes] = []  # read on, so the process never blocks on a full pipe
    threading.Thread(target=lambda: lines.extend(iter(capture.stdout.readline, b"")), daemon=True).start()
    try:
        first = wait_for(port, lambda g: all(trades(g, s) > 0 for s in SYMBOLS), "trades of both symbols counted")
        assert first[("crypto_capture_info", (("shard", "0/1"), ("symbols", "2")))] == 1
        assert first[("crypto_capture_connections", ())] == 1
        later = wait_for(
            port,
            lambda g: (
                all(trades(g, s) > trades(first, s) for s in SYMBOLS)
                and g.get(("crypto_capture_minutes_recorded_total", (("source", "rest"),))) == 1
            ),
            "the trade counters rising and the spooled minute recorded",
        )
        assert later[("crypto_capture_last_price", (("symbol", "BTCUSDT"),))] > 0
        assert abs(later[("crypto_capture_last_trade_timestamp_seconds", (("symbol", "ETHUSDT"),))] - time.time()) < 60
        # a latency per recorded minute: the spooled one, and any the stream recorded if a minute ended meanwhile
        assert later[("crypto_capture_minute_latency_seconds_count", ())] >= 1
        assert later[("crypto_lake_write_seconds_count", ())] >= 1
        assert later[("crypto_capture_spool_minutes", ())] == 0
        assert reconnects(later) == 0

        assert sim.drop_connections() == 1
        after = wait_for(
            port,
            lambda g: reconnects(g) >= 1 and g[("crypto_capture_connections", ())] == 1,
            "the dropped connection counted as a reconnect",
        )
        assert after[("crypto_capture_reconnects_total", (("cause", "error"),))] == 1, after  # "connection lost"
        # the reconnect's repair went over REST, through the shared budget: its weight and the limit are seen
        repaired = wait_for(port, lambda g: g[("crypto_capture_repairs_total", ())] >= 1, "the repair counted")
        assert repaired[("crypto_rest_weight_limit", ())] > 0
    finally:
        capture.terminate()
    assert capture.wait(15) == 0


def test_a_taken_port_is_a_warning_and_the_capture_streams_on(sim, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        capture = start(sim, tmp_path, metrics_port=port)
        try:
            messages = []
            deadline = time.time() + 30
            while time.time() < deadline and sum(isinstance(m, Alive) for m in messages) < 2:
                messages.append(decode_message(capture.stdout.readline()))
        finally:
            capture.terminate()
        assert capture.wait(15) == 0
    warnings = [m.message for m in messages if isinstance(m, LogLine) and m.level == "WARNING"]
    assert any(f"127.0.0.1:{port}" in line and "metrics are off" in line for line in warnings), warnings
    assert any(isinstance(m, LogLine) and "stream connected" in m.message for m in messages)
    assert sum(isinstance(m, Alive) for m in messages) >= 2  # records kept flowing
