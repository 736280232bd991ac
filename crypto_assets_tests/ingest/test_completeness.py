"""The completeness rules one by one, with hand-built trades and klines."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.ingest.completeness import prove_minute

M = 1795255500000  # 2026-11-21T10:05:00Z
NAME = "minute 2026-11-21-10:05"


def trades(first_id: int, qtys: list[str], *, start: int = M, step: int = 1000) -> list[Trade]:
    return [Trade("BTCUSDT", first_id + i, "100.01", q, start + i * step, i % 2 == 0) for i, q in enumerate(qtys)]


def kline(count: int, volume: str, *, first: int | None = None, last: int | None = None, open_ms: int = M) -> Kline:
    return Kline("BTCUSDT", open_ms, open_ms + 59_999, "1", "1", "1", "1", volume, "0", count, "0", "0", first, last)


QTYS = ["0.1", "0.20000", "0.003"]  # sum 0.303


def prove(ts, **kw):
    kw.setdefault("prev_trade_id", 99)
    kw.setdefault("next_trade_id", 103)
    kw.setdefault("kline", kline(3, "0.30300000"))
    return prove_minute(M, ts, **kw)


def test_a_complete_minute():
    proof = prove(trades(100, QTYS))
    assert proof.complete and proof.reasons == []
    assert (proof.first_trade_id, proof.last_trade_id, proof.count) == (100, 102, 3)
    assert proof.volume == "0.303" and Decimal(proof.volume) == Decimal("0.303")


def test_complete_with_the_exchanges_first_id_instead_of_the_previous_trade():
    assert prove(trades(100, QTYS), prev_trade_id=None, first_trade_id=100).complete


def test_complete_with_a_stream_kline_carrying_first_and_last_ids():
    proof = prove(
        trades(100, QTYS), prev_trade_id=None, next_trade_id=None, kline=kline(3, "0.303", first=100, last=102)
    )
    assert proof.complete, proof.reasons


def test_a_hole_in_the_ids():
    ts = trades(100, QTYS)
    ts[2] = Trade("BTCUSDT", 103, "1", "0.003", M + 2000, True)
    proof = prove(ts, next_trade_id=104)
    assert not proof.complete
    assert any("not consecutive" in r and "hole after 101" in r and NAME in r for r in proof.reasons)


def test_a_duplicate_id():
    ts = trades(100, QTYS)
    ts[1] = Trade("BTCUSDT", 100, "1", "0.2", M + 1000, True)
    proof = prove(ts)
    assert any("duplicate id 100" in r for r in proof.reasons)


def test_a_trade_outside_the_minute():
    ts = trades(100, QTYS)
    ts[2] = Trade("BTCUSDT", 102, "1", "0.003", M + 60_000, True)  # exactly at the end: outside
    proof = prove(ts)
    assert not proof.complete
    assert any("outside" in r and "trade 102" in r and NAME in r for r in proof.reasons)
    early = trades(100, QTYS, start=M - 1)
    assert any("trade 100" in r and "outside" in r for r in prove(early).reasons)


def test_wrong_kline_count():
    proof = prove(trades(100, QTYS), kline=kline(4, "0.303"))
    assert not proof.complete
    assert proof.reasons == [f"{NAME}: kline trade count 4 != 3 trade(s) held"]


def test_wrong_kline_volume_is_exact():
    proof = prove(trades(100, QTYS), kline=kline(3, "0.30300001"))
    assert not proof.complete
    assert proof.reasons == [f"{NAME}: kline volume 0.30300001 != sum of qty 0.303"]


def test_kline_ids_disagree():
    proof = prove(trades(100, QTYS), kline=kline(3, "0.303", first=101, last=103))
    assert len(proof.reasons) == 2 and all("kline" in r and NAME in r for r in proof.reasons)


def test_kline_of_another_minute():
    proof = prove(trades(100, QTYS), kline=kline(3, "0.303", open_ms=M + 60_000))
    assert any("opens at" in r for r in proof.reasons)


def test_no_kline():
    proof = prove(trades(100, QTYS), kline=None)
    assert not proof.complete and any("no closed 1m kline" in r for r in proof.reasons)


def test_start_boundary_mismatch():
    proof = prove(trades(100, QTYS), prev_trade_id=98)
    assert not proof.complete
    assert proof.reasons == [
        f"{NAME}: start boundary: first trade id 100 != 99 expected from the last trade before the minute"
    ]
    assert not prove(trades(100, QTYS), prev_trade_id=None, first_trade_id=101).complete


def test_start_boundary_unknown():
    proof = prove(trades(100, QTYS), prev_trade_id=None)
    assert not proof.complete and any("start boundary not confirmed" in r for r in proof.reasons)


def test_end_boundary_mismatch():
    proof = prove(trades(100, QTYS), next_trade_id=104)
    assert not proof.complete
    assert any("end boundary" in r and "104" in r and "expected 103" in r for r in proof.reasons)


def test_end_boundary_not_yet_seen():
    for kw in ({"kline": None}, {"prev_trade_id": None}):
        proof = prove(trades(100, QTYS), next_trade_id=None, **kw)
        assert not proof.complete and any("end boundary not confirmed" in r for r in proof.reasons)
    assert not prove(trades(100, QTYS), next_trade_id=None, kline=kline(4, "0.303")).complete


def test_end_boundary_from_a_confirmed_start_and_the_closed_klines_count():
    assert prove(trades(100, QTYS), next_trade_id=None).complete


# ---- empty minutes ---------------------------------------------------------------------------------------------
def test_empty_minute_complete_by_continuity():
    proof = prove_minute(M, [], prev_trade_id=99, next_trade_id=100)
    assert proof.complete, proof.reasons
    assert (proof.count, proof.volume, proof.first_trade_id, proof.last_trade_id) == (0, "0", None, None)
    assert prove_minute(M, [], prev_trade_id=99, next_trade_id=100, kline=kline(0, "0.00000000")).complete


def test_empty_minute_complete_by_kline_n0():
    assert prove_minute(M, [], kline=kline(0, "0.00000000")).complete
    assert prove_minute(M, [], prev_trade_id=99, kline=kline(0, "0")).complete
    assert prove_minute(M, [], kline=kline(0, "0", first=-1, last=-1)).complete


def test_empty_minute_with_a_jump_across_it():
    proof = prove_minute(M, [], prev_trade_id=99, next_trade_id=105, kline=kline(0, "0"))
    assert not proof.complete
    assert any("jump" in r and "100..104 missing" in r and NAME in r for r in proof.reasons)


def test_empty_minute_whose_kline_has_trades():
    proof = prove_minute(M, [], kline=kline(2, "0.5"))
    assert not proof.complete and len(proof.reasons) == 2
    assert not prove_minute(M, [], kline=kline(0, "0", first=100, last=101)).complete


def test_empty_minute_without_proof():
    for kw in ({}, {"prev_trade_id": 99}, {"next_trade_id": 100}):
        proof = prove_minute(M, [], **kw)
        assert not proof.complete and proof.reasons and all(NAME in r for r in proof.reasons)


def test_minute_start_must_be_aligned():
    with pytest.raises(ValueError):
        prove_minute(M + 1, [])


# ---- the rules one by one, on plain values (what both the proof and the stored-file checks call) -----------------
def test_rules_hold_on_plain_values_as_lists_or_numpy():
    import numpy as np

    from crypto_assets.ingest.completeness import (
        agrees_with_kline,
        dense_ids,
        empty_minute,
        end_boundary,
        inside_minute,
        start_boundary,
    )

    for ids in ([100, 101, 102], np.array([100, 101, 102], dtype=np.int64)):
        assert dense_ids(M, ids) == []
        assert inside_minute(M, ids, [M, M + 1, M + 59_999]) == []
    assert dense_ids(M, []) == [] and inside_minute(M, [], []) == []
    assert start_boundary(M, 100, prev_trade_id=99) == []
    assert end_boundary(M, 102, next_trade_id=103) == []
    assert agrees_with_kline(M, kline(3, "0.303"), count=3, volume=Decimal("0.3030"), first_id=100, last_id=102) == []
    assert empty_minute(M, prev_trade_id=99, next_trade_id=100) == []


def test_each_rule_names_the_minute_and_what_disagreed():
    import numpy as np

    from crypto_assets.ingest.completeness import dense_ids, end_boundary, inside_minute, start_boundary

    assert dense_ids(M, np.array([1, 2, 5, 5, 4, 9, 11, 13, 20])) == [
        f"{NAME}: trade ids not consecutive: hole after 2 (2 missing, next is 5), duplicate id 5, 4 after 5 (out of "
        f"order), hole after 4 (4 missing, next is 9), hole after 9 (1 missing, next is 11) and 2 more"
    ]
    assert inside_minute(M, [7], [M + 60_000]) == [
        f"{NAME}: 1 trade(s) outside the minute [2026-11-21T10:05:00.000Z, 2026-11-21T10:06:00.000Z): "
        f"trade 7 at 2026-11-21T10:06:00.000Z"
    ]
    # a boundary nothing vouches for: a problem for the proof, not for a stored file whose neighbour is unknown
    assert start_boundary(M, 100, required=False) == []
    assert end_boundary(M, 102, required=False) == []
    assert "start boundary not confirmed" in start_boundary(M, 100)[0]
    assert "end boundary not confirmed" in end_boundary(M, 102)[0]
    # the end pinned by a confirmed start and the closed kline's n
    assert end_boundary(M, 102, kline=kline(3, "1"), count=3, start_is_confirmed=True) == []
    assert end_boundary(M, 102, kline=kline(3, "1", last=102), count=3) == []
