"""The gap backfill's planner (``gap_plan.py``) as pure functions: minutes, runs, reasons and the clock as plain
values. No Dagster instance, no exchange, no sleeping: what the sensor would request, and why minutes wait."""

import json

import pytest

from crypto_assets.defs.raw.gap_plan import (
    GAP_RETRY_BACKOFF,
    WAITS_LISTED,
    WHY_MAX_CHARS,
    EndedRun,
    GapCursor,
    GapPolicy,
    GapRange,
    Wait,
    account_ended_runs,
    gap_run_key,
    newest_first_ranges,
    plan_gaps,
    prune_waits,
    round_robin,
    scan_slice,
    waiting_ranges,
    waits_text,
)
from crypto_assets.defs.raw.miss_reasons import MissReason
from crypto_assets.minutes import MINUTE_MS, contiguous_ranges, minute_key, utc_text

M0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
NOW = M0 + 100 * MINUTE_MS + 20_000  # 20 s into minute 100


def m(i: int) -> int:
    """The start of minute ``i`` after M0."""
    return M0 + i * MINUTE_MS


def minutes(*spans: range | int) -> set[int]:
    out: set[int] = set()
    for span in spans:
        out.update(m(i) for i in (span if isinstance(span, range) else [span]))
    return out


def all_but(*missing: range | int, upto: int = 100) -> set[int]:
    return minutes(range(upto)) - minutes(*missing)


