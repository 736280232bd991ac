"""Hostile mode: a bad real network in front of Binance, and a market that bursts and goes quiet.

Two halves, each deterministic from one seed:

- The network (``ConnectionCutter``, used by the stream hub): every live WebSocket connection is cut after a random
  ``CUT_AFTER_S`` (40-100 s) from its start (or from the moment hostile mode was switched on, for a connection
  already open), in one of three ways drawn at random:
  ``drop``: the TCP connection is closed without a close frame;
  ``half_open``: the server goes silent for good (no data, no pings, no answers) and keeps the socket open;
  ``server_shutdown``: ``{"e":"serverShutdown","E":...}``, then a close frame (1001) ``SHUTDOWN_GRACE_S`` later.
  Draws come from one RNG seeded with the hostile seed, one draw per connection in the order they open.

- The market (``HostileMarket``, consulted by ``SymbolMarket._shape`` for the seconds inside a hostile window):
  now and then (``BURST_PROBABILITY`` per symbol and UTC minute) a symbol trades ``BURST_MULTIPLIER`` (10-50x) its
  rate for ``BURST_SECONDS`` (2-8 s); now and then (``EMPTY_MINUTE_PROBABILITY``) a symbol has a whole UTC minute
  without a trade. An empty minute's closed kline is the one the simulator always gives a minute without trades
  (``n`` 0, ``f``/``L`` -1, open = high = low = close = the last price before it, volumes 0), on the stream and over
  REST alike. Bursts and empty minutes are drawn per ``(seed, symbol, minute, hostile seed)``.

The market half only ever changes seconds that nobody has seen yet: a window starts at the symbol's first second
not yet indexed (and not before the current second), and ends the same way, so the ground truth (``trades_between``),
REST, klines and the stream keep reading one and the same market. Hostile mode from the start (``--hostile``,
``SimulatorConfig.hostile``) covers the whole history.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

CUT_AFTER_S = (40.0, 100.0)  # a connection lives this long (uniform) before the network cuts it
CUT_KINDS = ("drop", "half_open", "server_shutdown")
SHUTDOWN_GRACE_S = (2.0, 5.0)  # serverShutdown, then the close frame this much later (uniform)
BURST_PROBABILITY = 0.25  # per symbol and UTC minute: a burst every 4 minutes on average
BURST_SECONDS = (2, 8)  # inclusive
BURST_MULTIPLIER = (10, 50)  # inclusive: the symbol's rate is multiplied by this during the burst
EMPTY_MINUTE_PROBABILITY = 0.1  # per symbol and UTC minute: an empty minute every 10 minutes on average
_FOREVER_S = 2**40


@dataclass(frozen=True)
class Seconds:
    """The epoch seconds ``start_s`` <= s < ``end_s``."""

    start_s: int
    end_s: int

    def covers(self, second: int) -> bool:
        return self.start_s <= second < self.end_s

    def covers_minute(self, minute: int) -> bool:
        return self.start_s <= minute * 60 and minute * 60 + 60 <= self.end_s


@dataclass(frozen=True)
class Burst(Seconds):
    """These seconds trade ``multiplier`` times the symbol's rate."""

    multiplier: int


@dataclass(frozen=True)
class Window(Seconds):
    """These seconds of one symbol are hostile, drawn with ``seed``."""

    seed: int


class HostileMarket:
    """The hostile windows of one symbol and what they do to its seconds (bursts) and minutes (empty)."""

    def __init__(self, seed: int, key: int):
        self.seed, self.key = seed, key
        self.windows: list[Window] = []
        self._bursts: dict[tuple[int, int], Burst | None] = {}

    @property
    def active(self) -> bool:
        return bool(self.windows) and self.windows[-1].end_s == _FOREVER_S

    def start(self, from_s: int, hostile_seed: int) -> int:
        """Hostile from second ``from_s`` on (a no-op while already hostile). Returns the first hostile second."""
        if self.active:
            return self.windows[-1].start_s
        self.windows = [*self.windows, Window(from_s, _FOREVER_S, hostile_seed)]  # one assignment: readers never
        return from_s  # see a half-changed list

    def stop(self, from_s: int) -> None:
        """Calm again from second ``from_s`` on."""
        if self.active:
            *done, w = self.windows
            self.windows = done + ([Window(w.start_s, from_s, w.seed)] if from_s > w.start_s else [])

    def _window(self, second: int) -> Window | None:
        for w in self.windows:
            if w.covers(second):
                return w
        return None

    def empty_minute(self, minute: int) -> bool:
        for w in self.windows:
            if w.covers_minute(minute):
                rng = np.random.default_rng([self.seed, self.key, minute, 4, w.seed])
                return bool(rng.random() < EMPTY_MINUTE_PROBABILITY)
        return False

    def burst(self, minute: int, seed: int) -> Burst | None:
        """The burst starting in ``minute`` (it stays inside the minute), or None."""
        key = (minute, seed)
        if key not in self._bursts:
            rng = np.random.default_rng([self.seed, self.key, minute, 5, seed])
            burst = None
            if rng.random() < BURST_PROBABILITY:
                seconds = int(rng.integers(BURST_SECONDS[0], BURST_SECONDS[1] + 1))
                start = minute * 60 + int(rng.integers(0, 60 - seconds + 1))
                burst = Burst(start, start + seconds, int(rng.integers(BURST_MULTIPLIER[0], BURST_MULTIPLIER[1] + 1)))
            self._bursts[key] = burst
        return self._bursts[key]

    def rate_multiplier(self, second: int) -> int:
        """How many times its rate the symbol trades in ``second`` (1 outside a burst)."""
        w = self._window(second)
        if w is None:
            return 1
        burst = self.burst(second // 60, w.seed)
        return burst.multiplier if burst is not None and burst.covers(second) else 1

    def burst_seconds(self, start_s: int, end_s: int) -> dict[int, int]:
        """{second: rate multiplier} of the burst seconds in [start_s, end_s) (for tests and the state endpoint)."""
        out = {}
        for minute in range(start_s // 60, (end_s - 1) // 60 + 1):
            for w in self.windows:
                b = self.burst(minute, w.seed) if w.covers(minute * 60) or w.covers(minute * 60 + 59) else None
                if b is not None:
                    out.update(
                        {
                            s: b.multiplier
                            for s in range(b.start_s, b.end_s)
                            if start_s <= s < end_s and self._window(s) is w
                        }
                    )
        return out


@dataclass(frozen=True)
class Cut:
    """How and when the network cuts one connection."""

    at_ms: int
    kind: str
    grace_ms: int  # serverShutdown: the close frame comes this long after the event


class ConnectionCutter:
    """One seeded RNG drawing each connection's cut, in the order connections are scheduled."""

    def __init__(self, seed: int):
        self.seed = seed
        self._rng = random.Random(seed)

    def plan(self, from_ms: int) -> Cut:
        after_s = self._rng.uniform(*CUT_AFTER_S)
        kind = self._rng.choice(CUT_KINDS)
        grace_s = self._rng.uniform(*SHUTDOWN_GRACE_S)
        return Cut(from_ms + int(after_s * 1000), kind, int(grace_s * 1000))
