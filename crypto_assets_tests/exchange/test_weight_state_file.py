"""The weight budget's state file with real processes (multiprocessing, spawn) and no server: the flock makes each
read-modify-write whole, and two processes' budgets on one folder together stay under the ceiling of every minute
(the same two without the folder do not: the reason for the file)."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

from crypto_assets.exchange.weight_budget import WeightBudget
from crypto_assets.exchange.weight_state import BudgetState
from crypto_assets.exchange.weight_state_file import StateFile
from crypto_assets.minutes import MINUTE_MS
from crypto_assets_tests.exchange._clocks import FastClock

SPAWN = multiprocessing.get_context("spawn")
T0 = 1_767_225_600_000
M0 = T0 // MINUTE_MS


def _increment(folder: str, times: int, ready, go) -> None:
    """Add 1 to minute M0's weight ``times`` times, each a read and a write under the lock."""
    state_file = StateFile(folder, "ex:1")
    ready.put(True)
    go.wait(30)
    for _ in range(times):
        with state_file.locked(T0) as stored:
            state_file.write(BudgetState(used=((M0, stored.state.weight_in(M0) + 1),)), None, T0)


def test_read_modify_write_under_the_lock_loses_no_update_across_processes(tmp_path):
    ready, go = SPAWN.Queue(), SPAWN.Event()
    procs = [SPAWN.Process(target=_increment, args=(str(tmp_path), 300, ready, go)) for _ in range(2)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    go.set()  # both at once
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    with StateFile(tmp_path, "ex:1").locked(T0) as stored:
        assert stored.state.weight_in(M0) == 600 and not stored.repair


SPEED = 60  # a clock minute lasts one real second
LIMIT, SHARE, WEIGHT, REQUESTS = 200, 0.95, 25, 12  # ceiling 190: seven requests of 25 (175) a minute


def _spend(state_dir: str | None, clock: FastClock, ready, go, sent) -> None:
    """One process of the machine: its own budget on ``state_dir``; reports the exchange time of each charge."""
    budget = WeightBudget(
        LIMIT, SHARE, name="ex:1", clock=clock, speed=SPEED, boundary_guard_ms=0, state_dir=state_dir, poll_s=0.02
    )
    ready.put(True)
    go.wait(30)
    for _ in range(REQUESTS):
        sent.put(budget.acquire(WEIGHT))


def two_processes(state_dir) -> Counter:
    """Weight the two processes charged per exchange minute."""
    now = time.time_ns() // 1_000_000
    clock = FastClock(now - now % MINUTE_MS + 5_000, speed=SPEED)  # machine-wide: time.monotonic()
    ready, go, sent = SPAWN.Queue(), SPAWN.Event(), SPAWN.Queue()
    folder = None if state_dir is None else str(state_dir)
    procs = [SPAWN.Process(target=_spend, args=(folder, clock, ready, go, sent)) for _ in range(2)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    go.set()  # both at once: without the file they spend the same minutes
    per_minute: Counter = Counter()
    for _ in range(2 * REQUESTS):
        per_minute[sent.get(timeout=60) // MINUTE_MS] += WEIGHT
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    return per_minute


def test_two_processes_on_one_folder_stay_under_the_ceiling_together(tmp_path):
    per_minute = two_processes(tmp_path)
    assert sum(per_minute.values()) == 2 * REQUESTS * WEIGHT
    assert max(per_minute.values()) <= int(LIMIT * SHARE)  # 190
    assert len(per_minute) >= 2 * REQUESTS * WEIGHT // 175  # 600 weight at 175 a minute: at least 4 minutes
    assert [p.name for p in tmp_path.iterdir()] == ["ex_1.json"]


def test_the_same_two_processes_without_the_folder_break_the_ceiling():
    per_minute = two_processes(None)
    assert max(per_minute.values()) > int(LIMIT * SHARE)  # each spends 175 a minute of its own