def picked(plan) -> list[tuple[str, int, int]]:
    """The requested ranges as (symbol, first minute, last minute) in minute numbers."""
    return [(g.symbol, (g.start_ms - M0) // MINUTE_MS, (g.end_ms - M0) // MINUTE_MS - 1) for g in plan.requests]


def plan(materialized, *, starts=None, busy=None, waits=None, now=NOW, slots=10, turn=0, symbols=("A", "B", "C")):
    return plan_gaps(
        list(symbols),
        starts if starts is not None else dict.fromkeys(symbols, m(0)),
        GapPolicy(1, 15, 10).window(now, M0)[1],
        materialized,
        busy or {},
        waits or {},
        now,
        slots,
        turn,
    )


# ---- the window ----------------------------------------------------------------------------------------------------
def test_the_window_is_the_lookback_up_to_the_last_minute_settled():
    policy = GapPolicy(lookback_hours=1, settle_s=15, max_runs=4)
    assert policy.window(NOW, M0) == (m(40), m(100))  # minute 99 ended 20 s ago: settled
    assert policy.window(m(100) + 10_000, M0) == (m(40), m(99))  # 10 s ago: not yet
    assert policy.window(NOW, m(70)) == (m(70), m(100))  # never before the first partition


# ---- what is requested, in which order -----------------------------------------------------------------------------
def test_newest_ranges_first_round_robin_by_symbol_and_nothing_before_a_symbols_start():
    materialized = {"A": all_but(range(10, 12), range(90, 93)), "B": all_but(range(95, 100)), "C": set()}
    result = plan(materialized, starts={"A": m(0), "B": m(0), "C": m(50)})  # C's first trade is in minute 50
    assert picked(result) == [("A", 90, 92), ("B", 95, 99), ("C", 50, 99), ("A", 10, 11)]
    assert (result.due_minutes, result.due_ranges, result.turn) == (5 + 5 + 50, 4, 1)


def test_a_symbol_without_a_start_is_left_out():
    result = plan({"A": set(), "B": set(), "C": set()}, starts={"B": m(98)})
    assert picked(result) == [("B", 98, 99)]


def test_runs_are_capped_by_the_free_slots_and_the_turn_moves_on():
    materialized = {"A": all_but(90), "B": all_but(91), "C": all_but(92)}
    first = plan(materialized, slots=2, turn=1)
    assert picked(first) == [("B", 91, 91), ("C", 92, 92)] and first.turn == 0
    assert picked(plan(materialized, slots=2, turn=first.turn)) == [("A", 90, 90), ("B", 91, 91)]


def test_ranges_hold_at_most_60_minutes_cut_from_the_newest_end():
    result = plan({"A": all_but(range(0, 75))}, symbols=("A",))
    assert picked(result) == [("A", 15, 74), ("A", 0, 14)]
    cut = newest_first_ranges(sorted(minutes(0, 1, 2, 5, 6, range(10, 80))), 60)
    assert [((a - M0) // MINUTE_MS, (b - M0) // MINUTE_MS) for a, b in cut] == [(20, 80), (10, 20), (5, 7), (0, 3)]
    # (the contiguous runs they are cut from)
    runs = contiguous_ranges(sorted(minutes(0, 1, 2, 5, 6, range(10, 80))), 60)
    assert [((a - M0) // MINUTE_MS, (b - M0) // MINUTE_MS) for a, b in runs] == [(0, 3), (5, 7), (10, 70), (70, 80)]


def test_round_robin_serves_each_symbols_queue_in_order():
    queues = {"A": [(3, 4), (1, 2)], "B": [(9, 10)], "C": [(7, 8), (5, 6), (0, 1)]}
    taken, turn = round_robin(["A", "B", "C"], queues, 5, 0)
    assert taken == [("A", 3, 4), ("B", 9, 10), ("C", 7, 8), ("A", 1, 2), ("C", 5, 6)] and turn == 0
    taken, turn = round_robin(["A", "B", "C"], queues, 2, 1)
    assert taken == [("B", 9, 10), ("C", 7, 8)] and turn == 0


def test_minutes_in_flight_or_waiting_are_not_due():
    materialized = {"A": all_but(range(90, 100))}
    wait = Wait(1, NOW + 1, "r1", MissReason.RUN_FAILED)
    busy = {"A": minutes(range(90, 93))}
    waits = {"A": {m(95): wait, m(96): wait}}
    assert picked(plan(materialized, busy=busy, waits=waits, symbols=("A",))) == [("A", 97, 99), ("A", 93, 94)]
    # the wait is over one millisecond later: its minutes are due again, in their range
    later = plan(materialized, busy=busy, waits=waits, now=NOW + 1, symbols=("A",))
    assert picked(later) == [("A", 93, 99)]


# ---- run keys ------------------------------------------------------------------------------------------------------
def test_the_run_key_is_the_symbol_the_range_and_the_attempt_never_the_clock():
    materialized = {"A": all_but(range(10, 12))}
    one = plan(materialized, symbols=("A",))
    again = plan(materialized, symbols=("A",), now=NOW + 25_000)  # the same tick evaluated again, 25 s later
    assert one.requests == again.requests == [GapRange("A", m(10), m(12))]
    assert (
        gap_run_key(one.requests[0], 1)
        == gap_run_key(again.requests[0], 1)
        == ("gap:A:2026-01-01-00:10..2026-01-01-00:11#1")
    )
    assert gap_run_key(one.requests[0], 2) == "gap:A:2026-01-01-00:10..2026-01-01-00:11#2"  # a retry: a new key
    assert gap_run_key(GapRange("B", m(10), m(12)), 1) != gap_run_key(GapRange("A", m(10), m(13)), 1)


# ---- back-off per minute, and why ----------------------------------------------------------------------------------
def test_a_minute_still_missing_after_each_run_waits_5_10_20_minutes_up_to_4_hours():
    state = GapCursor()
    waited = []
    for n in range(1, 9):
        now = NOW + n * 1000
        run = EndedRun(f"r{n}", "A", m(10), m(11), updated_s=1000.0 + n)
        account_ended_runs(state, [run], {"A": minutes(11)}, m(0), now, lambda _: (MissReason.RUN_FAILED, "boom"))
        wait = state.waits["A"][m(10)]
        assert (wait.failures, wait.run_id) == (n, f"r{n}") and m(11) not in state.waits["A"]
        waited.append((wait.until_ms - now) // 60_000)
    assert waited == [5, 10, 20, 40, 80, 160, 240, 240]
    assert [GAP_RETRY_BACKOFF.delay_s(n) // 60 for n in range(1, 9)] == waited


def test_each_ended_run_counts_once_and_is_explained_only_if_it_left_minutes_missing():
    state = GapCursor(runs_after=900.0)
    asked = []

    def explain(run_id):
        asked.append(run_id)
        return MissReason.EXCHANGE_UNREACHABLE, "http://127.0.0.1:9: connection refused"

    runs = [
        EndedRun("healed", "A", m(20), m(21), 1000.0),  # all its minutes are there now
        EndedRun("missing", "A", m(10), m(11), 1001.0),
        EndedRun("other", "Z", m(10), m(11), 1002.0),  # a symbol no longer configured
        EndedRun("untagged", "A", None, None, 1003.0),
    ]
    materialized = {"A": minutes(20, 21)}
    lines = account_ended_runs(state, runs, materialized, m(0), NOW, explain)
    assert asked == ["missing"]
    wait = Wait(1, NOW + 300_000, "missing", MissReason.EXCHANGE_UNREACHABLE, "http://127.0.0.1:9: connection refused")
    assert state.waits == {"A": {m(10): wait, m(11): wait}}
    assert lines == [
        "A: 2 minute(s) of run missing (2026-01-01-00:10..2026-01-01-00:11) still missing: run missing failed: "
        "exchange unreachable: http://127.0.0.1:9: connection refused"
    ]
    assert state.runs_after == 1003.0 and set(state.seen_runs) == {"healed", "missing", "other", "untagged"}
    # read again (the sensor reads SEEN_SLACK_S back for late commits): nothing counts twice
    assert account_ended_runs(state, runs, materialized, m(0), NOW + 1000, explain) == [] and asked == ["missing"]
    assert state.waits["A"][m(10)] == wait
    # minutes before the window do not wait
    account_ended_runs(state, [EndedRun("old", "A", m(5), m(11), 1004.0)], materialized, m(8), NOW, explain)
    assert set(state.waits["A"]) == minutes(8, 9, 10, 11)


@pytest.mark.parametrize(
    ("reason", "detail", "why"),
    [
        (MissReason.EXCHANGE_UNREACHABLE, "timed out", "run r1 failed: exchange unreachable: timed out"),
        (MissReason.EXCHANGE_REFUSED, "HTTP 400", "run r1 failed: the exchange refused: HTTP 400"),
        (MissReason.LAKE_FAILED, "disk full", "run r1 failed: lake error: disk full"),
        (MissReason.MINUTES_NOT_RECORDED, "minute X: a hole", "run r1 failed: minutes not recorded: minute X: a hole"),
        (MissReason.RUN_FAILED, "worker died", "run r1 failed: worker died"),
        (MissReason.RUN_FAILED, "", "still missing after run r1 (failed)"),
        (MissReason.RUN_CANCELED, "", "run r1 was canceled"),
        (MissReason.SUCCEEDED_WITHOUT_THEM, "", "still missing after run r1 (it succeeded without them)"),
    ],
)
def test_why_a_minute_waits_is_said_from_its_reason(reason, detail, why):
    assert Wait(1, NOW, "r1", reason, detail).why == why


def test_a_long_why_is_cut_and_so_is_the_detail_kept():
    long = "x" * 1000
    assert len(Wait(1, NOW, "r1", MissReason.RUN_FAILED, long).why) == WHY_MAX_CHARS
    state = GapCursor()
    run = EndedRun("r1", "A", m(10), m(10), 1000.0)
    account_ended_runs(state, [run], {"A": set()}, m(0), NOW, lambda _: (MissReason.RUN_FAILED, long))
    assert len(state.waits["A"][m(10)].detail) == WHY_MAX_CHARS


def test_waits_are_dropped_once_materialized_outside_the_window_or_of_an_unconfigured_symbol():
    wait = Wait(1, NOW + 1, "r1", MissReason.RUN_FAILED)
    state = GapCursor(waits={"A": {m(5): wait, m(10): wait, m(11): wait, m(100): wait}, "Z": {m(10): wait}})
    prune_waits(state, {"A"}, {"A": minutes(11)}, m(8), m(100))
    assert state.waits == {"A": {m(10): wait}}


def test_waiting_ranges_are_listed_with_why_and_until_when():
    failed = Wait(2, NOW + 600_000, "r2", MissReason.EXCHANGE_UNREACHABLE, "timed out")
    canceled = Wait(1, NOW + 300_000, "r3", MissReason.RUN_CANCELED)
    over = Wait(1, NOW, "r4", MissReason.RUN_FAILED)
    waits = {"A": {m(10): failed, m(11): failed, m(12): canceled, m(13): failed, m(20): over}}
    waiting = waiting_ranges(waits, ["A"], {"A": minutes(13)}, NOW)  # 13 is in flight; 20's wait is over
    assert [((w.start_ms - M0) // MINUTE_MS, (w.end_ms - M0) // MINUTE_MS, w.wait) for w in waiting] == [
        (10, 12, failed),
        (12, 13, canceled),
    ]
    assert waits_text(waiting) == (
        f". 2 range(s) wait: A 2026-01-01-00:10..2026-01-01-00:11 (2 min) waits until {utc_text(NOW + 600_000)} "
        f"after 2 run(s) without it: run r2 failed: exchange unreachable: timed out; A 2026-01-01-00:12..2026-01-01-"
        f"00:12 (1 min) waits until {utc_text(NOW + 300_000)} after 1 run(s) without it: run r3 was canceled"
    )
    assert waits_text([]) == ""
    many = {"A": {m(2 * i): failed for i in range(WAITS_LISTED + 3)}}
    assert waits_text(waiting_ranges(many, ["A"], {}, NOW)).endswith("; and 3 more range(s)")


# ---- the cursor ----------------------------------------------------------------------------------------------------
def test_the_cursor_keeps_waits_as_ranges_with_their_reason_as_a_value():
    wait = Wait(2, NOW + 600_000, "r2", MissReason.MINUTES_NOT_RECORDED, "minute X: a hole")
    state = GapCursor(
        first_trades={"A": {"id": 0, "time_ms": m(3)}, "B": {"none_checked_ms": NOW}},
        waits={"A": {m(10): wait, m(11): wait, m(13): wait}},
        seen_runs={"r2": 1000.0},
        runs_after=1000.0,
        turn=2,
    )
    text = state.dump()
    data = json.loads(text)
    assert data["v"] == 2
    assert data["waits"] == {
        "A": [
            [m(10), 2, 2, NOW + 600_000, "r2", "minutes_not_recorded", "minute X: a hole"],
            [m(13), 1, 2, NOW + 600_000, "r2", "minutes_not_recorded", "minute X: a hole"],
        ]
    }
    assert GapCursor.load(text) == state
    assert GapCursor.load(None) == GapCursor() == GapCursor.load("")


def test_a_cursor_of_the_previous_version_still_loads():
    """Version 1 kept a wait's why as text only: it is shown as it was, with no reason."""
    old = {"v": 1, "waits": {"A": [[m(10), 2, 1, NOW, "r1", "run r1 was canceled"]]}, "turn": 1}
    state = GapCursor.load(json.dumps(old))
    assert state.waits["A"][m(11)] == Wait(1, NOW, "r1", None, "run r1 was canceled")
    assert state.waits["A"][m(11)].why == "run r1 was canceled" and state.turn == 1
    assert minute_key(m(10)) == "2026-01-01-00:10"


def test_a_tick_looks_at_a_bounded_slice_and_every_symbol_comes_round():
    symbols = [f"S{i}" for i in range(250)]
    seen, start = [], 0
    for _ in range(3):
        scan, start = scan_slice(symbols, start, 100)
        assert len(scan) == 100
        seen += scan
    assert set(seen) == set(symbols) and start == 50
    assert scan_slice(symbols[:3], 7, 100) == (symbols[:3], 0)
