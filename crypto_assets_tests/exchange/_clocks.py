"""A clock that runs faster than the wall clock, so tests can cross exchange-minute boundaries in a second."""

from __future__ import annotations

import time

MINUTE_MS = 60_000


class FastClock:
    """Milliseconds since the epoch, starting at ``start_ms`` and running ``speed`` times faster than real time.
    Give the same instance to the Simulator (``clock=``) and the WeightBudget (``clock=``, ``speed=``)."""

    def __init__(self, start_ms: int, speed: float):
        self.start_ms = start_ms
        self.speed = speed
        self._t0 = time.monotonic()

    def __call__(self) -> int:
        return self.start_ms + int((time.monotonic() - self._t0) * 1000 * self.speed)

    def minute(self) -> int:
        return self() // MINUTE_MS
