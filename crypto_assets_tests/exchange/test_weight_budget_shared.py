"""One weight budget for several processes: real processes (multiprocessing, spawn), each with its own
BinanceRestClient, sharing one state folder, against a real simulator on 127.0.0.1 (one IP for all of them).

- Four processes hammering a 300-a-minute limit (on a clock 20x faster than real) get no 429 and no 418; the same
  four without the shared folder break the limit (the reason for the shared budget).
- A 429 seen by one process makes the others wait out its Retry-After: the exchange sees no other request in it.
- A 418 recorded by one process stops the others, including one already waiting in ``acquire``, without them
  contacting the exchange.
- The state file itself: a corrupt file is treated as empty with a warning and repaired; a stale one (a ban weeks
  ahead) blocks nothing; two budgets on one file share counts.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
import time

import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.exchange.errors import ExchangeBanned
from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.exchange.weight_budget import WeightBudget, host_key
from crypto_assets.minutes import MINUTE_MS
from crypto_assets_tests.exchange._clocks import FastClock
from crypto_assets_tests.simulator._support import api

pytestmark = pytest.mark.integration

SPAWN = multiprocessing.get_context("spawn")  # no fork of a process running the simulator's threads
SYMBOL = "SOLUSDT"
PAGES = 8  # historicalTrades pages (25 weight each) per hammering process


def first_id() -> int:
    return symbol_config(SYMBOL).first_trade_id


def mid_minute_clock(speed: float = 1.0, into_minute_ms: int = 5_000) -> FastClock:
    """A clock starting ``into_minute_ms`` after a minute boundary (so a real-time test is not cut by one).
    It pickles with its origin, and time.monotonic() is the machine's: child processes read the same clock."""
    now = time.time_ns() // 1_000_000
    return FastClock(now - now % MINUTE_MS + into_minute_ms, speed=speed)


def responses(sim: Simulator) -> dict[int, int]:
    """Responses per HTTP status, all IPs, from the simulator's own state."""
    out: dict[int, int] = {}
    for ip in sim.state()["weights"].values():
        for status, n in ip["responses"].items():
            out[int(status)] = out.get(int(status), 0) + n
    return out


# ---- the child processes --------------------------------------------------------------------------------------------
def _hammer(client: BinanceRestClient, n: int):
    for k in range(PAGES):
        client.historical_trades(SYMBOL, first_id() + 1000 * (n * PAGES + k), limit=1000)


def _ping(client: BinanceRestClient, n: int):
    started = time.time()
    client.ping()
    return started, time.time()


def _page(client: BinanceRestClient, n: int):
    try:
        client.historical_trades(SYMBOL, first_id(), limit=10)
    except ExchangeBanned as exc:
        return "banned", exc.until_ms, time.time()
    return "answered", None, time.time()


TASKS = {"hammer": _hammer, "ping": _ping, "page": _page}


def child(task: str, n: int, url: str, state_dir: str | None, clock: FastClock, guard_ms: int, events, go) -> None:
    """One process of the deployment: its own client and budget (shared through ``state_dir``); says "ready",
    waits for ``go``, runs ``task`` and reports (n, "done", result, stats) or (n, "error", text, None)."""
    try:
        budget = WeightBudget.for_host(
            url, state_dir=state_dir, clock=clock, speed=clock.speed, boundary_guard_ms=guard_ms
        )
        with BinanceRestClient(url, budget=budget) as client:
            events.put((n, "ready", None, None))
            if not go.wait(60):
                raise TimeoutError("no go within 60 s")
            result = TASKS[task](client, n)
        events.put((n, "done", result, budget.stats()))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        events.put((n, "error", f"{type(exc).__name__}: {exc}", None))


