"""Live trades of one symbol assembled into minutes, each decided once: proven complete, or given up.

Fed with the stream's records in arrival order (``BinanceStream.records()``), the assembler decides minutes in
time order once they have ended:
- a minute is **complete** when ``prove_minute`` proves it (every rule of ``completeness``): dense ids, the start
  confirmed (the previous complete minute's last id + 1, or the closed kline's first id ``f``), the end confirmed
  (the kline's last id ``L``, or the first trade after the minute), and the closed kline's trade count and volume
  equal to what was received. The assembler only gathers what the rules look at; it applies none itself;
- a minute is **given up** (left for the REST gap backfill) when a malformed frame of its symbol touched it, or it
  is still unproven ``grace_ms`` after its end (trades or the closed kline never came, or the kline disagrees).

Holes the connection left (the join, a reconnect, a restart) are **repaired**, not given up: trade ids are dense per
symbol, so after each ``connected`` the assembler states what it missed as a ``RepairRequest`` (the ids after the
last one it holds, or the first minute to fetch when it holds none), the caller fetches those ids and the closed
klines over REST and hands them back with ``repaired``; the minutes then go through the same proof. Minutes wait
for their repair (at most ``repair_wait_ms`` after the reconnect) and for a reconnect (at most ``blind_wait_ms``
after their end); past that, or when the repair failed (``repair_failed``), they are given up. Without
``repairs`` (the default) the join and every disconnect give up the minutes they touch, as before.
No Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.ingest.completeness import MinuteProof, prove_minute
from crypto_assets.minutes import MINUTE_MS, floor_minute, minute_key, utc_text

DEFAULT_GRACE_MS = 10_000  # how long after a minute's end late trades or its closed kline may still arrive
REPAIR_WAIT_MS = 60_000  # how long after a reconnect the minutes it touched wait for their REST repair
BLIND_WAIT_MS = 120_000  # how long after its end a minute waits for the stream to reconnect (then given up)


@dataclass(frozen=True)
class RepairRequest:
    """What one symbol missed while the stream could not see it: every trade with id >= ``from_id`` (None: not
    known, then from the first trade of ``from_minute_ms``) up to what the stream delivers since ``connected_at``,
    and the closed klines of the minutes from ``from_minute_ms`` that ended before the stream saw them."""

    symbol: str
    from_minute_ms: int
    from_id: int | None
    connected_at: int


@dataclass(frozen=True)
class DecidedMinute:
    """One minute of one symbol, decided. ``complete``: ``trades`` are provably all of them."""

    symbol: str
    minute_start_ms: int
    trades: list[Trade]
    kline: Kline | None
    complete: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return minute_key(self.minute_start_ms)


class MinuteAssembler:
    def __init__(
        self,
        symbol: str,
        grace_ms: int = DEFAULT_GRACE_MS,
        *,
        repairs: bool = False,
        repair_wait_ms: int = REPAIR_WAIT_MS,
        blind_wait_ms: int = BLIND_WAIT_MS,
    ):
        self.symbol = symbol
        self.grace_ms = grace_ms
        self.repairs = repairs
        self.repair_wait_ms = repair_wait_ms
        self.blind_wait_ms = blind_wait_ms
        self._repair: RepairRequest | None = None  # the repair the minutes from its from_minute_ms wait for
        self._first_known: dict[int, int] = {}  # minute start -> its first trade id as the exchange reports it
        self._last_id: int | None = None  # the highest trade id held or recorded (where a repair starts)
        self._resume_after: int | None = None  # before the first connection: the last minute already recorded
        self.first_stream_id: int | None = None  # the first trade id the current connection delivered
        self._trades: dict[int, list[Trade]] = {}  # minute start -> trades in arrival order
        self._first_ids: dict[int, int] = {}  # minute start -> lowest trade id received
        self._attempted: dict[int, tuple] = {}  # minute start -> what its last failed proof saw (not retried unchanged)
        self._klines: dict[int, Kline] = {}  # closed klines by open time
        self._tainted: dict[int, str] = {}  # minute start -> why the stream cannot vouch for it
        self._next_minute: int | None = None  # the first minute not decided yet (None before the first connection)
        self._blind_since: int | None = None  # minute start since which nothing could be received
        self._prev_last_id: int | None = None  # last trade id of the previous minute, when that one was complete

    # ---- what the stream says --------------------------------------------------------------------------------------
    def resume(self, last_minute_ms: int, last_trade_id: int | None) -> None:
        """Before the first connection: the minutes up to ``last_minute_ms`` are recorded already (the lake), the
        last trade among them has id ``last_trade_id`` (None: not known); with ``repairs`` the stream repairs from
        the next minute on."""
        self._resume_after, self._last_id = last_minute_ms, last_trade_id

    def connected(self, at_ms: int) -> RepairRequest | None:
        """The stream is (re)connected; returns what to repair (with ``repairs``), None when nothing was missed."""
        joined = floor_minute(at_ms)
        self.first_stream_id = None
        if not self.repairs:
            if self._next_minute is None:
                self._next_minute = joined
                self._taint(joined, joined, f"the stream joined during it (connected at {utc_text(at_ms)})")
            elif self._blind_since is not None:
                self._taint(
                    max(self._blind_since, self._next_minute),
                    joined,
                    f"the stream was disconnected until {utc_text(at_ms)}",
                )
            self._blind_since = None
            return None
        if self._next_minute is None:  # the first connection: on from the last recorded minute, if any
            resume = self._resume_after
            if resume is not None and resume < joined:
                self._next_minute, self._prev_last_id = resume + MINUTE_MS, self._last_id
            else:  # nothing recorded before: the repair looks up the join minute's first trade
                self._next_minute, self._last_id = joined, None
            from_minute = self._next_minute
        elif self._blind_since is not None:
            from_minute = max(self._blind_since, self._next_minute)
        else:
            return None
        if self._repair is not None:  # a repair still running: the new one covers what it covered too
            from_minute = min(from_minute, self._repair.from_minute_ms)
        self._blind_since = None
        self._repair = RepairRequest(
            self.symbol, from_minute, None if self._last_id is None else self._last_id + 1, at_ms
        )
        return self._repair

    def repaired(
        self, request: RepairRequest, trades: list[Trade], klines: dict[int, Kline], first_id: int | None = None
    ) -> None:
        """The trades (ids from the request's ``from_id`` on) and closed klines fetched for ``request``;
        ``first_id``: when ``from_id`` was not known, the first trade id since ``request.from_minute_ms`` (it
        confirms the start of its minute; the minutes before it are empty if their klines say so)."""
        for trade in trades:
            self.add_trade(trade)
        for open_time, kline in klines.items():
            if self._next_minute is not None and open_time >= self._next_minute:
                self._klines.setdefault(open_time, kline)  # the stream's own closed kline (with f / L) wins
        if first_id is not None and trades and trades[0].trade_id == first_id:
            self._first_known[floor_minute(trades[0].trade_time)] = first_id
        if self._repair is request:
            self._repair = None

    def repair_failed(self, request: RepairRequest, reason: str) -> None:
        """The repair could not be fetched: the minutes it covered are given up (the gap backfill fetches them)."""
        if self._repair is request:
            self._repair = None
            if self._next_minute is not None:
                self._taint(
                    max(request.from_minute_ms, self._next_minute),
                    floor_minute(request.connected_at),
                    f"the stream missed trades until {utc_text(request.connected_at)} and the repair "
                    f"over REST failed: {reason}",
                )

    def disconnected(self, at_ms: int, lost_since_ms: int) -> None:
        """The connection was lost at ``at_ms``; data may be missing since ``lost_since_ms`` (a half-open socket is
        only noticed after its silence timeout)."""
        self._blind_since = floor_minute(min(lost_since_ms, at_ms))
        if self._next_minute is not None and not self.repairs:
            self._taint(
                max(self._blind_since, self._next_minute),
                floor_minute(at_ms),
                f"the stream lost its connection at {utc_text(at_ms)}",
            )

    def malformed(self, at_ms: int) -> None:
        """A frame of this symbol could not be read: it may have been one of its trades or its kline."""
        if self._next_minute is not None:
            self._taint(self._next_minute, floor_minute(at_ms), f"a malformed frame arrived at {utc_text(at_ms)}")

    def add_trade(self, trade: Trade) -> None:
        minute = floor_minute(trade.trade_time)
        if self._next_minute is None or minute < self._next_minute:
            return  # before the first connection, or of a minute already decided (the gap backfill's now)
        self._trades.setdefault(minute, []).append(trade)
        if trade.trade_id < self._first_ids.get(minute, trade.trade_id + 1):
            self._first_ids[minute] = trade.trade_id
        if self._last_id is None or trade.trade_id > self._last_id:
            self._last_id = trade.trade_id
        if trade.received_at is not None and self.first_stream_id is None:
            self.first_stream_id = trade.trade_id

    def add_kline(self, kline: Kline) -> None:
        """A closed 1m kline (open klines prove nothing and must not be passed)."""
        if self._next_minute is not None and kline.open_time >= self._next_minute:
            self._klines[kline.open_time] = kline

    # ---- deciding ----------------------------------------------------------------------------------------------------
    def decide(self, now_ms: int) -> list[DecidedMinute]:
        """The minutes that can be decided by ``now_ms``, oldest first (a minute waits for the ones before it)."""
        decided: list[DecidedMinute] = []
        while self._next_minute is not None and self._next_minute + MINUTE_MS <= now_ms:
            minute = self._next_minute
            if self._blind_since is not None and minute >= self._blind_since:
                if now_ms < minute + MINUTE_MS + (self.blind_wait_ms if self.repairs else self.grace_ms):
                    break  # still disconnected: decided (given up) once reconnected or after the wait
                self._tainted.setdefault(minute, "the stream was disconnected during it")
            repair = self._repair
            if repair is not None and minute >= repair.from_minute_ms:
                if now_ms < repair.connected_at + self.repair_wait_ms:
                    break  # waits for the trades and klines the repair fetches
                self.repair_failed(repair, f"no answer within {self.repair_wait_ms / 1000:.0f}s")
            outcome = self._decide_one(minute, now_ms)
            if outcome is None:
                break
            decided.append(outcome)
            self._forget(minute)
            self._next_minute = minute + MINUTE_MS
        return decided

    def _decide_one(self, minute: int, now_ms: int) -> DecidedMinute | None:
        received = self._trades.get(minute, [])
        kline = self._klines.get(minute)
        overdue = now_ms >= minute + MINUTE_MS + self.grace_ms
        if minute in self._tainted:
            self._prev_last_id = None
            return DecidedMinute(
                self.symbol,
                minute,
                _by_id(received),
                kline,
                False,
                [f"minute {minute_key(minute)}: {self._tainted[minute]}"],
            )
        next_id = self._first_id_after(minute)
        seen = (len(received), kline is not None, next_id)
        if not overdue and (kline is None or self._attempted.get(minute) == seen):
            return None  # nothing new to prove it with: wait (cheap, this runs on every record)
        trades = _by_id(received)
        proof = prove_minute(
            minute,
            trades,
            prev_trade_id=self._prev_last_id,
            next_trade_id=next_id,
            kline=kline,
            first_trade_id=self._first_known.get(minute),
        )
        if proof.complete:
            if trades:
                self._prev_last_id = trades[-1].trade_id
            return DecidedMinute(self.symbol, minute, trades, kline, True)
        if not overdue:
            self._attempted[minute] = seen
            return None
        self._prev_last_id = None
        return DecidedMinute(self.symbol, minute, trades, kline, False, _reasons(proof))

    def _first_id_after(self, minute: int) -> int | None:
        later = [m for m in self._first_ids if m > minute]
        return self._first_ids[min(later)] if later else None

    def _taint(self, first_minute: int, last_minute: int, reason: str) -> None:
        for minute in range(first_minute, last_minute + MINUTE_MS, MINUTE_MS):
            self._tainted.setdefault(minute, reason)

    def _forget(self, minute: int) -> None:
        self._trades.pop(minute, None)
        self._first_ids.pop(minute, None)
        self._attempted.pop(minute, None)
        self._klines.pop(minute, None)
        self._tainted.pop(minute, None)
        self._first_known.pop(minute, None)


def _by_id(trades: list[Trade]) -> list[Trade]:
    """Ascending by trade id, one per id (a trade seen twice, e.g. around a reconnect, counts once)."""
    unique = {t.trade_id: t for t in trades}
    return [unique[i] for i in sorted(unique)]


def _reasons(proof: MinuteProof) -> list[str]:
    return proof.reasons or ["not proven complete"]
