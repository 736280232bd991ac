"""The weight budget's shared state file: ``<folder>/<host>.json``, read and written under an exclusive ``flock``.
The one place that opens, locks, reads and writes it; ``WeightBudget`` (``weight_budget.py``) uses it around each
operation of a budget shared through a folder.

The format (version 1; older and newer processes on one folder read and write the same):

    {"version": 1, "host": "api.binance.com", "updated_ms": <exchange ms>,
     "used": {"<exchange minute>": <weight>, ...}, "paused_until_ms": <ms>, "probe_pending": <bool>,
     "probe_sent_ms": <ms or null>, "banned_until_ms": <ms>, "limit": <the exchange's limit or null>}

A file that cannot be parsed (a process killed in the middle of a write, a hand edit) is treated as empty, and one
holding values that cannot be right now (a pause over a day or a ban over a week ahead, a probe sent in the future:
a file written under another clock) is read without them; either way with a warning naming the file, and the caller
rewrites it at once. ``state_from_doc`` and ``doc_from_state`` are the format, pure (no file needed to test them).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from crypto_assets.exchange.weight_state import BudgetState
from crypto_assets.minutes import MINUTE_MS

# A child of the budget's logger: the file's warnings are the budget's, for whoever configures its logging.
log = logging.getLogger("crypto_assets.exchange.weight_budget.state_file")

STATE_VERSION = 1
MAX_PAUSE_AHEAD_MS = 86_400_000  # a pause further ahead than a day is not a Retry-After: a stale file
MAX_BAN_AHEAD_MS = 7 * 86_400_000  # Binance bans for up to 3 days


@dataclass(frozen=True)
class Stored:
    """What a state file held: the shared state, the exchange's limit if a process learnt it (None: not known),
    and ``repair``: True when the file held something unusable and must be rewritten."""

    state: BudgetState
    limit: int | None = None
    repair: bool = False


class StateFile:
    """One budget's state file, opened once per process (reopened after a fork: a descriptor inherited from the
    parent shares the parent's lock). ``locked()`` holds the lock and reads the file whole; ``write`` (only
    inside it) replaces the content in place. The lock dies with its process, so a killed process never leaves
    the file locked."""

    def __init__(self, folder: str | Path, host: str):
        self.folder = Path(folder).expanduser().resolve()
        self.host = host
        self.path = self.folder / (re.sub(r"[^A-Za-z0-9._-]", "_", host) + ".json")
        self._fd: int | None = None
        self._pid = 0
        self._locked_fd: int | None = None

    def _open(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot open the shared weight budget file {self.path}: {exc.strerror}"
                ) from None
            self._pid = os.getpid()
        return self._fd

    @contextlib.contextmanager
    def locked(self, now_ms: int) -> Iterator[Stored]:
        """Hold the exclusive lock and yield what the file holds (empty for a new file). ``now_ms``: the exchange
        clock, to tell values that cannot be right."""
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._locked_fd = fd
        try:
            yield self._read(fd, now_ms)
        finally:
            self._locked_fd = None
            fcntl.flock(fd, fcntl.LOCK_UN)

    def write(self, state: BudgetState, limit: int | None, now_ms: int) -> None:
        """Replace the file's content (only inside ``locked()``)."""
        fd = self._locked_fd
        assert fd is not None, "write() only inside locked()"
        data = json.dumps(doc_from_state(state, self.host, limit, now_ms), separators=(",", ":")).encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    def _read(self, fd: int, now_ms: int) -> Stored:
        raw = b""
        while True:
            chunk = os.pread(fd, 65536, len(raw))
            if not chunk:
                break
            raw += chunk
        if not raw.strip():
            return Stored(BudgetState())  # a new file
        try:
            stored, problems = state_from_doc(json.loads(raw), now_ms)
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning(
                "the shared weight budget file %s is unreadable (%s: %r); treating it as empty and rewriting it",
                self.path,
                exc,
                raw[:80],
            )
            return Stored(BudgetState(), repair=True)
        for problem in problems:
            log.warning("the shared weight budget file %s holds %s", self.path, problem)
        return stored

    def after_fork(self) -> None:
        self._fd = None  # the inherited descriptor shares the parent's lock: open our own


def doc_from_state(state: BudgetState, host: str, limit: int | None, now_ms: int) -> dict:
    """The file's JSON document for ``state`` (``limit``: the exchange's limit, None when not learnt)."""
    return {
        "version": STATE_VERSION,
        "host": host,
        "updated_ms": now_ms,
        "used": {str(m): w for m, w in state.used},
        "paused_until_ms": state.paused_until_ms,
        "probe_pending": state.probe_pending,
        "probe_sent_ms": state.probe_sent_ms,
        "banned_until_ms": state.banned_until_ms,
        "limit": limit,
    }


def state_from_doc(doc: object, now_ms: int) -> tuple[Stored, list[str]]:
    """The state a file's JSON document holds, without the values that cannot be right at ``now_ms`` (they come
    from another clock or a broken write): (what was stored, with ``repair`` set if a value was dropped; a line per
    dropped value). Raises ValueError / TypeError / AttributeError for a document that is not a version 1 state."""
    if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
        raise ValueError(f"not a version {STATE_VERSION} state")
    used = {int(m): int(w) for m, w in (doc.get("used") or {}).items()}
    probe_sent_ms = int(doc["probe_sent_ms"]) if doc.get("probe_sent_ms") is not None else None
    limit = int(doc["limit"]) if doc.get("limit") else None
    problems = []
    until = {}
    for field, ahead, what in (
        ("paused_until_ms", MAX_PAUSE_AHEAD_MS, "pause"),
        ("banned_until_ms", MAX_BAN_AHEAD_MS, "ban"),
    ):
        value = int(doc.get(field) or 0)
        if value > now_ms + ahead:
            problems.append(
                f"{field}={value}, {(value - now_ms) / 86_400_000:.1f} days ahead: not a real {what}; ignoring it"
            )
            value = 0
        until[field] = value
    if probe_sent_ms is not None and probe_sent_ms > now_ms + MINUTE_MS:
        problems.append(f"a probe sent {(probe_sent_ms - now_ms) / 1000:.0f} s in the future; taking it as not sent")
        probe_sent_ms = None
    if limit is not None and limit <= 0:
        limit = None
    state = BudgetState(
        used=tuple(sorted(used.items())),
        paused_until_ms=until["paused_until_ms"],
        probe_pending=bool(doc.get("probe_pending")),
        probe_sent_ms=probe_sent_ms,
        banned_until_ms=until["banned_until_ms"],
    )
    return Stored(state, limit, repair=bool(problems)), problems