class Children:
    """``count`` child processes running ``task``; ``go()`` releases them, ``results()`` collects them."""

    def __init__(self, count: int, task: str, url: str, state_dir, clock: FastClock, guard_ms: int = 1000):
        self.events = SPAWN.Queue()
        self.go_event = SPAWN.Event()
        self.procs = [
            SPAWN.Process(
                target=child,
                args=(
                    task,
                    n,
                    url,
                    None if state_dir is None else str(state_dir),
                    clock,
                    guard_ms,
                    self.events,
                    self.go_event,
                ),
                daemon=True,
            )
            for n in range(count)
        ]
        for p in self.procs:
            p.start()
        ready = [self._next(60) for _ in self.procs]
        assert all(kind == "ready" for _, kind, _, _ in ready), ready

    def _next(self, timeout: float):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"a child process said nothing within {timeout} s") from None

    def go(self) -> None:
        self.go_event.set()

    def results(self, timeout: float = 60) -> dict[int, tuple]:
        out = {}
        for _ in self.procs:
            n, kind, result, stats = self._next(timeout)
            assert kind == "done", f"child {n}: {result}"
            out[n] = (result, stats)
        return out

    def close(self) -> None:
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)


# ---- many processes, one limit --------------------------------------------------------------------------------------
def hammer(state_dir) -> tuple[dict[int, int], dict[int, tuple], int]:
    """Four processes, 8 pages each, against 300 weight a minute on a clock 20x faster than real (a minute lasts
    three real seconds): (the simulator's responses by status, the children's results, minutes it took)."""
    clock = mid_minute_clock(speed=20, into_minute_ms=20_000)
    config = SimulatorConfig(symbols=[symbol_config(SYMBOL)], history_minutes=30, weight_per_minute=300)
    with Simulator(config, clock=clock) as sim:
        # The boundary guard must cover a request's trip to the server on this clock, even on a loaded machine:
        # 12 s = 0.6 s of real time.
        children = Children(4, "hammer", sim.rest_url, state_dir, clock, guard_ms=12_000)
        try:
            first_minute = clock.minute()
            children.go()
            results = children.results(timeout=90)
            return responses(sim), results, clock.minute() - first_minute
        finally:
            children.close()


def test_processes_sharing_the_folder_stay_under_the_limit_together(tmp_path):
    seen, results, minutes = hammer(tmp_path / "budget")
    assert seen.keys() == {200} and seen[200] == 4 * (PAGES + 1)  # 8 pages + exchangeInfo each; no 429, no 418
    stats = [s for _, s in results.values()]
    assert all(s["limit"] == 300 and s["ceiling"] == 285 for s in stats)
    assert 0 < max(s["max_reported_used"] for s in stats) <= 300  # the exchange's own count, never over the limit
    # 880 weight at most 285 a minute: the processes waited for each other's minutes.
    assert sum(s["waits"] for s in stats) > 0 and minutes >= 3
    assert sum(s["acquired_weight"] for s in stats) == 4 * (PAGES * 25 + 20)
    (state_file,) = (tmp_path / "budget").iterdir()  # one file: 127.0.0.1_<port>.json
    assert state_file.name.startswith("127.0.0.1_") and state_file.suffix == ".json"


def test_the_same_processes_without_the_folder_break_the_limit():
    seen, _, _ = hammer(None)
    assert seen.get(429, 0) > 0  # each process spends 285 a minute of its own: what the shared budget prevents


