"""Binance's REQUEST_WEIGHT budget, shared by every caller in the process, or by every process on the machine that
names the same state folder. No Dagster imports.

Binance counts request weight per IP per clock minute (6000 by default, the live value is in
``exchangeInfo.rateLimits``), answers 429 + ``Retry-After`` past it and bans the IP (418) for clients that keep
calling. One ``WeightBudget`` per exchange host (``WeightBudget.for_host(host)``) keeps every client, thread and
asset of the process under the limit (asked again with other settings, ``for_host`` raises ValueError rather than
return a budget that ignores them):

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

One budget for the whole machine: ``WeightBudget.for_host(host, state_dir=folder)`` keeps the budget's state in
``<folder>/<host>.json`` (e.g. ``api.binance.com.json``, ``127.0.0.1_8765.json``), so that every process naming the
same folder (the live capture process, each Dagster run, benches) spends one budget. The file holds the weight
charged per exchange minute, the pause after a 429 with its probe, the ban after a 418, and the last limit learnt
from ``exchangeInfo``. Every operation that reads or changes the state (each ``acquire``, ``observe``, ``pause``,
``ban``) loads the file, decides and writes it back under an exclusive ``fcntl.flock`` of the file (some 50 µs on a
local disk; the lock dies with its process, so a killed process never leaves the file locked), and so:

- every process's ``acquire`` charges the shared minute: together they stay within share x limit;
- ``urgent_reserve`` (``URGENT_RESERVE`` = 10 % for the deployment's budget) of that is kept for urgent callers
  (``acquire(weight, urgent=True)``: the live stream's repairs): backfills stop short of it, so a repair is never
  queued behind a backfill that took the whole minute;
- a 429 seen by any process pauses all of them until its ``Retry-After``, and the probe rule holds across them (one
  request, from whichever process comes first, goes before the others);
- a 418 seen by any process makes every ``acquire`` of every process raise ``ExchangeBanned`` until the ban ends;
- ``X-MBX-USED-WEIGHT-1M`` resyncs the shared count (the larger wins).

A process waiting for room (or for a pause or a probe) re-reads the file every ``poll_s`` (0.25 s) of real time,
so it notices another process's pause or ban within that; it sleeps between reads (no busy loop). The file is only
ever an addition of caution: a file that cannot be parsed (a process killed in the middle of a write, a hand edit)
or that holds implausible values (a pause over a day or a ban over a week ahead, a probe sent in the future: a
file written under another clock) is treated as empty for those values, with a log warning naming the file, and is
rewritten at once; the budget's own counts are kept (the larger of its own and the file's wins), and minutes more
than two away from now are dropped. Without
``state_dir`` the budget is the process's alone (tests, benches), exactly as before. The file does not reach other
machines: see the README's "One weight budget".

Three modules: ``weight_state.py`` (the state and its arithmetic, pure: what a request may charge, what a header,
a 429 or a 418 does to the state), ``weight_state_file.py`` (the state file: its format, its lock) and this one
(``WeightBudget``: the clock, the waiting, the process's registry, the counters).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from crypto_assets.exchange.errors import ExchangeBanned
from crypto_assets.exchange.weight_state import PROBE_TIMEOUT_MS, Banned, BudgetState, Charged
from crypto_assets.exchange.weight_state_file import StateFile

DEFAULT_WEIGHT_LIMIT = 6000  # REQUEST_WEIGHT per minute until exchangeInfo says otherwise
DEFAULT_SHARE = 0.95
URGENT_RESERVE = 0.1  # of the ceiling, kept for the live stream's repairs by the deployment's budget
DEFAULT_BOUNDARY_GUARD_MS = 1000
# Settings a budget made with their default takes from the first for_host caller that names them (attribute names)
ADOPTABLE = {"urgent_reserve": "urgent_reserve"}
DEFAULT_POLL_S = 0.25  # how often a waiting process re-reads the shared state (real seconds)


@dataclass(frozen=True)
class BudgetView:
    """What ``WeightBudget.view()`` reads (for metrics): times on the exchange clock, 0 when never paused / banned."""

    used: int
    limit: int
    paused_until_ms: int
    banned_until_ms: int


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class WeightBudget:
    """Request weight per exchange minute for one exchange host (see the module docstring).

    ``clock`` returns local milliseconds; ``speed`` is clock milliseconds per real millisecond (1 except for tests
    that run the exchange and the budget on a fast clock), used to turn waits into real sleeps. ``state_dir``: the
    folder whose state file this budget shares with every other process naming it (None: this process only);
    ``poll_s``: how often, in real seconds, a waiting caller re-reads that file."""

    _registry: dict[str, WeightBudget] = {}
    _registry_lock = threading.Lock()

    def __init__(
        self,
        limit: int = DEFAULT_WEIGHT_LIMIT,
        share: float = DEFAULT_SHARE,
        *,
        name: str = "exchange",
        clock: Callable[[], int] = wall_clock_ms,
        speed: float = 1.0,
        boundary_guard_ms: int = DEFAULT_BOUNDARY_GUARD_MS,
        state_dir: str | Path | None = None,
        poll_s: float = DEFAULT_POLL_S,
        urgent_reserve: float = 0.0,
    ):
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if not 0 <= urgent_reserve < 1:
            raise ValueError(f"urgent_reserve must be in [0, 1), got {urgent_reserve}")
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        if poll_s <= 0:
            raise ValueError(f"poll_s must be positive, got {poll_s}")
        # What for_host compares a later call's settings with (the limit as given, not as learnt since).
        self._made_with = {
            "limit": limit,
            "share": share,
            "clock": clock,
            "speed": speed,
            "boundary_guard_ms": boundary_guard_ms,
            "poll_s": poll_s,
            "urgent_reserve": urgent_reserve,
        }
        self._named: set[str] = set()  # the settings a for_host caller named (the others are defaults: ADOPTABLE)
        self.name = name
        self.share = share
        self.urgent_reserve = urgent_reserve
        self.boundary_guard_ms = boundary_guard_ms
        self.poll_s = poll_s
        self._limit = limit
        self.limit_known = False  # True once set_limit() has been given the exchange's own value
        self._limit_lock = threading.Lock()  # held by the one caller that fetches the limit (learn_limit)
        self._clock = clock
        self._speed = speed
        self._offset_ms = 0
        self._shared = BudgetState()  # this process's copy of the state (of the file's, when shared)
        self._probe_timeout_ms = PROBE_TIMEOUT_MS
        self._cond = threading.Condition()
        self._file = StateFile(state_dir, name) if state_dir is not None else None
        self._stats = {
            "acquired_weight": 0,
            "requests": 0,
            "waits": 0,
            "waited_s": 0.0,
            "max_reported_used": 0,
            "responses_429": 0,
            "responses_418": 0,
        }

    # ---- the registry ------------------------------------------------------------------------------------------
    @classmethod
    def for_host(cls, host_or_url: str, state_dir: str | Path | None = None, **settings) -> WeightBudget:
        """The process-wide budget of ``host_or_url`` ('api.binance.com', '127.0.0.1:8765' or a URL), created
        with ``settings`` (the constructor's keywords) on first use.

        A later call returns the same budget when every setting it names has the value the budget was made with
        (settings it does not name are not compared), and raises ValueError naming the host and both values
        otherwise: one host has one budget per process, so a caller asking for, say, another ``urgent_reserve``
        would silently get the first one's. A setting the first caller did not name (it took the default: a plain
        ``BinanceRestClient(url)``) is taken from the first later caller that names it, where it can change in
        place (``ADOPTABLE``); from then on it is binding like the others.

        With ``state_dir`` the budget is shared, through ``<state_dir>/<host>.json``, with every process that names
        the same folder (a budget first made without one is shared from then on); without it, it is this
        process's own. One host cannot be shared through two folders in one process (ValueError)."""
        key = host_key(host_or_url)
        with cls._registry_lock:
            budget = cls._registry.get(key)
            if budget is None:
                budget = cls._registry[key] = cls(name=key, state_dir=state_dir, **settings)
                budget._named = set(settings)
                return budget
            budget._check_made_with(settings)
            if state_dir is not None:
                budget._share_through(state_dir)
            return budget

    @classmethod
    def forget(cls, host: str) -> None:
        """Drop ``host``'s budget from the registry (tests)."""
        with cls._registry_lock:
            cls._registry.pop(host_key(host), None)

    def _check_made_with(self, settings: dict) -> None:
        unknown = sorted(set(settings) - set(self._made_with))
        if unknown:
            raise TypeError(f"WeightBudget.for_host() got unexpected keyword arguments: {', '.join(unknown)}")
        for setting, value in settings.items():  # defaults nobody named yet: the first caller naming one sets it
            if setting not in self._named and setting in ADOPTABLE and self._made_with[setting] != value:
                WeightBudget(**{**self._made_with, setting: value})  # the constructor's validation
                setattr(self, ADOPTABLE[setting], value)
                self._made_with[setting] = value
            self._named.add(setting)
        differing = [
            f"{setting}={self._made_with[setting]!r}, not {value!r}"
            for setting, value in settings.items()
            if self._made_with[setting] != value
        ]
        if differing:
            raise ValueError(
                f"the weight budget of {self.name} already exists in this process with {'; '.join(differing)} "
                f"as asked: every caller of WeightBudget.for_host({self.name!r}) must ask for the same settings"
            )

    def _share_through(self, state_dir: str | Path) -> None:
        folder = Path(state_dir).expanduser().resolve()
        with self._cond:
            if self._file is None:
                self._file = StateFile(folder, self.name)
            elif self._file.folder != folder:
                raise ValueError(
                    f"the weight budget of {self.name} is already shared through {self._file.folder}; "
                    f"it cannot also be shared through {folder}"
                )

    # ---- configuration -----------------------------------------------------------------------------------------
    @property
    def limit(self) -> int:
        return self._limit

    @property
    def ceiling(self) -> int:
        """The most weight spent in one minute (by this process, or by all processes sharing the state file):
        share x limit."""
        return max(1, int(self._limit * self.share))

    def ceiling_for(self, urgent: bool) -> int:
        """An urgent caller (the live stream's repair) may spend the whole ceiling; the others leave
        ``urgent_reserve`` of it free, so a repair never waits for a backfill to give the minute back."""
        return self.ceiling if urgent else max(1, int(self.ceiling * (1 - self.urgent_reserve)))

    def set_limit(self, limit: int) -> None:
        with self._cond, self._synced():
            self._limit = limit
            self.limit_known = True
            self._cond.notify_all()

    def learn_limit(self, fetch: Callable[[], object]) -> None:
        """Unless the exchange's limit is known, call ``fetch`` (which asks the exchange and calls ``set_limit``),
        one caller at a time: of many callers starting at once one fetches, the others wait for it and do not
        fetch again once it has taught the limit."""
        if self.limit_known:
            return
        with self._limit_lock:
            if not self.limit_known:
                fetch()

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
    def acquire(self, weight: int, urgent: bool = False) -> int:
        """Wait until the current exchange minute has room for ``weight`` (below ``ceiling_for(urgent)``), charge it
        and return the exchange time of the charge (hand it to ``observe``). Raises ExchangeBanned while the IP is
        banned."""
        waited_from = None
        with self._cond:
            while True:
                with self._synced():
                    now = self.now_ms()
                    decision = self._shared.charge(
                        weight,
                        now,
                        self.ceiling_for(urgent),  # after the state is read: it may carry the limit
                        self.boundary_guard_ms,
                        self._probe_timeout_ms,
                    )
                    if isinstance(decision, Banned):
                        raise ExchangeBanned(decision.until_ms, self.name)
                    if isinstance(decision, Charged):
                        self._shared = decision.state
                        self._stats["acquired_weight"] += weight
                        self._stats["requests"] += 1
                        if waited_from is not None:
                            self._stats["waits"] += 1
                            self._stats["waited_s"] += (self.now_ms() - waited_from) / 1000
                        return now
                    wake = decision.until_ms
                if waited_from is None:
                    waited_from = now
                # Woken early by ban() / set_limit() / a probe's answer in this process; otherwise sleep until the
                # minute (or the pause) ends, re-reading a shared state every poll_s for what the others did.
                timeout = max(0.001, (wake - now + 1) / 1000 / self._speed)
                self._cond.wait(min(timeout, self.poll_s) if self._file is not None else timeout)

    def observe(self, used_weight: int | None, sent_ms: int) -> None:
        """Report how a request charged at exchange time ``sent_ms`` ended (anything but a 429: call ``pause``
        then): its ``X-MBX-USED-WEIGHT-1M`` (None when there was none, or no answer at all) resyncs the minute's
        count, applied only when the answer came back in the minute the request was sent in (otherwise the server
        may have counted it in either minute)."""
        with self._cond, self._synced():
            probe_was_pending = self._shared.probe_pending
            self._shared = self._shared.observed(used_weight, sent_ms, self.now_ms())
            if probe_was_pending and not self._shared.probe_pending:
                self._cond.notify_all()
            if used_weight is not None:
                self._stats["max_reported_used"] = max(self._stats["max_reported_used"], used_weight)

    def pause(self, retry_after_s: float, used_weight: int | None = None) -> None:
        """A 429 (with its ``X-MBX-USED-WEIGHT-1M``): nobody sends before ``retry_after_s`` seconds from now, and
        then one request goes first."""
        with self._cond, self._synced():
            self._stats["responses_429"] += 1
            if used_weight is not None:
                self._stats["max_reported_used"] = max(self._stats["max_reported_used"], used_weight)
            self._shared = self._shared.paused(self.now_ms(), int(retry_after_s * 1000))

    def ban(self, until_ms: int) -> int:
        """A 418: every acquire() raises ExchangeBanned until ``until_ms`` (exchange clock); waiting callers
        raise at once (in other processes sharing the state: within ``poll_s``). Returns when the ban ends (the
        later one, if a ban was already running)."""
        with self._cond, self._synced():
            self._stats["responses_418"] += 1
            self._shared = self._shared.banned(until_ms)
            self._cond.notify_all()
            return self._shared.banned_until_ms

    @property
    def banned_until_ms(self) -> int:
        with self._cond, self._synced():
            return self._shared.banned_until_ms

    def used(self) -> int:
        """Weight counted in the current exchange minute (by every process sharing the state)."""
        with self._cond, self._synced():
            return self._shared.used_at(self.now_ms())

    def view(self) -> BudgetView:
        """The shared state as it stands (of every process sharing it): the current minute's weight, the limit
        (the exchange's, once any process learnt it), when the last pause (429) and ban (418) end."""
        with self._cond, self._synced():
            state = self._shared
            return BudgetView(state.used_at(self.now_ms()), self._limit, state.paused_until_ms, state.banned_until_ms)

    def stats(self) -> dict:
        """Counters for logs and tests: weight acquired, requests, waits (count and seconds), the highest
        ``X-MBX-USED-WEIGHT-1M`` seen, and the 429 / 418 answers reported to this budget (all of this process);
        ``used``: the current minute's count (of every process sharing the state)."""
        with self._cond, self._synced():
            return dict(self._stats, limit=self._limit, ceiling=self.ceiling, used=self._shared.used_at(self.now_ms()))

    # ---- the shared state ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _synced(self) -> Iterator[None]:
        """Around a read or change of the budget's state (the caller holds ``_cond``): with a state file, lock it,
        merge what it holds into this budget's state (the file's limit too, unless this process learnt its own),
        and write the result back if the block changed anything (or the file needed repairing). Without one,
        nothing."""
        if self._file is None:
            yield
            return
        with self._file.locked(self.now_ms()) as stored:
            self._shared = self._shared.merged(stored.state, self.now_ms())
            if stored.limit and not self.limit_known:
                self._limit = stored.limit
            before = (self._shared, self._stored_limit())
            yield
            if stored.repair or (self._shared, self._stored_limit()) != before:
                self._file.write(self._shared, self._stored_limit(), self.now_ms())

    def _stored_limit(self) -> int | None:
        """The limit this process writes to the file: the exchange's, once learnt here."""
        return self._limit if self.limit_known else None

    def _after_fork(self) -> None:
        self._cond = threading.Condition()
        self._limit_lock = threading.Lock()
        if self._file is not None:
            self._file.after_fork()


def _reinit_after_fork() -> None:
    """In a forked child: fresh locks (a parent thread may have held one at the fork) and own file descriptors."""
    WeightBudget._registry_lock = threading.Lock()
    for budget in WeightBudget._registry.values():
        budget._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


def host_key(host_or_url: str) -> str:
    """'http://127.0.0.1:8765/x' -> '127.0.0.1:8765'; 'api.binance.com' stays as it is."""
    if "://" in host_or_url:
        return urlsplit(host_or_url).netloc.lower()
    return host_or_url.rstrip("/").lower()
