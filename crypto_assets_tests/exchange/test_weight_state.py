"""The weight budget's state arithmetic on its own: pure values, no file, no thread, no clock (``now`` is given).
Also the state file's format (``state_from_doc`` / ``doc_from_state``), which is pure too."""

from __future__ import annotations

import json

import pytest

from crypto_assets.exchange.weight_state import PROBE_TIMEOUT_MS, Banned, BudgetState, Charged, Wait
from crypto_assets.exchange.weight_state_file import doc_from_state, state_from_doc
from crypto_assets.minutes import MINUTE_MS

T0 = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC, a minute boundary
M0 = T0 // MINUTE_MS
EMPTY = BudgetState()


def charged(decision) -> BudgetState:
    assert isinstance(decision, Charged), decision
    return decision.state


def test_a_charge_fills_the_minute_up_to_the_ceiling_then_waits_for_the_next():
    state = EMPTY
    for _ in range(4):
        state = charged(state.charge(25, T0 + 10_000, ceiling=100, boundary_guard_ms=1000))
    assert state.used == ((M0, 100),) and state.used_at(T0 + 59_999) == 100
    assert state.charge(1, T0 + 20_000, ceiling=100, boundary_guard_ms=1000) == Wait(T0 + MINUTE_MS + 1000)
    assert EMPTY.charge(25, T0, ceiling=100, boundary_guard_ms=0) == Charged(BudgetState(used=((M0, 25),)), T0)


def test_a_charge_leaves_the_state_it_was_given_unchanged():
    state = BudgetState(used=((M0, 10),))
    charged(state.charge(5, T0 + 1000, ceiling=100, boundary_guard_ms=0))
    assert state == BudgetState(used=((M0, 10),))


def test_near_a_boundary_a_request_is_charged_to_both_minutes_and_needs_room_in_both():
    state = charged(EMPTY.charge(30, T0 + MINUTE_MS - 400, ceiling=100, boundary_guard_ms=1000))
    assert state.used == ((M0, 30), (M0 + 1, 30))
    state = BudgetState(used=((M0, 90),))
    # Room in the next minute, but the guard reaches back into the full one: wait until after its guard.
    assert state.charge(20, T0 + MINUTE_MS + 500, ceiling=100, boundary_guard_ms=1000) == Wait(T0 + MINUTE_MS + 1000)
    assert charged(state.charge(20, T0 + MINUTE_MS + 1000, ceiling=100, boundary_guard_ms=1000)).used == (
        (M0, 90),
        (M0 + 1, 20),
    )


def test_a_request_heavier_than_the_ceiling_goes_alone_in_empty_minutes():
    assert charged(EMPTY.charge(500, T0 + 5000, ceiling=100, boundary_guard_ms=1000)).used_at(T0 + 5000) == 500
    busy = BudgetState(used=((M0, 1),))
    assert busy.charge(500, T0 + 5000, ceiling=100, boundary_guard_ms=1000) == Wait(T0 + MINUTE_MS + 1000)


def test_only_the_minutes_around_now_are_kept_in_a_charge():
    state = BudgetState(used=((M0 - 3, 1), (M0 - 2, 2), (M0 - 1, 3), (M0, 4)))
    after = charged(state.charge(10, T0 + MINUTE_MS + 30_000, ceiling=100, boundary_guard_ms=0))
    assert after.used == ((M0 - 1, 3), (M0, 4), (M0 + 1, 10))


def test_a_ban_refuses_every_charge_until_it_ends_and_a_longer_ban_stands():
    state = EMPTY.banned(T0 + 60_000)
    assert state.charge(1, T0, ceiling=100, boundary_guard_ms=0) == Banned(T0 + 60_000)
    assert state.banned(T0 + 1000).banned_until_ms == T0 + 60_000
    assert isinstance(state.charge(1, T0 + 60_000, ceiling=100, boundary_guard_ms=0), Charged)


def test_a_pause_waits_then_one_probe_goes_and_the_others_wait_for_its_answer():
    state = EMPTY.paused(T0, retry_after_ms=5000)
    assert (state.paused_until_ms, state.probe_pending, state.probe_sent_ms) == (T0 + 5000, True, None)
    assert state.charge(1, T0 + 4999, ceiling=100, boundary_guard_ms=0) == Wait(T0 + 5000)
    probe = charged(state.charge(1, T0 + 5000, ceiling=100, boundary_guard_ms=0))
    assert probe.probe_sent_ms == T0 + 5000
    assert probe.charge(1, T0 + 5100, ceiling=100, boundary_guard_ms=0) == Wait(T0 + 5000 + PROBE_TIMEOUT_MS)
    # A probe never answered (its process died) holds nobody back after the timeout.
    assert isinstance(probe.charge(1, T0 + 5000 + PROBE_TIMEOUT_MS, ceiling=100, boundary_guard_ms=0), Charged)
    # An answer to a request sent before the probe does not answer it; the probe's own answer does.
    assert probe.observed(None, T0 + 4000, T0 + 5200).probe_pending
    answered = probe.observed(None, T0 + 5000, T0 + 5200)
    assert (answered.probe_pending, answered.probe_sent_ms) == (False, None)
    assert isinstance(answered.charge(1, T0 + 5300, ceiling=100, boundary_guard_ms=0), Charged)
    # A second 429 (the probe's answer, say) keeps the later of the two pauses and sends a new probe.
    again = probe.paused(T0 + 5100, retry_after_ms=100)
    assert (again.paused_until_ms, again.probe_pending, again.probe_sent_ms) == (T0 + 5200, True, None)
    assert EMPTY.paused(T0, 9000).paused(T0, 1000).paused_until_ms == T0 + 9000


