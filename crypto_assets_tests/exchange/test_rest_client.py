"""BinanceRestClient against the real simulator: trades_between equals the ground truth exactly, typed calls,
symbol validation, and the failure paths (5xx, 429 storms, 418 bans, failover, timeouts, a small weight limit
shared by several threads)."""

from __future__ import annotations

import threading
import time

import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.exchange.errors import ExchangeBanned, ExchangeError, ExchangeUnreachable, UnknownSymbol
from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.exchange.weight_budget import WeightBudget
from crypto_assets.minutes import MINUTE_MS
from crypto_assets_tests.exchange._clocks import FastClock
from crypto_assets_tests.ground_truth import past_minute, truth
from crypto_assets_tests.ports import free_port
from crypto_assets_tests.simulator._support import api

pytestmark = pytest.mark.integration

BURSTY = "BTCUSDT"  # a burst (hundreds of trades in one millisecond) every second
QUIET = "ETHUSDT"  # every minute quiet: never a trade
HALTED = "HALTUSDT"


@pytest.fixture(scope="module")
def sim():
    config = SimulatorConfig(
        symbols=[
            symbol_config(BURSTY, burst_probability=1.0),
            symbol_config(QUIET, quiet_minute_probability=1.0),
            symbol_config("SOLUSDT"),
            symbol_config(HALTED, status="HALT"),
        ],
        history_minutes=8,
    )
    with Simulator(config) as s:
        yield s


@pytest.fixture(scope="module")
def client(sim):
    with BinanceRestClient(sim.rest_url) as c:
        yield c


# ---- trades_between equals the ground truth ------------------------------------------------------------------------
def test_a_second_with_a_burst(sim, client):
    start = past_minute(sim, 3) + 17_000
    expected = truth(sim, BURSTY, start, start + 1000)
    times = [t.trade_time for t in expected]
    assert max(times.count(ms) for ms in set(times)) >= 100  # the burst: one millisecond, many trades
    assert client.trades_between(BURSTY, start, start + 1000) == expected


def test_window_edges_on_the_burst_millisecond(sim, client):
    start = past_minute(sim, 3) + 23_000
    second = truth(sim, BURSTY, start, start + 1000)
    times = [t.trade_time for t in second]
    burst_ms = max(set(times), key=times.count)
    burst = client.trades_between(BURSTY, burst_ms, burst_ms + 1)
    assert burst == truth(sim, BURSTY, burst_ms, burst_ms + 1) and len(burst) == times.count(burst_ms) >= 100
    assert client.trades_between(BURSTY, start, burst_ms) == [t for t in second if t.trade_time < burst_ms]
    assert client.trades_between(BURSTY, burst_ms + 1, start + 1000) == [t for t in second if t.trade_time > burst_ms]


@pytest.mark.parametrize(
    "offset_ms, length_ms",
    [(500, 1000), (59_000, 2_500), (-2_500, 5_000), (1, 1)],
    ids=["across-a-second", "across-a-minute", "around-a-minute", "one-ms"],
)
def test_windows_across_boundaries(sim, client, offset_ms, length_ms):
    start = past_minute(sim, 4) + offset_ms
    expected = truth(sim, BURSTY, start, start + length_ms)
    assert client.trades_between(BURSTY, start, start + length_ms) == expected


def test_a_multi_minute_window_of_many_pages(sim, client):
    start = past_minute(sim, 6) + 12_345
    end = start + 150_000
    got = client.trades_between(BURSTY, start, end)
    expected = truth(sim, BURSTY, start, end)
    assert len(expected) > 20_000  # some 20+ historicalTrades pages
    assert got == expected
    assert [t.trade_id for t in got] == list(range(got[0].trade_id, got[0].trade_id + len(got)))


