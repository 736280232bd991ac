"""WeightBudget on its own (no server): room per exchange minute, waits, resync, 429 pauses, 418 bans, threads."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from crypto_assets.exchange.errors import ExchangeBanned
from crypto_assets.exchange.weight_budget import WeightBudget, host_key
from crypto_assets.minutes import MINUTE_MS
from crypto_assets_tests.exchange._clocks import FastClock

T0 = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC, a minute boundary


class FrozenClock:
    def __init__(self, ms: int):
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_for_host_shares_one_budget_per_host():
    a = WeightBudget.for_host("http://127.0.0.1:1/")
    assert WeightBudget.for_host("127.0.0.1:1") is a
    assert WeightBudget.for_host("http://127.0.0.1:2") is not a
    assert host_key("https://API.binance.com/api/v3") == "api.binance.com"
    WeightBudget.forget("127.0.0.1:1")
    assert WeightBudget.for_host("127.0.0.1:1") is not a


def test_a_default_nobody_named_is_taken_from_the_first_caller_naming_it():
    """A plain BinanceRestClient(url) made the budget first (every setting its default); the deployment's resource
    then asks for its urgent reserve: it gets the same budget with that reserve, and from then on the reserve binds."""
    url = "http://127.0.0.1:4/"
    WeightBudget.forget(url)
    try:
        plain = WeightBudget.for_host(url)
        assert WeightBudget.for_host(url, urgent_reserve=0.1) is plain and plain.urgent_reserve == 0.1
        with pytest.raises(ValueError, match="urgent_reserve=0.1, not 0.2"):
            WeightBudget.for_host(url, urgent_reserve=0.2)
        with pytest.raises(ValueError, match="urgent_reserve must be in"):
            WeightBudget.forget(url)
            WeightBudget.for_host(url)
            WeightBudget.for_host(url, urgent_reserve=1.5)
    finally:
        WeightBudget.forget(url)


def test_for_host_asked_again_with_other_settings_raises_naming_the_host_and_both_values(tmp_path):
    url = "http://127.0.0.1:3/"
    WeightBudget.forget(url)
    try:
        budget = WeightBudget.for_host(url, state_dir=tmp_path / "a", urgent_reserve=0.1)
        assert WeightBudget.for_host("127.0.0.1:3", state_dir=tmp_path / "a", urgent_reserve=0.1) is budget
        assert WeightBudget.for_host(url) is budget  # a caller naming no setting takes the budget as it is
        assert WeightBudget.for_host(url, share=0.95, limit=6000) is budget  # the defaults it was made with
        with pytest.raises(ValueError) as excinfo:
            WeightBudget.for_host(url, state_dir=tmp_path / "a", urgent_reserve=0.0)
        assert str(excinfo.value).startswith("the weight budget of 127.0.0.1:3 ")
        assert "urgent_reserve=0.1, not 0.0" in str(excinfo.value)
        with pytest.raises(ValueError, match=r"limit=6000, not 300; share=0.95, not 1.0"):
            WeightBudget.for_host(url, limit=300, share=1.0, urgent_reserve=0.1)
        budget.set_limit(300)  # learnt from the exchange: the budget was still made with 6000
        assert WeightBudget.for_host(url, limit=6000) is budget
        with pytest.raises(ValueError) as excinfo:
            WeightBudget.for_host(url, state_dir=tmp_path / "b", urgent_reserve=0.1)
        message = str(excinfo.value)
        assert "127.0.0.1:3" in message and str(tmp_path / "a") in message and str(tmp_path / "b") in message
        with pytest.raises(TypeError, match="colour"):
            WeightBudget.for_host(url, colour="red")
        assert budget.urgent_reserve == 0.1 and budget._file.folder == tmp_path / "a"  # no refused call changed it
    finally:
        WeightBudget.forget(url)


def test_learn_limit_fetches_once_for_many_callers_and_not_once_known():
    budget = WeightBudget()
    fetches = []

    def fetch():
        fetches.append(threading.current_thread().name)
        time.sleep(0.2)  # the others arrive meanwhile and wait
        budget.set_limit(1200)

    threads = [threading.Thread(target=budget.learn_limit, args=(fetch,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(fetches) == 1 and budget.limit_known and budget.limit == 1200
    budget.learn_limit(fetch)
    assert len(fetches) == 1


def test_default_limit_and_share_until_the_exchange_says_otherwise():
    budget = WeightBudget()
    assert (budget.limit, budget.share, budget.ceiling, budget.limit_known) == (6000, 0.95, 5700, False)
    budget.set_limit(300)
    assert (budget.ceiling, budget.limit_known) == (285, True)
    with pytest.raises(ValueError):
        WeightBudget(share=1.5)


def test_acquire_charges_the_current_minute_and_waits_for_the_next_when_full():
    clock = FastClock(T0 + 10_000, speed=60)  # a minute lasts one real second
    budget = WeightBudget(limit=100, share=1.0, clock=clock, speed=60)
    for _ in range(4):
        budget.acquire(25)
    assert budget.used() == 100
    started = time.monotonic()
    sent = budget.acquire(25)  # waits for the next minute (~50 s of clock, ~0.83 s real)
    assert sent // MINUTE_MS == T0 // MINUTE_MS + 1
    assert 0.5 < time.monotonic() - started < 3
    assert budget.stats()["waits"] == 1


def test_a_request_heavier_than_the_ceiling_still_goes_alone():
    budget = WeightBudget(limit=10, share=1.0, clock=FrozenClock(T0 + 1000))
    budget.acquire(20)
    assert budget.used() == 20


def test_requests_near_a_minute_boundary_count_in_both_minutes():
    clock = FrozenClock(T0 + MINUTE_MS - 500)
    budget = WeightBudget(limit=100, share=1.0, clock=clock, boundary_guard_ms=1000)
    budget.acquire(25)
    clock.ms = T0 + MINUTE_MS + 10
    assert budget.used() == 25
    budget.acquire(25)  # also charged to the minute before
    assert budget.used() == 50
    clock.ms = T0 + MINUTE_MS - 1
    assert budget.used() == 50
    clock.ms = T0 + MINUTE_MS + 2000
    budget.acquire(25)
    assert budget.used() == 75


def test_a_full_minute_also_holds_back_the_first_guard_ms_of_the_next():
    clock = FastClock(T0 + 50_000, speed=60)
    budget = WeightBudget(limit=100, share=1.0, clock=clock, speed=60, boundary_guard_ms=2000)
    budget.acquire(100)
    sent = budget.acquire(25)
    assert T0 + MINUTE_MS + 2000 <= sent < T0 + MINUTE_MS + 8000


def test_observe_resyncs_upwards_only_and_only_within_the_minute_of_sending():
    clock = FrozenClock(T0 + 1000)
    budget = WeightBudget(limit=1000, clock=clock)
    sent = budget.acquire(25)
    budget.observe(400, sent)  # another process on the same IP used weight too
    assert budget.used() == 400
    budget.observe(30, sent)  # the server has not seen our requests in flight yet: ours stands
    assert budget.used() == 400
    late = budget.acquire(25)
    clock.ms = T0 + MINUTE_MS + 5  # the answer came back in the next minute: ambiguous, ignored
    budget.observe(900, late)
    assert budget.used() == 0
    assert budget.stats()["max_reported_used"] == 900


def test_server_time_offset_moves_the_minute():
    clock = FrozenClock(T0 + MINUTE_MS - 5_000)  # local clock 5 s before the boundary ...
    budget = WeightBudget(limit=100, share=1.0, clock=clock)
    budget.set_server_time(T0 + MINUTE_MS + 2_000, clock.ms - 10, clock.ms + 10)  # ... the exchange 2 s past it
    assert budget.now_ms() == T0 + MINUTE_MS + 2_000
    budget.acquire(100)
    clock.ms += 4_000  # local clock crosses the boundary, the exchange's minute does not change
    assert budget.used() == 100


def test_pause_holds_every_caller_until_retry_after():
    clock = FastClock(T0 + 1_000, speed=10)
    budget = WeightBudget(clock=clock, speed=10)
    budget.pause(5)  # 5 s of clock = 0.5 s real
    started = time.monotonic()
    sent = budget.acquire(1)
    assert sent >= T0 + 6_000 - 50
    assert 0.3 < time.monotonic() - started < 2
    assert budget.stats()["responses_429"] == 1


def test_ban_makes_every_acquire_raise_until_it_ends_including_callers_already_waiting():
    clock = FastClock(T0 + 1_000, speed=1)
    budget = WeightBudget(limit=10, share=1.0, clock=clock)
    budget.acquire(10)  # the minute is full: the next caller waits ~59 s
    errors = []

    def waiter():
        try:
            budget.acquire(5)
        except ExchangeBanned as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.1)
    until = budget.ban(clock() + 300)
    thread.join(2)
    assert not thread.is_alive() and len(errors) == 1 and errors[0].until_ms == until
    with pytest.raises(ExchangeBanned) as excinfo:
        budget.acquire(1)
    assert excinfo.value.until in str(excinfo.value) and "banned" in str(excinfo.value)
    time.sleep(0.35)
    budget.set_limit(1000)
    budget.acquire(1)  # the ban is over


def test_threads_never_spend_more_than_the_ceiling_in_any_minute():
    clock = FastClock(T0 + 30_000, speed=300)  # 0.2 real seconds per minute
    budget = WeightBudget(limit=200, share=0.95, clock=clock, speed=300, boundary_guard_ms=0)
    per_minute: Counter = Counter()
    lock = threading.Lock()

    def worker():
        for _ in range(12):
            sent = budget.acquire(25)
            with lock:
                per_minute[sent // MINUTE_MS] += 25

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(per_minute.values()) == 5 * 12 * 25
    assert max(per_minute.values()) <= 190  # floor(200 x 0.95) = 190: seven requests of 25 = 175
    assert len(per_minute) >= 1500 // 175


def test_backfills_leave_the_urgent_reserve_to_the_stream_repair():
    now = [10 * MINUTE_MS + 5_000]
    budget = WeightBudget(limit=1000, share=1.0, urgent_reserve=0.1, clock=lambda: now[0], boundary_guard_ms=0)
    for _ in range(36):
        budget.acquire(25)  # 900: the most a backfill may take
    assert budget.used() == 900
    waiter = threading.Thread(target=budget.acquire, args=(25,), daemon=True)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # a backfill's next page waits for the next minute ...
    for _ in range(3):
        budget.acquire(25, urgent=True)  # ... while the repair still gets through at once
    assert budget.used() == 975 and waiter.is_alive()
