"""Binance's REQUEST_WEIGHT budget, shared by every caller in the process. No Dagster imports.

Binance counts request weight per IP per clock minute (6000 by default, the live value is in
``exchangeInfo.rateLimits``), answers 429 + ``Retry-After`` past it and bans the IP (418) for clients that keep
calling. One ``WeightBudget`` per exchange host (``WeightBudget.for_host(host)``) keeps every client, thread and
asset of the process under the limit:

- ``acquire(weight)`` before each request blocks (thread-safe) until the current exchange minute has room for
  ``weight`` within ``share`` x limit. ``share`` defaults to 0.95: the 5 % left over absorbs what this process cannot
  see (a request the server counts in a different minute than we did, a little clock skew, another process on the
  same IP between two resyncs).
- ``observe(used, sent_ms)`` after each response resyncs the minute's count from ``X-MBX-USED-WEIGHT-1M`` (the
  larger of ours and the server's wins: ours also counts requests still in flight, the server's also counts other
  processes on the IP).
- ``pause(retry_after_s)`` after a 429: every caller waits until ``Retry-After`` has passed (never sooner, so the
  exchange never sees a request during its back-off window and has no reason to escalate to a 418). Then one
  request goes first, as a probe; the others follow once it has been answered (and wait again if that answer is
  another 429), so a crowd of threads does not hit a still-running back-off all at once. Requests already in flight
  when the 429 arrives cannot be recalled: Binance forgives a few.
- ``ban(until_ms)`` after a 418: every ``acquire`` raises ``ExchangeBanned`` until the ban ends, so nothing is sent.

Minutes are the exchange's clock minutes: the local clock plus an offset learnt from the server's time
(``set_server_time``; kept at 0 unless the clocks differ by more than the measurement can tell, which is right when
both run on synchronised clocks). A request sent within ``boundary_guard_ms`` (default 1 s) of a minute boundary,
on either side, is charged to both minutes and needs room in both, since the server may count it in either (clock
skew, latency). This costs no throughput when the budget is the limit: each minute's requests then go out in a
burst ``boundary_guard_ms`` after it starts.
"""

from __future__ import annotations

import threading
import time
from typing import Callable
from urllib.parse import urlsplit

from crypto_assets.exchange.errors import ExchangeBanned

MINUTE_MS = 60_000
DEFAULT_WEIGHT_LIMIT = 6000  # REQUEST_WEIGHT per minute until exchangeInfo says otherwise
DEFAULT_SHARE = 0.95
DEFAULT_BOUNDARY_GUARD_MS = 1000



