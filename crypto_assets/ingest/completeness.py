"""When a minute of one symbol's spot trades is complete: every rule, in one place, one function each.

Binance spot trade ids are dense per symbol (one id per trade, no reuse, no gaps). The rules:

1. ``inside_minute``: every trade's time lies in [start, start + 60 000).
2. ``dense_ids``: the ids run strictly consecutively (no hole, no duplicate, none out of order).
3. ``start_boundary``: the first id = the id of the last trade before the minute + 1, and = the minute's first
   trade id as the exchange reports it, when known. To prove the minute, one of them, or the closed stream kline's
   ``f`` (whose disagreement is rule 5's), must confirm the start.
4. ``end_boundary``: the first trade at/after the minute's end has id last + 1. To prove the minute, the end must
   be confirmed: by that next trade, by the closed stream kline's ``L``, or (no later trade seen yet) by a confirmed
   start and the closed kline's trade count n equal to the count held (dense ids from a confirmed first id end at
   first + n - 1).
5. ``agrees_with_kline``: the minute's closed 1m kline opens at the minute's start and has the same trade count,
   base volume (exact Decimal), and ``f`` / ``L`` when it carries them (stream klines do, REST klines do not; an
   empty minute's kline carries none, or -1).
6. ``empty_minute``: a minute without trades must not have the ids jump across it (last before + 1 = first after),
   nor an exchange-reported first trade id. It is complete when the ids run on across it (``ids_run_on_across``:
   then it needs no kline, ``kline_needed``), or when its closed kline says n = 0 (rule 5) and no known boundary
   disagrees.

Who applies which:
- ``prove_minute`` (before writing, on ``Trade`` lists; the REST backfill and the stream's ``MinuteAssembler``)
  and ``prove_arrays`` (the same on columns; the archive backfill): all six; an unconfirmed boundary and a missing
  kline (when one is needed) are problems too.
- the checks of a stored file (``minute_checks``, after writing, on the Arrow table read back, the neighbouring
  minutes in the lake standing in for the trades before / after): ``trade_ids_dense`` = rules 2, 3, 4 and 6, a
  neighbour not in the lake leaving its side unchecked; ``agrees_with_kline`` = rule 5 (none needed by rule 6);
  ``values_sane`` = rule 1, with price > 0, qty > 0 and no duplicate id (values of the file itself).
- ``Lake.write_minute`` refuses trades outside their minute with rule 1's ``outside_minute``.

Every rule returns its problems: strings naming the minute and what disagreed, an empty list when it holds. Rules
take plain values (ids as a numpy array or a sequence, times in ms, a count, an exact Decimal volume, a Kline), so
both sides run the same code; numpy does the per-trade work (a BTC minute holds thousands of trades). Klines passed
in must be closed (final).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal

import numpy as np

from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.minutes import MINUTE_MS, minute_key, utc_text

MAX_LISTED = 5  # id gaps / stray trades named one by one in a problem; the rest are counted

Ids = np.ndarray | Sequence[int]


@dataclass(frozen=True)
class MinuteProof:
    """Whether one minute's trades are provably all of them. ``volume``: the exact sum of qty as a decimal string
    ('0' when there is no trade); ids are None when the minute has no trade."""

    complete: bool
    reasons: list[str] = field(default_factory=list)
    first_trade_id: int | None = None
    last_trade_id: int | None = None
    count: int = 0
    volume: str = "0"


_EXACT = Context(prec=80)  # normalize() rounds to its context's precision: wide enough for any sum of quote amounts


def decimal_text(value: Decimal) -> str:
    """An exact decimal as plain text without exponent or trailing zeros: Decimal('1.50000') -> '1.5'."""
    if value == 0:
        return "0"
    return format(value.normalize(_EXACT), "f")


def minute_name(minute_start_ms: int) -> str:
    """How every problem names its minute: 'minute 2026-11-21-10:05'."""
    return f"minute {minute_key(minute_start_ms)}"


# ---- the rules -------------------------------------------------------------------------------------------------------
def outside_minute(minute_start_ms: int, times: np.ndarray | Sequence[int]) -> np.ndarray:
    """Rule 1's test: the positions of the ``times`` (ms) not in [start, start + 60 000)."""
    t = np.asarray(times, dtype=np.int64)
    return np.nonzero((t < minute_start_ms) | (t >= minute_start_ms + MINUTE_MS))[0]