def test_quiet_minutes_and_empty_windows_are_empty(sim, client):
    start = past_minute(sim, 5)
    assert truth(sim, QUIET, start, start + 2 * MINUTE_MS) == []
    assert client.trades_between(QUIET, start, start + 2 * MINUTE_MS) == []
    assert client.trades_between(BURSTY, start, start) == []
    future = sim.clock() + 3_600_000
    assert client.trades_between(BURSTY, future, future + MINUTE_MS) == []


def test_a_window_that_has_not_ended_returns_the_trades_so_far(sim, client):
    start = sim.clock() - 3_000
    got = client.trades_between(BURSTY, start, start + MINUTE_MS)
    assert got and got == truth(sim, BURSTY, start, got[-1].trade_time + 1)
    assert got[-1].trade_time <= sim.clock()


def test_iter_trades_from_pages_dense_ids(sim, client):
    first = truth(sim, BURSTY, past_minute(sim, 2), past_minute(sim, 2) + 1000)[0].trade_id  # a burst each second
    pages = []
    for page in client.iter_trades_from(BURSTY, first):
        pages.append(page)
        if len(pages) == 3:
            break
    ids = [t.trade_id for p in pages for t in p]
    assert [len(p) for p in pages] == [1000, 1000, 1000] and ids == list(range(first, first + 3000))


# ---- typed calls ----------------------------------------------------------------------------------------------------
def test_typed_calls(sim, client):
    assert abs(client.server_time() - sim.clock()) < 5_000
    minute = past_minute(sim, 2)
    expected = truth(sim, BURSTY, minute, minute + MINUTE_MS)
    assert client.historical_trades(BURSTY, expected[0].trade_id, limit=5) == expected[:5]
    assert client.first_trade_id(BURSTY, minute, minute + MINUTE_MS) == expected[0].trade_id
    (kline,) = client.klines(BURSTY, "1m", start_time=minute, end_time=minute, limit=1)
    assert (kline.open_time, kline.trade_count, kline.open, kline.close) == (
        minute,
        len(expected),
        expected[0].price,
        expected[-1].price,
    )


def test_first_trade_is_the_listing_trade_or_none_before_any_trade():
    config = SimulatorConfig(
        symbols=[
            symbol_config("BTCUSDT"),
            symbol_config("NEWUSDT"),
            symbol_config("NEVERUSDT", trades_per_second=0, burst_probability=0),
        ],
        history_minutes=6,
        listed={"NEWUSDT": 3},
    )
    with Simulator(config) as s, BinanceRestClient(s.rest_url) as c:
        listed = c.first_trade("NEWUSDT")  # listed 3 minutes ago: ids from 0
        first_minute = truth(s, "NEWUSDT", 0, s.clock())
        assert listed == first_minute[0] and listed.trade_id == 0
        assert listed.trade_time >= s.clock() - 3 * MINUTE_MS - MINUTE_MS
        old = c.first_trade("BTCUSDT")  # traded since the simulator's history start
        assert old == truth(s, "BTCUSDT", 0, s.clock())[0]
        assert old.trade_time // MINUTE_MS == s.market.origin_ms // MINUTE_MS
        assert c.first_trade("NEVERUSDT") is None  # listed, never traded
        with pytest.raises(ExchangeError, match="NOSUCHUSDT|-1121|[Ii]nvalid symbol"):
            c.first_trade("NOSUCHUSDT")


def test_exchange_info_sets_the_budget_limit(sim, client):
    info = client.exchange_info([BURSTY])
    assert [s["symbol"] for s in info["symbols"]] == [BURSTY]
    assert client.budget.limit_known and client.budget.limit == 6000 and client.budget.ceiling == 5700