# ---- a 429 seen by one process ------------------------------------------------------------------------------------
def test_a_429_seen_by_one_process_makes_the_others_wait_out_its_retry_after(tmp_path):
    clock = mid_minute_clock()
    with Simulator(SimulatorConfig(symbols=[symbol_config(SYMBOL)], history_minutes=2), clock=clock) as sim:
        children = Children(3, "ping", sim.rest_url, tmp_path, clock)
        try:
            budget = WeightBudget(name=host_key(sim.rest_url), state_dir=tmp_path, clock=clock)
            with BinanceRestClient(sim.rest_url, budget=budget) as client:
                sim.rate_limit_storm(0.3, retry_after_s=2)  # over long before the Retry-After
                storm_seen = time.time()
                pinger = threading.Thread(target=client.ping)
                pinger.start()  # answered 429, then waits 2 s and succeeds
                deadline = time.time() + 10
                while responses(sim).get(429, 0) == 0 and time.time() < deadline:
                    time.sleep(0.01)
                assert responses(sim).get(429) == 1
                while budget.view().paused_until_ms == 0 and time.time() < deadline:  # the pause is in the shared
                    time.sleep(0.01)  # state (a loaded machine: the answer is counted before the client reads it)
                children.go()
                results = children.results()
                pinger.join(10)
            seen = responses(sim)
        finally:
            children.close()
    assert seen.get(429) == 1 and 418 not in seen  # nobody called during the back-off
    assert seen[200] == 4  # the test's ping (after the pause) and one ping per child
    for (_started, ended), stats in results.values():
        assert ended - storm_seen >= 1.9  # each child waited out the other process's Retry-After
        assert stats["waits"] == 1 and stats["responses_429"] == 0


# ---- a 418 recorded by one process ----------------------------------------------------------------------------------
def test_a_418_recorded_by_one_process_stops_the_others_without_contacting_the_exchange(tmp_path):
    clock = mid_minute_clock()  # 55 s to the next minute: the full minute below stays full throughout
    config = SimulatorConfig(
        symbols=[symbol_config(SYMBOL)], history_minutes=2, weight_per_minute=300, tolerated_violations=0, ban_seconds=5
    )
    with Simulator(config, clock=clock) as sim:
        budget = WeightBudget(name=host_key(sim.rest_url), state_dir=tmp_path, clock=clock)
        with BinanceRestClient(sim.rest_url, budget=budget) as client:
            client.exchange_info()  # the limit (300) reaches the file, and so the children
            budget.acquire(255)  # the minute is nearly full (ceiling 285): the children's 25-weight pages wait
            children = Children(3, "page", sim.rest_url, tmp_path, clock)
            try:
                children.go()
                time.sleep(0.8)  # the children are waiting in acquire()
                assert budget.used() == 275  # 20 (exchangeInfo) + 255: none of them got through
                sim.rate_limit_storm(0.5, retry_after_s=5)
                assert api(sim, "ping").status == 429  # another client on the IP breaks the back-off ...
                assert api(sim, "ping").status == 418  # ... and gets the IP banned
                before = responses(sim)
                with pytest.raises(ExchangeBanned) as banned:
                    client.ping()  # the 418 reaches this process's budget, and so the file
                recorded = time.time()
                assert responses(sim) == {**before, 418: before[418] + 1}
                results = children.results()
                assert responses(sim) == {**before, 418: before[418] + 1}  # no child reached the exchange
            finally:
                children.close()
    for (outcome, until_ms, at), stats in results.values():
        assert outcome == "banned" and until_ms == banned.value.until_ms
        assert at - recorded < 1.0  # noticed within a poll or two, not at the end of the minute
        assert stats["requests"] == 0


# ---- the state file -------------------------------------------------------------------------------------------------
def test_two_budgets_on_one_folder_share_the_minute_the_pause_and_the_ban(tmp_path):
    clock = mid_minute_clock()
    a = WeightBudget(limit=100, share=1.0, name="ex:1", state_dir=tmp_path, clock=clock)
    b = WeightBudget(limit=100, share=1.0, name="ex:1", state_dir=tmp_path, clock=clock, poll_s=0.05)
    a.acquire(60)
    assert b.used() == 60
    sent = b.acquire(40)
    assert a.used() == 100
    b.observe(150, sent)  # the exchange counted more (another machine behind the same IP): the larger wins
    assert a.used() == 150
    other = WeightBudget(name="ex:2", state_dir=tmp_path, clock=clock)
    assert other.used() == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["ex_1.json", "ex_2.json"]

    c = WeightBudget(name="ex:3", state_dir=tmp_path, clock=clock, poll_s=0.05)
    d = WeightBudget(name="ex:3", state_dir=tmp_path, clock=clock, poll_s=0.05)
    c.pause(0.5)
    started = time.monotonic()
    d.acquire(1)  # d never saw the 429 itself
    assert 0.4 < time.monotonic() - started < 2
    waiting_error: list[BaseException] = []

    def waiter():
        try:
            d.acquire(1)  # c's probe is out and unanswered: d waits for it
        except ExchangeBanned as exc:
            waiting_error.append(exc)

    c.pause(0.2)
    c.acquire(1)  # ... and c's next request after the pause goes alone, as the probe
    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()
    until = c.ban(clock() + 60_000)
    thread.join(1)
    assert not thread.is_alive() and waiting_error and waiting_error[0].until_ms == until
    assert d.banned_until_ms == until