def inside_minute(minute_start_ms: int, ids: Ids, times: np.ndarray | Sequence[int]) -> list[str]:
    """Rule 1: every trade (``ids[i]`` at ``times[i]``) lies inside the minute."""
    outside = outside_minute(minute_start_ms, times)
    if not outside.size:
        return []
    end_ms = minute_start_ms + MINUTE_MS
    listed = ", ".join(f"trade {int(ids[i])} at {utc_text(int(times[i]))}" for i in outside[:MAX_LISTED])
    return [
        f"{minute_name(minute_start_ms)}: {outside.size} trade(s) outside the minute "
        f"[{utc_text(minute_start_ms)}, {utc_text(end_ms)}): {listed}{_more(outside.size)}"
    ]


def dense_ids(minute_start_ms: int, ids: Ids) -> list[str]:
    """Rule 2: the ids (in the order held) run strictly consecutively."""
    a = _array(ids)
    breaks = np.nonzero(np.diff(a) != 1)[0]
    if not breaks.size:
        return []
    listed = ", ".join(_describe_break(int(a[i]), int(a[i + 1])) for i in breaks[:MAX_LISTED])
    return [f"{minute_name(minute_start_ms)}: trade ids not consecutive: {listed}{_more(breaks.size)}"]


def start_confirmed(prev_trade_id: int | None, first_trade_id: int | None, kline: Kline | None) -> bool:
    """Whether anything vouches for the minute's first id: the trade before it, the exchange's first id of the
    minute, or the closed stream kline's ``f`` (rules 3 and 5 report whichever disagrees)."""
    return prev_trade_id is not None or first_trade_id is not None or _kline_first(kline) is not None


def start_boundary(
    minute_start_ms: int,
    first_id: int | None,
    *,
    prev_trade_id: int | None = None,
    first_trade_id: int | None = None,
    kline: Kline | None = None,
    required: bool = True,
) -> list[str]:
    """Rule 3. ``first_id``: the first trade id held (None: no trade, rule 6 applies); ``prev_trade_id``: id of the
    last trade before the minute; ``first_trade_id``: the minute's first trade id as the exchange reports it.
    ``required``: a start nothing confirms is a problem (the proof); otherwise only disagreements are."""
    if first_id is None:
        return []
    name = minute_name(minute_start_ms)
    problems = []
    for label, expected in (
        ("the last trade before the minute", None if prev_trade_id is None else prev_trade_id + 1),
        ("the exchange's first trade id of the minute", first_trade_id),
    ):
        if expected is not None and first_id != expected:
            problems.append(f"{name}: start boundary: first trade id {first_id} != {expected} expected from {label}")
    if required and not start_confirmed(prev_trade_id, first_trade_id, kline):
        problems.append(
            f"{name}: start boundary not confirmed: neither the last trade before the minute nor the "
            f"minute's first trade id is known"
        )
    return problems


