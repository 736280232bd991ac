"""REQUEST_WEIGHT per IP: documented weights, 429 with Retry-After, 418 bans for clients that keep calling, per-IP
independence, WebSocket connection attempts, and Binance's error codes for bad parameters.

Most tests drive the simulator with a hand-moved clock, so minute boundaries and Retry-After periods are exact and
cost no waiting; the polite-client test runs on the wall clock."""

from __future__ import annotations

import time

import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets_tests.simulator._support import ManualClock, RawWebSocket, api, http, weight

pytestmark = pytest.mark.integration

MID_MINUTE = 1_767_225_630_000  # 2026-01-01 00:00:30 UTC: 30 s before the next minute
SYMBOLS = [symbol_config("BTCUSDT"), symbol_config("ETHUSDT")]

ENDPOINTS = [  # endpoint, parameters, documented weight
    ("ping", {}, 1),
    ("time", {}, 1),
    ("exchangeInfo", {}, 20),
    ("trades", {"symbol": "BTCUSDT"}, 25),
    ("historicalTrades", {"symbol": "BTCUSDT", "fromId": 5_100_000_000}, 25),
    ("aggTrades", {"symbol": "BTCUSDT"}, 4),
    ("klines", {"symbol": "BTCUSDT", "interval": "1m"}, 2),
]


@pytest.fixture(scope="module")
def sim():
    """Default limits, a frozen clock (the minute never rolls over, so used weight only grows)."""
    with Simulator(SimulatorConfig(symbols=SYMBOLS, history_minutes=5), clock=ManualClock(MID_MINUTE)) as s:
        yield s


@pytest.fixture
def small():
    """100 weight a minute, 3 tolerated violations, 120 s bans, on a hand-moved clock."""
    clock = ManualClock(MID_MINUTE)
    config = SimulatorConfig(
        symbols=SYMBOLS, history_minutes=5, weight_per_minute=100, tolerated_violations=3, ban_seconds=120
    )
    with Simulator(config, clock=clock) as s:
        s.test_clock = clock
        yield s


def exhaust(sim, source_ip: str | None = None) -> None:
    """Use the whole minute's 100 weight with four ``trades`` calls."""
    for expected in (25, 50, 75, 100):
        r = api(sim, "trades", source_ip=source_ip, symbol="BTCUSDT", limit=5)
        assert (r.status, weight(r)) == (200, expected)


# ---- weights -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "i, endpoint, params, expected", [(i, *e) for i, e in enumerate(ENDPOINTS)], ids=[e[0] for e in ENDPOINTS]
)
def test_each_endpoint_costs_its_documented_weight(sim, i, endpoint, params, expected):
    ip = f"127.0.0.{10 + i}"  # a fresh IP: the first call's used weight is the endpoint's weight
    first = api(sim, endpoint, source_ip=ip, **params)
    second = api(sim, endpoint, source_ip=ip, **params)
    assert first.status == second.status == 200
    assert weight(first) == expected
    assert weight(second) - weight(first) == expected
    assert first.headers["x-mbx-used-weight"] == first.headers["x-mbx-used-weight-1m"]


def test_errors_cost_weight_and_the_control_path_costs_none(sim):
    ip = "127.0.0.30"
    assert weight(api(sim, "trades", source_ip=ip, symbol="NOPEUSDT")) == 25
    control = http(sim, "/_sim/state", source_ip=ip)
    assert control.status == 200 and "x-mbx-used-weight-1m" not in control.headers
    assert weight(api(sim, "ping", source_ip=ip)) == 26


def test_used_weight_resets_each_minute(small):
    exhaust(small)
    small.test_clock.advance(30_000)  # the next minute
    r = api(small, "klines", symbol="BTCUSDT", interval="1m", limit=1)
    assert (r.status, weight(r)) == (200, 2)


def test_exchange_info_reports_the_live_weight_limit(small):
    limits = api(small, "exchangeInfo").json()["rateLimits"]
    assert {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 100} in limits


# ---- 429 and 418 ---------------------------------------------------------------------------------------------------
def test_exceeding_the_minute_weight_gives_429_with_retry_after(small):
    exhaust(small)
    r = api(small, "ping")  # even weight 1 no longer fits
    assert r.status == 429
    assert r.headers["retry-after"] == "30"  # until the minute ends
    assert weight(r) == 100
    body = r.json()
    assert body["code"] == -1003 and "100" in body["msg"]