def test_validate_symbols_names_unknown_and_halted_symbols(client):
    ok = client.validate_symbols([BURSTY, "SOLUSDT"])
    assert ok[BURSTY]["status"] == "TRADING" and set(ok) == {BURSTY, "SOLUSDT"}
    with pytest.raises(UnknownSymbol) as excinfo:
        client.validate_symbols([BURSTY, "NOPEUSDT", HALTED, "btc/usdt", "ZZZUSDT"])
    error = excinfo.value
    assert error.unknown == ["NOPEUSDT", "btc/usdt", "ZZZUSDT"]
    assert error.not_trading == {HALTED: "HALT"}
    for text in ("NOPEUSDT", "btc/usdt", "ZZZUSDT", "HALTUSDT (status HALT)"):
        assert text in str(error)
    assert isinstance(error, ExchangeError) and isinstance(error, ValueError) and error.code == -1121
    with pytest.raises(UnknownSymbol, match=r"not trading: HALTUSDT \(status HALT\)") as halted:
        client.validate_symbols([HALTED])
    assert halted.value.unknown == []


# ---- failures -------------------------------------------------------------------------------------------------
def small_sim(**config) -> Simulator:
    return Simulator(SimulatorConfig(symbols=[symbol_config("SOLUSDT")], history_minutes=2, **config))


def sol_first_id() -> int:
    return symbol_config("SOLUSDT").first_trade_id


def responses(sim) -> dict[int, int]:
    stats = sim.limiter.stats()
    out: dict[int, int] = {}
    for ip in stats.values():
        for status, n in ip["responses"].items():
            out[status] = out.get(status, 0) + n
    return out


def test_a_5xx_burst_is_retried_to_success_and_a_longer_one_fails_clearly():
    with small_sim() as s, BinanceRestClient(s.rest_url, backoff_base_s=0.01) as client:
        s.fail_rest(count=3, status=503)
        assert len(client.historical_trades("SOLUSDT", sol_first_id(), limit=10)) == 10
        s.fail_rest(count=10, status=502)
        with pytest.raises(ExchangeError) as excinfo:
            client.ping()
        assert excinfo.value.status == 502 and "after 4 attempts" in str(excinfo.value)
        s.clear_faults()


def test_a_429_storm_is_waited_out_by_every_thread_and_never_becomes_a_418():
    with small_sim() as s, BinanceRestClient(s.rest_url) as client:
        client.exchange_info()
        s.rate_limit_storm(2.0, retry_after_s=1)
        started = time.monotonic()
        results, errors = [], []

        def worker():
            try:
                for _ in range(3):
                    results.append(len(client.klines("SOLUSDT", "1m", limit=2)))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == [] and results == [2] * 9
        assert time.monotonic() - started >= 1.5
        counts = responses(s)
        assert counts.get(429, 0) >= 2 and counts.get(418, 0) == 0
        assert client.budget.stats()["responses_418"] == 0


def test_a_418_bans_every_call_without_contacting_the_exchange_until_retry_after():
    with small_sim(tolerated_violations=0, ban_seconds=2) as s:
        s.rate_limit_storm(0.3, retry_after_s=1)
        assert api(s, "ping").status == 429
        assert api(s, "ping").status == 418  # a request inside the Retry-After: banned
        with BinanceRestClient(s.rest_url) as client, BinanceRestClient(s.rest_url) as other:
            assert client.budget is other.budget  # one budget per host for the whole process
            with pytest.raises(ExchangeBanned) as first:
                client.ping()
            seen = responses(s)
            assert seen[418] == 2
            for call in (
                client.ping,
                lambda: other.historical_trades("SOLUSDT", sol_first_id()),
                lambda: client.trades_between("SOLUSDT", s.clock() - 5000, s.clock()),
            ):
                with pytest.raises(ExchangeBanned) as later:
                    call()
                assert later.value.until_ms == first.value.until_ms
            assert responses(s) == seen  # nothing reached the exchange
            error = first.value
            assert isinstance(error, ExchangeError) and error.status == 418
            assert error.until in str(error) and "banned" in str(error)
            assert 1_000 <= error.until_ms - s.clock() <= 2_500
            time.sleep(max(0.0, (error.until_ms - s.clock()) / 1000) + 0.05)
            client.ping()
            assert len(other.historical_trades("SOLUSDT", sol_first_id(), limit=3)) == 3