def test_the_used_weight_header_raises_the_count_only_within_the_minute_of_sending():
    state = BudgetState(used=((M0, 25),))
    assert state.observed(400, T0 + 1000, T0 + 1100).used == ((M0, 400),)
    assert state.observed(10, T0 + 1000, T0 + 1100) == state  # ours counts requests still in flight
    assert state.observed(900, T0 + MINUTE_MS - 10, T0 + MINUTE_MS + 5) == state  # answered in the next minute
    assert state.observed(None, T0 + 1000, T0 + 1100) == state


def test_a_merge_takes_the_larger_count_the_later_pause_and_ban_and_the_stored_probe():
    mine = BudgetState(
        used=((M0 - 3, 7), (M0, 40), (M0 + 1, 5)), paused_until_ms=T0 + 9000, probe_pending=True, banned_until_ms=0
    )
    stored = BudgetState(
        used=((M0, 30), (M0 + 1, 50), (M0 + 3, 1)),
        paused_until_ms=T0 + 2000,
        probe_pending=False,
        banned_until_ms=T0 + 60_000,
    )
    merged = mine.merged(stored, T0 + 1000)
    assert merged == BudgetState(
        used=((M0, 40), (M0 + 1, 50)),  # minutes more than two away from now dropped
        paused_until_ms=T0 + 9000,
        probe_pending=False,  # whichever process's probe was answered: the file says so
        probe_sent_ms=None,
        banned_until_ms=T0 + 60_000,
    )
    assert mine.merged(EMPTY, T0 + 1000).used == ((M0, 40), (M0 + 1, 5))  # a new file keeps our counts


def test_the_file_format_round_trips_and_keeps_the_version_1_fields():
    state = BudgetState(
        used=((M0, 40), (M0 + 1, 5)), paused_until_ms=T0 + 9000, probe_pending=True, probe_sent_ms=T0 + 9100
    )
    doc = doc_from_state(state, "api.binance.com", 6000, T0 + 9200)
    assert doc == {
        "version": 1,
        "host": "api.binance.com",
        "updated_ms": T0 + 9200,
        "used": {str(M0): 40, str(M0 + 1): 5},
        "paused_until_ms": T0 + 9000,
        "probe_pending": True,
        "probe_sent_ms": T0 + 9100,
        "banned_until_ms": 0,
        "limit": 6000,
    }
    stored, problems = state_from_doc(json.loads(json.dumps(doc)), T0 + 9300)
    assert (stored.state, stored.limit, stored.repair, problems) == (state, 6000, False, [])


def test_the_file_format_drops_values_that_cannot_be_right_now():
    far = T0 + 30 * 86_400_000
    doc = {"version": 1, "used": {}, "paused_until_ms": far, "banned_until_ms": far, "probe_sent_ms": far}
    stored, problems = state_from_doc({**doc, "probe_pending": True, "limit": 0}, T0)
    assert stored.state == BudgetState(probe_pending=True) and stored.limit is None and stored.repair
    assert len(problems) == 3 and "probe sent" in problems[2] and "taking it as not sent" in problems[2]
    assert "not a real pause; ignoring it" in problems[0] and "not a real ban; ignoring it" in problems[1]
    # A three-day ban (Binance's longest) and a pause of an hour are real.
    real = {"version": 1, "paused_until_ms": T0 + 3_600_000, "banned_until_ms": T0 + 3 * 86_400_000}
    assert state_from_doc(real, T0)[0].state == BudgetState(
        paused_until_ms=T0 + 3_600_000, banned_until_ms=T0 + 3 * 86_400_000
    )


@pytest.mark.parametrize(
    "doc",
    [[], {"version": 2}, {"version": 1, "used": {"x": 1}}, {"version": 1, "used": [1]}, {"version": 1, "limit": "a"}],
    ids=["not an object", "another version", "a minute not a number", "used not an object", "limit not a number"],
)
def test_the_file_format_refuses_what_is_not_a_version_1_state(doc):
    with pytest.raises((ValueError, TypeError, AttributeError)):
        state_from_doc(doc, T0)