def test_a_corrupt_state_file_is_treated_as_empty_with_a_warning_and_repaired(tmp_path, caplog):
    clock = mid_minute_clock()
    path = tmp_path / "ex_1.json"
    path.write_text('{"version": 1, "used": {"29')  # a process killed in the middle of a write
    budget = WeightBudget(limit=100, share=1.0, name="ex:1", state_dir=tmp_path, clock=clock)
    with caplog.at_level(logging.WARNING, logger="crypto_assets.exchange.weight_budget"):
        budget.acquire(10)
    assert str(path) in caplog.text and "unreadable" in caplog.text and "treating it as empty" in caplog.text
    assert budget.used() == 10
    assert '"used":{"' in path.read_text()  # rewritten whole


def test_a_stale_ban_from_another_clock_blocks_nothing(tmp_path, caplog):
    clock = mid_minute_clock()
    far = clock() + 30 * 86_400_000  # no ban lasts a month: a file written under another clock
    (tmp_path / "ex_1.json").write_text(
        '{"version": 1, "used": {}, "paused_until_ms": %d, "banned_until_ms": %d, "probe_pending": true, '
        '"probe_sent_ms": %d, "limit": 100}' % (far, far, far)
    )
    budget = WeightBudget(name="ex:1", state_dir=tmp_path, clock=clock)
    with caplog.at_level(logging.WARNING, logger="crypto_assets.exchange.weight_budget"):
        started = time.monotonic()
        budget.acquire(5)
    assert time.monotonic() - started < 0.5
    assert "not a real ban" in caplog.text and "not a real pause" in caplog.text
    assert budget.limit == 100  # the limit the file holds is taken until this process learns its own


def test_for_host_with_a_folder_shares_and_refuses_a_second_folder(tmp_path):
    url = "http://127.0.0.1:1/"
    WeightBudget.forget(url)
    try:
        local = WeightBudget.for_host(url)
        assert local._file is None  # this process's own budget
        shared = WeightBudget.for_host(url, state_dir=tmp_path / "a")
        assert shared is local and shared._file.path == tmp_path / "a" / "127.0.0.1_1.json"
        assert WeightBudget.for_host("127.0.0.1:1", state_dir=tmp_path / "a") is local
        with pytest.raises(ValueError, match="already shared through"):
            WeightBudget.for_host(url, state_dir=tmp_path / "b")
    finally:
        WeightBudget.forget(url)


def _forked_acquire(budget: WeightBudget, weight: int) -> None:
    budget.acquire(weight)
    os._exit(0)


def test_a_forked_child_locks_the_file_with_its_own_descriptor(tmp_path):
    clock = mid_minute_clock()
    url = "127.0.0.1:2"
    WeightBudget.forget(url)
    try:
        budget = WeightBudget.for_host(url, state_dir=tmp_path, limit=1000, clock=clock)
        budget.acquire(10)
        proc = multiprocessing.get_context("fork").Process(target=_forked_acquire, args=(budget, 7))
        proc.start()
        proc.join(10)
        assert proc.exitcode == 0
        assert budget.used() == 17
    finally:
        WeightBudget.forget(url)
