"""Binance's per-IP limits: REQUEST_WEIGHT per minute with 429 then 418, and WebSocket connection attempts.

Binance documents the limit (6000 weight a minute), the 429 with ``Retry-After`` and the 418 ban for clients that
keep calling after 429s, but not the exact escalation rule. The simulator's rule, stated so tests can rely on it:
a request that arrives while a 429's ``Retry-After`` is still running is a violation; more than
``tolerated_violations`` of them (a few requests already in flight are forgiven) bans the IP with 418 for
``ban_seconds``, doubled for each later ban. A client that waits out every ``Retry-After`` is never banned.
"""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass, field

from binance_simulator.endpoints import MINUTE_MS


@dataclass(frozen=True)
class Decision:
    status: int  # 200, 429 or 418
    used_weight: int
    retry_after_s: int = 0
    banned_until_ms: int = 0


@dataclass
class _IpState:
    minute: int = -1
    used: int = 0
    backoff_until_ms: int = 0
    violations: int = 0
    banned_until_ms: int = 0
    bans: int = 0
    counts: collections.Counter = field(default_factory=collections.Counter)  # status -> responses


class RequestWeightLimiter:
    def __init__(self, weight_per_minute: int = 6000, tolerated_violations: int = 3, ban_seconds: int = 120):
        self.weight_per_minute = weight_per_minute
        self.tolerated_violations = tolerated_violations
        self.ban_seconds = ban_seconds
        self._ips: dict[str, _IpState] = collections.defaultdict(_IpState)
        self._lock = threading.Lock()

    def charge(self, ip: str, weight: int, now_ms: int, forced_retry_after_s: int = 0) -> Decision:
        """Account one request of ``weight``. ``forced_retry_after_s`` > 0 answers 429 regardless of the weight
        (an injected 429 storm), still subject to the ban rule."""
        with self._lock:
            st = self._ips[ip]
            minute = now_ms // MINUTE_MS
            if minute != st.minute:
                st.minute, st.used = minute, 0
            if st.banned_until_ms > now_ms:
                return self._count(st, Decision(418, st.used, _ceil_s(st.banned_until_ms - now_ms), st.banned_until_ms))
            if st.backoff_until_ms > now_ms:
                st.violations += 1
                if st.violations > self.tolerated_violations:
                    st.bans += 1
                    st.banned_until_ms = now_ms + self.ban_seconds * 1000 * 2 ** (st.bans - 1)
                    st.backoff_until_ms = 0
                    return self._count(
                        st, Decision(418, st.used, _ceil_s(st.banned_until_ms - now_ms), st.banned_until_ms)
                    )
                return self._count(st, Decision(429, st.used, _ceil_s(st.backoff_until_ms - now_ms)))
            st.violations = 0
            if forced_retry_after_s > 0:
                st.backoff_until_ms = now_ms + forced_retry_after_s * 1000
                return self._count(st, Decision(429, st.used, forced_retry_after_s))
            if st.used + weight > self.weight_per_minute:
                st.backoff_until_ms = (minute + 1) * MINUTE_MS
                return self._count(st, Decision(429, st.used, _ceil_s(st.backoff_until_ms - now_ms)))
            st.used += weight
            return self._count(st, Decision(200, st.used))

    def used_weight(self, ip: str, now_ms: int) -> int:
        with self._lock:
            st = self._ips.get(ip)
            return st.used if st and st.minute == now_ms // MINUTE_MS else 0

    def stats(self) -> dict[str, dict]:
        with self._lock:
            return {
                ip: {
                    "used_weight": st.used,
                    "responses": dict(st.counts),
                    "bans": st.bans,
                    "banned_until_ms": st.banned_until_ms,
                }
                for ip, st in self._ips.items()
            }

    def reset(self) -> None:
        with self._lock:
            self._ips.clear()

    @staticmethod
    def _count(st: _IpState, decision: Decision) -> Decision:
        st.counts[decision.status] += 1
        return decision


class ConnectionAttemptLimiter:
    """At most ``attempts`` WebSocket connection attempts per ``window_s`` per IP (Binance: 300 per 5 minutes)."""

    def __init__(self, attempts: int = 300, window_s: int = 300):
        self.attempts = attempts
        self.window_ms = window_s * 1000
        self._seen: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def allow(self, ip: str, now_ms: int) -> bool:
        with self._lock:
            q = self._seen[ip]
            while q and q[0] <= now_ms - self.window_ms:
                q.popleft()
            q.append(now_ms)
            return len(q) <= self.attempts


def _ceil_s(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))