def test_calling_through_retry_after_gets_the_ip_banned_with_418(small):
    exhaust(small)
    assert api(small, "ping").status == 429
    for _ in range(3):  # tolerated_violations more calls inside Retry-After: still 429
        r = api(small, "ping")
        assert r.status == 429 and int(r.headers["retry-after"]) > 0
    r = api(small, "ping")
    assert r.status == 418
    assert r.headers["retry-after"] == "120"
    assert r.json()["code"] == -1003
    small.test_clock.advance(60_000)  # the ban outlasts the minute
    r = api(small, "ping")
    assert r.status == 418 and r.headers["retry-after"] == "60"
    small.test_clock.advance(60_000)
    assert api(small, "ping").status == 200
    # A repeat offender's ban doubles.
    small.test_clock.advance(60_000)
    exhaust(small)
    statuses = [api(small, "ping").status for _ in range(5)]
    assert statuses == [429, 429, 429, 429, 418]
    assert api(small, "ping").headers["retry-after"] == "240"


def test_waiting_out_every_retry_after_is_never_banned(small):
    for _ in range(5):
        exhaust(small)
        r = api(small, "trades", symbol="BTCUSDT")
        assert r.status == 429
        small.test_clock.advance(int(r.headers["retry-after"]) * 1000)
    assert api(small, "ping").status == 200
    assert small.limiter.stats()["127.0.0.1"]["bans"] == 0


def test_different_ips_have_independent_budgets_and_bans(small):
    exhaust(small, "127.0.0.1")
    assert api(small, "ping", source_ip="127.0.0.1").status == 429
    r = api(small, "trades", source_ip="127.0.0.2", symbol="BTCUSDT")
    assert (r.status, weight(r)) == (200, 25)
    for _ in range(4):
        api(small, "ping", source_ip="127.0.0.1")
    assert api(small, "ping", source_ip="127.0.0.1").status == 418
    r = api(small, "ping", source_ip="127.0.0.2")
    assert (r.status, weight(r)) == (200, 26)


def test_a_polite_client_outlasts_a_429_storm_while_an_impolite_one_is_banned():
    with Simulator(SimulatorConfig(symbols=SYMBOLS, history_minutes=2)) as sim:
        sim.rate_limit_storm(2.0, retry_after_s=1)
        storm_ends = time.monotonic() + 2.0
        impolite = [api(sim, "ping", source_ip="127.0.0.2").status for _ in range(5)]
        assert impolite == [429, 429, 429, 429, 418]
        polite, deadline = [], time.monotonic() + 8
        while time.monotonic() < deadline:
            r = api(sim, "ping")
            polite.append(r.status)
            if r.status != 429:
                break
            assert r.headers["retry-after"] == "1" and r.json()["code"] == -1003
            time.sleep(int(r.headers["retry-after"]))
        assert polite[-1] == 200 and 418 not in polite
        assert polite.count(429) >= 2
        assert time.monotonic() >= storm_ends
        assert api(sim, "ping", source_ip="127.0.0.2").status == 418  # the ban outlives the storm


# ---- WebSocket connection attempts ---------------------------------------------------------------------------------
def test_websocket_connection_attempts_are_limited_per_ip():
    config = SimulatorConfig(symbols=SYMBOLS, history_minutes=2, connection_attempts_per_5min=3)
    with Simulator(config) as sim:
        sockets = [RawWebSocket(sim.host, sim.port, "/ws/btcusdt@trade") for _ in range(4)]
        other = RawWebSocket(sim.host, sim.port, "/ws/btcusdt@trade", source_ip="127.0.0.2")
        try:
            assert [s.status for s in sockets] == [101, 101, 101, 429]
            assert other.status == 101
        finally:
            for s in sockets + [other]:
                s.close()


# ---- error codes ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "endpoint, params, code",
    [
        ("trades", {"symbol": "NOPEUSDT"}, -1121),
        ("historicalTrades", {"symbol": "DOGEUSDT", "fromId": 1}, -1121),
        ("trades", {"symbol": "btcusdt"}, -1100),
        ("trades", {"symbol": "BTC$USDT"}, -1100),
        ("historicalTrades", {"symbol": "BTCUSDT", "fromId": "12ab"}, -1100),
        ("trades", {}, -1102),
        ("aggTrades", {"symbol": ""}, -1102),
        ("klines", {"symbol": "BTCUSDT"}, -1102),
        ("klines", {"symbol": "BTCUSDT", "interval": "7m"}, -1120),
        ("aggTrades", {"symbol": "BTCUSDT", "fromId": 500_000, "startTime": MID_MINUTE - 60_000}, -1128),
        ("aggTrades", {"symbol": "BTCUSDT", "fromId": 500_000, "endTime": MID_MINUTE}, -1128),
    ],
    ids=lambda v: str(v) if isinstance(v, int) else None,
)
def test_bad_parameters_get_binance_error_codes(sim, endpoint, params, code):
    r = api(sim, endpoint, source_ip="127.0.0.40", **params)
    assert r.status == 400
    body = r.json()
    assert list(body) == ["code", "msg"] and body["code"] == code and body["msg"]
    assert "x-mbx-used-weight-1m" in r.headers
