"""Live trades of one symbol assembled into minutes, each decided once: proven complete, or given up.

Fed with the stream's records in arrival order (``BinanceStream.records()``), the assembler decides minutes in
time order once they have ended:
- a minute is **complete** when ``prove_minute`` proves it: dense ids, the start confirmed (the previous complete
  minute's last id + 1, or the closed kline's first id ``f``), the end confirmed (the kline's last id ``L``, or
  the first trade after the minute), and the closed kline's trade count and volume equal to what was received;
- a minute is **given up** (left for the REST gap backfill) when the stream joined during it, a disconnect or a
  malformed frame of its symbol touched it, or it is still unproven ``grace_ms`` after its end (trades or the
  closed kline never came, or the kline disagrees).
No Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crypto_assets.exchange.errors import utc_text
from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.ingest.completeness import MinuteProof, prove_minute
from crypto_assets.ingest.minutes import MINUTE_MS, floor_minute, minute_key

DEFAULT_GRACE_MS = 10_000  # how long after a minute's end late trades or its closed kline may still arrive


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
    def __init__(self, symbol: str, grace_ms: int = DEFAULT_GRACE_MS):
        self.symbol = symbol
        self.grace_ms = grace_ms
        self._trades: dict[int, list[Trade]] = {}  # minute start -> trades in arrival order
        self._first_ids: dict[int, int] = {}  # minute start -> lowest trade id received
        self._attempted: dict[int, tuple] = {}  # minute start -> what its last failed proof saw (not retried unchanged)
        self._klines: dict[int, Kline] = {}  # closed klines by open time
        self._tainted: dict[int, str] = {}  # minute start -> why the stream cannot vouch for it
        self._next_minute: int | None = None  # the first minute not decided yet (None before the first connection)
        self._blind_since: int | None = None  # minute start since which nothing could be received
        self._prev_last_id: int | None = None  # last trade id of the previous minute, when that one was complete

    # ---- what the stream says --------------------------------------------------------------------------------------
    def connected(self, at_ms: int) -> None:
        joined = floor_minute(at_ms)
        if self._next_minute is None:
            self._next_minute = joined
            self._taint(joined, joined, f"the stream joined during it (connected at {utc_text(at_ms)})")
        elif self._blind_since is not None:
            self._taint(max(self._blind_since, self._next_minute), joined,
                        f"the stream was disconnected until {utc_text(at_ms)}")
        self._blind_since = None

    def disconnected(self, at_ms: int, lost_since_ms: int) -> None:
        """The connection was lost at ``at_ms``; data may be missing since ``lost_since_ms`` (a half-open socket is
        only noticed after its silence timeout)."""
        self._blind_since = floor_minute(min(lost_since_ms, at_ms))
        if self._next_minute is not None:
            self._taint(max(self._blind_since, self._next_minute), floor_minute(at_ms),
                        f"the stream lost its connection at {utc_text(at_ms)}")

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
                if now_ms < minute + MINUTE_MS + self.grace_ms:
                    break  # still disconnected: decided (given up) once reconnected or after the grace
                self._tainted.setdefault(minute, "the stream was disconnected during it")
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
            return DecidedMinute(self.symbol, minute, _by_id(received), kline, False,
                                 [f"minute {minute_key(minute)}: {self._tainted[minute]}"])
        next_id = self._first_id_after(minute)
        seen = (len(received), kline is not None, next_id)
        if not overdue and (kline is None or self._attempted.get(minute) == seen):
            return None  # nothing new to prove it with: wait (cheap, this runs on every record)
        trades = _by_id(received)
        proof = prove_minute(minute, trades, prev_trade_id=self._prev_last_id, next_trade_id=next_id, kline=kline)
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


def _by_id(trades: list[Trade]) -> list[Trade]:
    """Ascending by trade id, one per id (a trade seen twice, e.g. around a reconnect, counts once)."""
    unique = {t.trade_id: t for t in trades}
    return [unique[i] for i in sorted(unique)]


def _reasons(proof: MinuteProof) -> list[str]:
    return proof.reasons or ["not proven complete"]