def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class WeightBudget:
    """Request weight per exchange minute for one exchange host (see the module docstring).

    ``clock`` returns local milliseconds; ``speed`` is clock milliseconds per real millisecond (1 except for tests
    that run the exchange and the budget on a fast clock), used to turn waits into real sleeps."""

    _registry: dict[str, "WeightBudget"] = {}
    _registry_lock = threading.Lock()

    def __init__(self, limit: int = DEFAULT_WEIGHT_LIMIT, share: float = DEFAULT_SHARE, *, name: str = "exchange",
                 clock: Callable[[], int] = wall_clock_ms, speed: float = 1.0,
                 boundary_guard_ms: int = DEFAULT_BOUNDARY_GUARD_MS):
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        self.name = name
        self.share = share
        self.boundary_guard_ms = boundary_guard_ms
        self._limit = limit
        self.limit_known = False  # True once set_limit() has been given the exchange's own value
        self.limit_lock = threading.Lock()  # held by the one caller that fetches the limit; others wait on it
        self._clock = clock
        self._speed = speed
        self._offset_ms = 0
        self._used: dict[int, int] = {}  # exchange minute -> weight counted in it
        self._paused_until_ms = 0
        self._banned_until_ms = 0
        self._probe_pending = False  # after a 429: the next request goes alone
        self._probe_sent_ms: int | None = None
        self._probe_timeout_ms = 10_000
        self._cond = threading.Condition()
        self._stats = {"acquired_weight": 0, "requests": 0, "waits": 0, "waited_s": 0.0, "max_reported_used": 0,
                       "responses_429": 0, "responses_418": 0}

    # ---- the registry ------------------------------------------------------------------------------------------
    @classmethod
    def for_host(cls, host: str, **settings) -> "WeightBudget":
        """The process-wide budget of ``host`` ('api.binance.com', '127.0.0.1:8765' or a URL), created with
        ``settings`` on first use (later calls return the existing one unchanged)."""
        key = host_key(host)
        with cls._registry_lock:
            budget = cls._registry.get(key)
            if budget is None:
                budget = cls._registry[key] = cls(name=key, **settings)
            return budget

    @classmethod
    def forget(cls, host: str) -> None:
        """Drop ``host``'s budget from the registry (tests)."""
        with cls._registry_lock:
            cls._registry.pop(host_key(host), None)

    # ---- configuration -----------------------------------------------------------------------------------------
    @property
    def limit(self) -> int:
        return self._limit

    @property
    def ceiling(self) -> int:
        """The most weight this process spends in one minute: share x limit."""
        return max(1, int(self._limit * self.share))

    def set_limit(self, limit: int) -> None:
        with self._cond:
            self._limit = limit
            self.limit_known = True
            self._cond.notify_all()

    def set_server_time(self, server_ms: int, sent_ms: int, received_ms: int) -> None:
        """Learn the exchange clock's offset from a server time read between local ``sent_ms`` and
        ``received_ms`` (taken as read half-way)."""
        offset = server_ms - (sent_ms + received_ms) // 2
        if abs(offset) <= (received_ms - sent_ms) // 2 + 1:
            offset = 0  # within what one round trip can measure: the clocks agree
        with self._cond:
            self._offset_ms = offset

    def local_ms(self) -> int:
        return self._clock()

    def now_ms(self) -> int:
        """The exchange's clock, as far as we know it."""
        return self._clock() + self._offset_ms

    # ---- spending ----------------------------------------------------------------------------------------------
    def acquire(self, weight: int) -> int:
        """Wait until the current exchange minute has room for ``weight``, charge it and return the exchange time
        of the charge (hand it to ``observe``). Raises ExchangeBanned while the IP is banned."""
        waited_from = None
        with self._cond:
            while True:
                now = self.now_ms()
                if self._banned_until_ms > now:
                    raise ExchangeBanned(self._banned_until_ms, self.name)
                if self._paused_until_ms > now:
                    wake = self._paused_until_ms
                elif self._probe_pending and self._probe_sent_ms is not None \
                        and now < self._probe_sent_ms + self._probe_timeout_ms:
                    wake = self._probe_sent_ms + self._probe_timeout_ms  # or until the probe is answered
                else:
                    zone = {(now - self.boundary_guard_ms) // MINUTE_MS, now // MINUTE_MS,
                            (now + self.boundary_guard_ms) // MINUTE_MS}
                    blocked = [m for m in zone if self._used.get(m, 0) + weight > self.ceiling]
                    # A request heavier than the whole ceiling can never fit: let it go alone in fresh minutes.
                    if not blocked or all(self._used.get(m, 0) == 0 for m in zone):
                        for m in zone:
                            self._charge(m, weight)
                        if self._probe_pending:
                            self._probe_sent_ms = now
                        self._stats["acquired_weight"] += weight
                        self._stats["requests"] += 1
                        if waited_from is not None:
                            self._stats["waits"] += 1
                            self._stats["waited_s"] += (self.now_ms() - waited_from) / 1000
                        return now
                    wake = (max(blocked) + 1) * MINUTE_MS + self.boundary_guard_ms
                if waited_from is None:
                    waited_from = now
                # Woken early by ban() / set_limit(); otherwise sleep until the minute (or the pause) ends.
                self._cond.wait(max(0.001, (wake - now + 1) / 1000 / self._speed))

    def _charge(self, minute: int, weight: int) -> None:
        self._used[minute] = self._used.get(minute, 0) + weight
        if len(self._used) > 4:
            for old in sorted(self._used)[:-3]:
                del self._used[old]

    def observe(self, used_weight: int | None, sent_ms: int) -> None:
        """Report how a request charged at exchange time ``sent_ms`` ended (anything but a 429: call ``pause``
        then): its ``X-MBX-USED-WEIGHT-1M`` (None when there was none, or no answer at all) resyncs the minute's
        count, applied only when the answer came back in the minute the request was sent in (otherwise the server
        may have counted it in either minute)."""
        with self._cond:
            if self._probe_pending and self._probe_sent_ms is not None and sent_ms >= self._probe_sent_ms:
                self._probe_pending, self._probe_sent_ms = False, None
                self._cond.notify_all()
            if used_weight is None:
                return
            self._stats["max_reported_used"] = max(self._stats["max_reported_used"], used_weight)
            minute = sent_ms // MINUTE_MS
            if self.now_ms() // MINUTE_MS == minute and used_weight > self._used.get(minute, 0):
                self._used[minute] = used_weight

    def pause(self, retry_after_s: float, used_weight: int | None = None) -> None:
        """A 429 (with its ``X-MBX-USED-WEIGHT-1M``): nobody sends before ``retry_after_s`` seconds from now, and
        then one request goes first."""
        with self._cond:
            self._stats["responses_429"] += 1
            if used_weight is not None:
                self._stats["max_reported_used"] = max(self._stats["max_reported_used"], used_weight)
            self._probe_pending, self._probe_sent_ms = True, None
            self._paused_until_ms = max(self._paused_until_ms, self.now_ms() + int(retry_after_s * 1000))

    def ban(self, until_ms: int) -> int:
        """A 418: every acquire() raises ExchangeBanned until ``until_ms`` (exchange clock); waiting callers
        raise at once. Returns when the ban ends (the later one, if a ban was already running)."""
        with self._cond:
            self._stats["responses_418"] += 1
            self._banned_until_ms = max(self._banned_until_ms, until_ms)
            self._cond.notify_all()
            return self._banned_until_ms

    @property
    def banned_until_ms(self) -> int:
        return self._banned_until_ms

    def used(self) -> int:
        """Weight counted in the current exchange minute."""
        with self._cond:
            return self._used.get(self.now_ms() // MINUTE_MS, 0)

    def stats(self) -> dict:
        """Counters for logs and tests: weight acquired, requests, waits (count and seconds), the highest
        ``X-MBX-USED-WEIGHT-1M`` seen, and the 429 / 418 answers reported to this budget."""
        with self._cond:
            return dict(self._stats, limit=self._limit, ceiling=self.ceiling, used=self._used.get(
                self.now_ms() // MINUTE_MS, 0))


def host_key(host_or_url: str) -> str:
    """'http://127.0.0.1:8765/x' -> '127.0.0.1:8765'; 'api.binance.com' stays as it is."""
    if "://" in host_or_url:
        return urlsplit(host_or_url).netloc.lower()
    return host_or_url.rstrip("/").lower()