def end_boundary(
    minute_start_ms: int,
    last_id: int | None,
    *,
    next_trade_id: int | None = None,
    kline: Kline | None = None,
    count: int = 0,
    start_is_confirmed: bool = False,
    required: bool = True,
) -> list[str]:
    """Rule 4. ``last_id``: the last trade id held (None: no trade, rule 6 applies); ``next_trade_id``: id of the
    first trade at/after the minute's end (None: not seen yet / not known); ``count``: trades held;
    ``start_is_confirmed``: ``start_confirmed(...)``. ``required``: an end nothing confirms is a problem."""
    if last_id is None:
        return []
    name = minute_name(minute_start_ms)
    if next_trade_id is not None:
        if next_trade_id != last_id + 1:
            return [
                f"{name}: end boundary: the next trade after the minute is {next_trade_id}, expected "
                f"{last_id + 1} (last trade id {last_id} + 1)"
            ]
        return []
    pinned = _kline_last(kline) is not None or (start_is_confirmed and kline is not None and kline.trade_count == count)
    if required and not pinned:
        return [
            f"{name}: end boundary not confirmed: no trade at/after {utc_text(minute_start_ms + MINUTE_MS)} seen "
            f"yet (last trade id held {last_id})"
        ]
    return []


def agrees_with_kline(
    minute_start_ms: int, kline: Kline | None, *, count: int, volume: Decimal, first_id: int | None, last_id: int | None
) -> list[str]:
    """Rule 5: the closed 1m kline against what the minute holds (``count`` trades, exact ``volume`` = sum of qty,
    ids ``first_id``..``last_id``, None without trades). No kline is a problem: call it only when one is needed
    (``kline_needed``) or given."""
    name = minute_name(minute_start_ms)
    if kline is None:
        return [
            f"{name}: no closed 1m kline to check the trade count and volume against"
            + ("" if count else " (and the trades around the minute are not both known)")
        ]
    problems = []
    if kline.open_time != minute_start_ms:
        problems.append(f"{name}: the kline given opens at {utc_text(kline.open_time)}, not at the minute's start")
    if kline.trade_count != count:
        problems.append(f"{name}: kline trade count {kline.trade_count} != {count} trade(s) held")
    try:
        kline_volume = Decimal(kline.volume)
    except ArithmeticError:
        kline_volume = None
    if kline_volume != volume:
        problems.append(f"{name}: kline volume {kline.volume} != sum of qty {decimal_text(volume)}")
    kline_f, kline_l = _kline_first(kline), _kline_last(kline)
    if count:
        if kline_f is not None and kline_f != first_id:
            problems.append(f"{name}: kline first trade id {kline_f} != first trade id held {first_id}")
        if kline_l is not None and kline_l != last_id:
            problems.append(f"{name}: kline last trade id {kline_l} != last trade id held {last_id}")
    else:
        for label, value in (("first", kline_f), ("last", kline_l)):
            if value is not None and value != -1:
                problems.append(f"{name}: no trade held but the kline's {label} trade id is {value}")
    return problems


def ids_run_on_across(prev_trade_id: int | None, next_trade_id: int | None) -> bool:
    """Rule 6's proof without a kline: the trade before the minute and the one after it are consecutive."""
    return prev_trade_id is not None and next_trade_id is not None and next_trade_id == prev_trade_id + 1


def kline_needed(count: int, prev_trade_id: int | None, next_trade_id: int | None) -> bool:
    """Whether rule 5 needs a kline: always, except for an empty minute the ids run on across."""
    return bool(count) or not ids_run_on_across(prev_trade_id, next_trade_id)


def empty_minute(
    minute_start_ms: int,
    *,
    prev_trade_id: int | None = None,
    next_trade_id: int | None = None,
    first_trade_id: int | None = None,
) -> list[str]:
    """Rule 6, for a minute without trades: the ids do not jump across it, and the exchange names no first trade
    of it (``first_trade_id``). Whether it is proven at all is ``kline_needed`` + rule 5."""
    name = minute_name(minute_start_ms)
    problems = []
    if prev_trade_id is not None and next_trade_id is not None and next_trade_id != prev_trade_id + 1:
        problems.append(
            f"{name}: no trade held, but the ids jump across it: last trade before is {prev_trade_id}, "
            f"first after is {next_trade_id} (trades {prev_trade_id + 1}..{next_trade_id - 1} missing)"
        )
    if first_trade_id is not None:
        problems.append(f"{name}: no trade held, but the exchange says its first trade id is {first_trade_id}")
    return problems


