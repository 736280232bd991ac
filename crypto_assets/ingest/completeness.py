"""The completeness proof of one minute of one symbol's spot trades.

Binance spot trade ids are dense per symbol (see shared/binance-api.md, "Completeness"), so a minute is proven
complete when:
- every trade's time lies in [start, start + 60 000) and the ids run strictly consecutively;
- the start boundary is confirmed: first id = id of the last trade before the minute + 1, or the minute's first
  trade id as the exchange reports it (the stream kline's ``f``);
- the end boundary is confirmed: the first trade at/after the minute's end has id last + 1, or the closed stream
  kline's ``L`` equals the last id, or (no later trade seen yet) the start is confirmed and the closed kline's
  trade count n equals the count held: dense ids from a confirmed first id then end at first + n - 1;
- the minute's closed 1m kline agrees: trade count, base volume (exact Decimal), and ``f`` / ``L`` when it has them.
A minute without trades is complete when the ids run on across it (last before + 1 = first after), or when its
closed kline says n = 0 and no known boundary disagrees.

Every failed rule adds a reason naming the minute and what disagreed. Klines passed in must be closed (final).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Sequence

from crypto_assets.exchange.errors import utc_text
from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.ingest.minutes import MINUTE_MS, minute_key

MAX_LISTED = 5  # id gaps / stray trades named one by one in a reason; the rest are counted


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


def prove_minute(minute_start_ms: int, trades: Sequence[Trade], *, prev_trade_id: int | None = None,
                 first_trade_id: int | None = None, next_trade_id: int | None = None,
                 kline: Kline | None = None) -> MinuteProof:
    """The proof for the minute starting at ``minute_start_ms`` holding ``trades`` (ascending by id).

    ``prev_trade_id``: id of the last trade before the minute; ``first_trade_id``: the minute's first trade id as
    the exchange knows it (either one confirms the start); ``next_trade_id``: id of the first trade at/after the
    minute's end (None: not seen yet); ``kline``: the minute's closed 1m kline (None: not known)."""
    if minute_start_ms % MINUTE_MS:
        raise ValueError(f"{minute_start_ms} is not the start of a minute")
    name = f"minute {minute_key(minute_start_ms)}"
    end_ms = minute_start_ms + MINUTE_MS
    reasons: list[str] = []
    count = len(trades)
    volume = sum((Decimal(t.qty) for t in trades), Decimal(0))
    first = trades[0].trade_id if trades else None
    last = trades[-1].trade_id if trades else None
    kline_f = kline.first_trade_id if kline is not None and kline.first_trade_id is not None else None
    kline_l = kline.last_trade_id if kline is not None and kline.last_trade_id is not None else None

    # -- every trade inside the minute
    outside = [t for t in trades if not minute_start_ms <= t.trade_time < end_ms]
    if outside:
        listed = ", ".join(f"trade {t.trade_id} at {utc_text(t.trade_time)}" for t in outside[:MAX_LISTED])
        more = f" and {len(outside) - MAX_LISTED} more" if len(outside) > MAX_LISTED else ""
        reasons.append(f"{name}: {len(outside)} trade(s) outside [{utc_text(minute_start_ms)}, {utc_text(end_ms)}): "
                       f"{listed}{more}")

    # -- ids strictly consecutive
    breaks = [(a.trade_id, b.trade_id) for a, b in zip(trades, trades[1:]) if b.trade_id != a.trade_id + 1]
    if breaks:
        listed = ", ".join(_describe_break(a, b) for a, b in breaks[:MAX_LISTED])
        more = f" and {len(breaks) - MAX_LISTED} more" if len(breaks) > MAX_LISTED else ""
        reasons.append(f"{name}: trade ids not consecutive: {listed}{more}")

    # -- an empty minute: do the ids run on across it?
    continuous = (not count and prev_trade_id is not None and next_trade_id is not None
                  and next_trade_id == prev_trade_id + 1)

    # -- kline: count, volume, f / L (only an empty minute the ids run on across needs none)
    if kline is None:
        if not continuous:
            reasons.append(f"{name}: no closed 1m kline to check the trade count and volume against"
                           + ("" if count else " (and the trades around the minute are not both known)"))
    else:
        if kline.open_time != minute_start_ms:
            reasons.append(f"{name}: the kline given opens at {utc_text(kline.open_time)}, not at the minute's start")
        if kline.trade_count != count:
            reasons.append(f"{name}: kline trade count {kline.trade_count} != {count} trade(s) held")
        try:
            kline_volume = Decimal(kline.volume)
        except ArithmeticError:
            kline_volume = None
        if kline_volume != volume:
            reasons.append(f"{name}: kline volume {kline.volume} != sum of qty {decimal_text(volume)}")
        if count:
            if kline_f is not None and kline_f != first:
                reasons.append(f"{name}: kline first trade id {kline_f} != first trade id held {first}")
            if kline_l is not None and kline_l != last:
                reasons.append(f"{name}: kline last trade id {kline_l} != last trade id held {last}")
        else:
            for label, value in (("first", kline_f), ("last", kline_l)):
                if value is not None and value != -1:
                    reasons.append(f"{name}: no trade held but the kline's {label} trade id is {value}")

    if count:
        # -- start boundary
        confirmations = int(kline_f is not None)  # a kline f that disagrees is reported above
        for label, expected in (("the last trade before the minute", None if prev_trade_id is None
                                 else prev_trade_id + 1),
                                ("the exchange's first trade id of the minute", first_trade_id)):
            if expected is None:
                continue
            confirmations += 1
            if first != expected:
                reasons.append(f"{name}: start boundary: first trade id {first} != {expected} expected from {label}")
        if not confirmations:
            reasons.append(f"{name}: start boundary not confirmed: neither the last trade before the minute nor "
                           f"the minute's first trade id is known")
        # -- end boundary
        if next_trade_id is not None:
            if next_trade_id != last + 1:
                reasons.append(f"{name}: end boundary: the next trade after the minute is {next_trade_id}, "
                               f"expected {last + 1} (last trade id {last} + 1)")
        elif kline_l is None and not (confirmations and kline is not None and kline.trade_count == count):
            # (a confirmed first id, dense ids and the closed kline's n trades also pin the last id: first + n - 1)
            reasons.append(f"{name}: end boundary not confirmed: no trade at/after {utc_text(end_ms)} seen yet "
                           f"(last trade id held {last})")
    else:
        # -- an empty minute: complete when the ids run on across it, or its closed kline says n = 0 (checked above)
        if prev_trade_id is not None and next_trade_id is not None and not continuous:
            reasons.append(f"{name}: no trade held, but the ids jump across it: last trade before is "
                           f"{prev_trade_id}, first after is {next_trade_id} (trades "
                           f"{prev_trade_id + 1}..{next_trade_id - 1} missing)")
        if first_trade_id is not None:
            reasons.append(f"{name}: no trade held, but the exchange says its first trade id is {first_trade_id}")

    volume_text = decimal_text(volume)
    return MinuteProof(not reasons, reasons, first, last, count, volume_text)


def _describe_break(a: int, b: int) -> str:
    if b > a + 1:
        return f"hole after {a} ({b - a - 1} missing, next is {b})"
    if b == a:
        return f"duplicate id {a}"
    return f"{b} after {a} (out of order)"
