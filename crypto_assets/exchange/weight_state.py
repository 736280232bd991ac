"""The weight budget's state and its arithmetic: pure values and functions (no I/O, no locks, no clock of their own).

``BudgetState`` is what every process sharing a budget agrees on: the weight charged per exchange minute, the pause
after a 429 (with its probe), the ban after a 418. Each change is a method returning a new state, given the exchange
time ``now`` by the caller; ``charge`` also says whether the request may go, and if not until when to wait.
``crypto_assets.exchange.weight_budget.WeightBudget`` holds one of these, syncs it with the shared state file
(``weight_state_file``) and does the waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from crypto_assets.minutes import MINUTE_MS

PROBE_TIMEOUT_MS = 10_000  # a probe unanswered this long (its process died?) no longer holds the others back
KEPT_MINUTES = 2  # minutes further than this from now (either side) are dropped when states are merged


@dataclass(frozen=True)
class Charged:
    """The request may go: ``state`` has it charged (at ``at_ms``, exchange clock)."""

    state: BudgetState
    at_ms: int


@dataclass(frozen=True)
class Wait:
    """No room now (a full minute, a pause, a probe in flight): try again at ``until_ms`` (exchange clock), or
    sooner if the state changes."""

    until_ms: int


@dataclass(frozen=True)
class Banned:
    """The IP is banned until ``until_ms`` (exchange clock): send nothing."""

    until_ms: int


@dataclass(frozen=True)
class BudgetState:
    """``used``: (exchange minute, weight charged in it) pairs, ascending by minute; ``paused_until_ms``: no request
    before this (after a 429); ``probe_pending``: after that pause one request goes alone, sent at ``probe_sent_ms``
    (None: not sent yet); ``banned_until_ms``: nothing is sent before this (after a 418). Times: exchange clock."""

    used: tuple[tuple[int, int], ...] = ()
    paused_until_ms: int = 0
    probe_pending: bool = False
    probe_sent_ms: int | None = None
    banned_until_ms: int = 0

    def weight_in(self, minute: int) -> int:
        """Weight charged in exchange minute ``minute`` (``ms // MINUTE_MS``)."""
        return dict(self.used).get(minute, 0)

    def used_at(self, now_ms: int) -> int:
        """Weight charged in the minute holding ``now_ms``."""
        return self.weight_in(now_ms // MINUTE_MS)

    def charge(
        self,
        weight: int,
        now_ms: int,
        ceiling: int,
        boundary_guard_ms: int,
        probe_timeout_ms: int = PROBE_TIMEOUT_MS,
    ) -> Charged | Wait | Banned:
        """Charge a request of ``weight`` sent at ``now_ms`` if it fits, or say why not and until when.

        A request within ``boundary_guard_ms`` of a minute boundary (either side) is charged to both minutes and
        needs room below ``ceiling`` in both. A request heavier than the whole ceiling goes alone, in minutes
        with nothing charged yet. After a 429's pause the first request goes as the probe; the others wait for
        its answer (``observed``), at most ``probe_timeout_ms``."""
        if self.banned_until_ms > now_ms:
            return Banned(self.banned_until_ms)
        if self.paused_until_ms > now_ms:
            return Wait(self.paused_until_ms)
        if self.probe_pending and self.probe_sent_ms is not None and now_ms < self.probe_sent_ms + probe_timeout_ms:
            return Wait(self.probe_sent_ms + probe_timeout_ms)
        zone = {
            (now_ms - boundary_guard_ms) // MINUTE_MS,
            now_ms // MINUTE_MS,
            (now_ms + boundary_guard_ms) // MINUTE_MS,
        }
        used = dict(self.used)
        blocked = [m for m in zone if used.get(m, 0) + weight > ceiling]
        if blocked and any(used.get(m, 0) for m in zone):
            return Wait((max(blocked) + 1) * MINUTE_MS + boundary_guard_ms)
        for m in zone:
            used[m] = used.get(m, 0) + weight
        if len(used) > 4:  # only the minutes around now matter
            used = dict(sorted(used.items())[-3:])
        charged = replace(
            self,
            used=_pairs(used),
            probe_sent_ms=now_ms if self.probe_pending else self.probe_sent_ms,
        )
        return Charged(charged, now_ms)

    def observed(self, used_weight: int | None, sent_ms: int, now_ms: int) -> BudgetState:
        """A request charged at ``sent_ms`` was answered (anything but a 429) at ``now_ms``: it answers the probe
        if it was sent after it; its ``X-MBX-USED-WEIGHT-1M`` (None: none, or no answer) raises the count of its
        minute when larger and when the answer came in the minute it was sent in (otherwise the server may have
        counted it in either minute)."""
        state = self
        if state.probe_pending and state.probe_sent_ms is not None and sent_ms >= state.probe_sent_ms:
            state = replace(state, probe_pending=False, probe_sent_ms=None)
        if used_weight is None:
            return state
        minute = sent_ms // MINUTE_MS
        if now_ms // MINUTE_MS == minute and used_weight > state.weight_in(minute):
            state = replace(state, used=_pairs({**dict(state.used), minute: used_weight}))
        return state

    def paused(self, now_ms: int, retry_after_ms: int) -> BudgetState:
        """A 429 at ``now_ms``: nothing is sent for ``retry_after_ms`` (a running longer pause stands), then one
        request goes first as the probe."""
        return replace(
            self,
            paused_until_ms=max(self.paused_until_ms, now_ms + retry_after_ms),
            probe_pending=True,
            probe_sent_ms=None,
        )

    def banned(self, until_ms: int) -> BudgetState:
        """A 418: nothing is sent before ``until_ms`` (a running longer ban stands)."""
        return replace(self, banned_until_ms=max(self.banned_until_ms, until_ms))

    def merged(self, stored: BudgetState, now_ms: int) -> BudgetState:
        """This state after reading ``stored`` (the shared file's): the larger count of each minute within
        ``KEPT_MINUTES`` of now (others dropped), the later pause and ban, and the stored probe (a probe is answered
        in whichever process sent it, so the file's word is the latest)."""
        current = now_ms // MINUTE_MS
        used = {m: w for m, w in self.used if abs(m - current) <= KEPT_MINUTES}
        for minute, weight in stored.used:
            if abs(minute - current) <= KEPT_MINUTES:
                used[minute] = max(used.get(minute, 0), weight)
        return BudgetState(
            used=_pairs(used),
            paused_until_ms=max(self.paused_until_ms, stored.paused_until_ms),
            probe_pending=stored.probe_pending,
            probe_sent_ms=stored.probe_sent_ms,
            banned_until_ms=max(self.banned_until_ms, stored.banned_until_ms),
        )


def _pairs(used: dict[int, int]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted(used.items()))