# ---- the proof: all rules, before writing ----------------------------------------------------------------------------
def prove_minute(
    minute_start_ms: int,
    trades: Sequence[Trade],
    *,
    prev_trade_id: int | None = None,
    first_trade_id: int | None = None,
    next_trade_id: int | None = None,
    kline: Kline | None = None,
) -> MinuteProof:
    """The proof for the minute starting at ``minute_start_ms`` holding ``trades`` (ascending by id): every rule.

    ``prev_trade_id``: id of the last trade before the minute; ``first_trade_id``: the minute's first trade id as
    the exchange knows it (either one confirms the start); ``next_trade_id``: id of the first trade at/after the
    minute's end (None: not seen yet); ``kline``: the minute's closed 1m kline (None: not known)."""
    count = len(trades)
    return prove_arrays(
        minute_start_ms,
        np.fromiter((t.trade_id for t in trades), dtype=np.int64, count=count),
        np.fromiter((t.trade_time for t in trades), dtype=np.int64, count=count),
        sum((Decimal(t.qty) for t in trades), Decimal(0)),
        prev_trade_id=prev_trade_id,
        first_trade_id=first_trade_id,
        next_trade_id=next_trade_id,
        kline=kline,
    )


def prove_arrays(
    minute_start_ms: int,
    ids: np.ndarray,
    times: np.ndarray,
    volume: Decimal,
    *,
    prev_trade_id: int | None = None,
    first_trade_id: int | None = None,
    next_trade_id: int | None = None,
    kline: Kline | None = None,
) -> MinuteProof:
    """``prove_minute`` on columns: the minute's trade ``ids`` (ascending, int64), their ``times`` (ms) and the exact
    sum of their qty (``volume``), the same rules and arguments (the archive path proves whole days this way)."""
    if minute_start_ms % MINUTE_MS:
        raise ValueError(f"{minute_start_ms} is not the start of a minute")
    count = int(ids.size)
    first = int(ids[0]) if count else None
    last = int(ids[-1]) if count else None

    reasons = inside_minute(minute_start_ms, ids, times) + dense_ids(minute_start_ms, ids)
    if kline is not None or kline_needed(count, prev_trade_id, next_trade_id):
        reasons += agrees_with_kline(minute_start_ms, kline, count=count, volume=volume, first_id=first, last_id=last)
    if count:
        reasons += start_boundary(
            minute_start_ms, first, prev_trade_id=prev_trade_id, first_trade_id=first_trade_id, kline=kline
        )
        reasons += end_boundary(
            minute_start_ms,
            last,
            next_trade_id=next_trade_id,
            kline=kline,
            count=count,
            start_is_confirmed=start_confirmed(prev_trade_id, first_trade_id, kline),
        )
    else:
        reasons += empty_minute(
            minute_start_ms, prev_trade_id=prev_trade_id, next_trade_id=next_trade_id, first_trade_id=first_trade_id
        )
    return MinuteProof(not reasons, reasons, first, last, count, decimal_text(volume))


# ---- helpers -----------------------------------------------------------------------------------------------------
def _array(ids: Ids) -> np.ndarray:
    return ids if isinstance(ids, np.ndarray) else np.asarray(ids, dtype=np.int64)


def _more(total: int) -> str:
    return f" and {total - MAX_LISTED} more" if total > MAX_LISTED else ""


def _kline_first(kline: Kline | None) -> int | None:
    return None if kline is None else kline.first_trade_id


def _kline_last(kline: Kline | None) -> int | None:
    return None if kline is None else kline.last_trade_id


def _describe_break(a: int, b: int) -> str:
    if b > a + 1:
        return f"hole after {a} ({b - a - 1} missing, next is {b})"
    if b == a:
        return f"duplicate id {a}"
    return f"{b} after {a} (out of order)"