def test_failover_to_the_next_base_url_and_unreachable_naming_every_url():
    closed = f"http://127.0.0.1:{free_port()}"
    with small_sim() as s:
        with BinanceRestClient([closed, s.rest_url], backoff_base_s=0.01) as client:
            client.ping()
            assert len(client.historical_trades("SOLUSDT", sol_first_id(), limit=7)) == 7
        other_closed = f"http://127.0.0.1:{free_port()}"
        with BinanceRestClient([closed, other_closed], backoff_base_s=0.01, max_attempts=2) as client:
            with pytest.raises(ExchangeUnreachable) as excinfo:
                client.ping()
        assert excinfo.value.urls == [closed + "/api/v3/ping", other_closed + "/api/v3/ping"]
        assert closed in str(excinfo.value) and other_closed in str(excinfo.value)
        assert "refused" in str(excinfo.value).lower() and "2 attempts" in str(excinfo.value)


def test_timeouts_are_retried_then_reported():
    with small_sim() as s, BinanceRestClient(s.rest_url, timeout=0.2, backoff_base_s=0.01, max_attempts=2) as client:
        s.set_latency(rest_ms=600)
        with pytest.raises(ExchangeUnreachable, match=r"no answer within 0.2 s \(after 2 attempts\)"):
            client.ping()
        s.set_latency(rest_ms=0)
        client.ping()


def test_threads_sharing_a_small_limit_never_exceed_it_and_never_get_429():
    """300 weight a minute on a clock 60x faster than real (one minute a second): four threads ask for ~3 minutes'
    worth; the exchange must never report more than its limit of 300 used, and answer no 429. (The budget aims at
    0.95 x 300 = 285; on this clock a request sent a few real milliseconds before a minute's end can be counted in
    the next minute on a loaded machine, so the share itself is not asserted here: bench/rest_trades_between.py
    measures it at real speed.)"""
    clock = FastClock((time.time_ns() // 1_000_000 // MINUTE_MS) * MINUTE_MS + 20_000, speed=60)
    config = SimulatorConfig(symbols=[symbol_config("SOLUSDT")], history_minutes=30, weight_per_minute=300)
    with Simulator(config, clock=clock) as s:
        budget = WeightBudget(
            clock=clock, speed=60, boundary_guard_ms=15_000
        )  # 0.25 s real: slack for a loaded machine
        with BinanceRestClient(s.rest_url, budget=budget) as client:
            errors: list[Exception] = []

            def worker(n: int):
                try:
                    for k in range(8):
                        client.historical_trades("SOLUSDT", sol_first_id() + 1000 * (n * 8 + k), limit=1000)
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            first_minute = clock.minute()
            threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert errors == []
        stats = budget.stats()
        assert (stats["limit"], stats["ceiling"]) == (300, 285)
        assert 0 < stats["max_reported_used"] <= stats["limit"]
        assert stats["waits"] > 0 and clock.minute() - first_minute >= 2  # 820 weight > 2 x 285
        assert responses(s).keys() == {200}


def test_hundreds_of_symbols_are_listed_and_validated_without_an_overlong_url():
    """A quote selection streams hundreds of symbols: exchangeInfo lists them with their quote asset, and checking
    them asks for every symbol's entry once instead of naming hundreds in the URL."""
    with Simulator(SimulatorConfig(quiet_symbols=300, history_minutes=1)) as sim:
        with BinanceRestClient(sim.rest_url, budget=WeightBudget()) as client:
            usdt = [x.symbol for x in client.listings() if x.quoteAsset == "USDT" and x.status == "TRADING"]
            assert len(usdt) > 200
            assert list(client.validate_symbols(usdt)) == usdt
            with pytest.raises(UnknownSymbol, match="NOSUCHUSDT"):
                client.validate_symbols([*usdt, "NOSUCHUSDT"])
