"""Decided minutes waiting on local disk for a lake that does not answer: the stream's spool.

    spool = MinuteSpool("/var/lib/crypto/lake_spool", max_bytes=1024 * 2**20)
    spool.put(SpooledMinute("BTCUSDT", minute_start_ms, trades, kline, decided_at_ms))   # False when full
    while (entry := spool.oldest()) is not None:
        minute = spool.load(entry)      # None when the file was corrupt (it is set aside and logged)
        ... write minute to the lake ...
        spool.remove(entry)

One file per minute, ``<YYYYMMDDTHHMM>Z-<SYMBOL>.minute``, written atomically (temp file, fsync, rename, fsync of
the folder): 8 bytes of magic, the CRC-32 of the body (4 bytes, big-endian), the body as msgpack
(``SpooledMinute``: the trades and closed kline exactly as the stream delivered them, prices as Binance's decimal
strings, independent of the lake's own representation). Entries are served in the order they were put (after a
reopen: by minute, then symbol), so a symbol's minutes leave in time order. A file that cannot be read back is
moved to ``corrupt/`` and reported, never raised. The folder is locked (``flock``) while a spool has it open: one
capture process at a time. No Dagster imports.
"""

from __future__ import annotations

import collections
import datetime as dt
import fcntl
import logging
import os
import re
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from crypto_assets.exchange.endpoints import SYMBOL
from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.minutes import minute_key

log = logging.getLogger(__name__)

MAGIC = b"CAMINUT1"  # format version 1
SUFFIX = ".minute"
CORRUPT = "corrupt"  # subfolder for files set aside
LOCK_WAIT_S = 30.0  # how long a new spool waits for the previous capture process to let go of the folder
_NAME = re.compile(rf"^(\d{{8}}T\d{{4}})Z-({SYMBOL})\.minute$")


class SpooledMinute(msgspec.Struct, frozen=True):
    """A minute proven complete by the stream, as it will be written to the lake."""

    symbol: str
    minute_start_ms: int
    trades: list[Trade]
    kline: Kline | None
    decided_at_ms: int


@dataclass(frozen=True)
class SpoolEntry:
    symbol: str
    minute_start_ms: int
    path: Path
    size: int
    spooled_at_ms: int


class SpoolBusy(RuntimeError):
    """Another process holds the spool folder."""


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(SpooledMinute).decode


def file_name(symbol: str, minute_start_ms: int) -> str:
    at = dt.datetime.fromtimestamp(minute_start_ms // 1000, dt.UTC)
    return f"{at:%Y%m%dT%H%M}Z-{symbol}{SUFFIX}"


class MinuteSpool:
    """Decided minutes waiting for the lake, one file each under ``folder``, at most ``max_bytes`` of files.
    Safe to use from two threads (the capture loop puts, the drainer takes)."""

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int, *, lock_wait_s: float = LOCK_WAIT_S):
        self.folder = Path(folder).expanduser().absolute()
        self.max_bytes = max_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock(self.folder / ".lock", lock_wait_s)
        self._mutex = threading.Lock()
        self._entries: collections.deque[SpoolEntry] = collections.deque()
        self.bytes = 0
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)  # a write cut short by a crash: never renamed, never counted
            elif path.suffix == SUFFIX:
                entry = _entry(path)
                if entry is None:
                    self._set_aside(path, "its name is not <YYYYMMDDTHHMM>Z-<SYMBOL>.minute")
                else:
                    self._entries.append(entry)
                    self.bytes += entry.size

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"MinuteSpool({str(self.folder)!r}, {len(self)} minutes, {self.bytes} of {self.max_bytes} bytes)"

    def close(self) -> None:
        """Let go of the folder (another spool may open it)."""
        self._lock_file.close()

    def put(self, minute: SpooledMinute) -> bool:
        """Store ``minute`` behind the others; False (nothing stored) when it would pass ``max_bytes``."""
        body = _encode(minute)
        data = MAGIC + zlib.crc32(body).to_bytes(4, "big") + body
        with self._mutex:
            if self.bytes + len(data) > self.max_bytes:
                return False
            path = self.folder / file_name(minute.symbol, minute.minute_start_ms)
            for stale in [e for e in self._entries if e.path == path]:  # the same minute again: replaced
                self._entries.remove(stale)
                self.bytes -= stale.size
            _write_atomically(path, data)
            self._entries.append(
                SpoolEntry(minute.symbol, minute.minute_start_ms, path, len(data), int(time.time() * 1000))
            )
            self.bytes += len(data)
        return True

    def oldest(self) -> SpoolEntry | None:
        with self._mutex:
            return self._entries[0] if self._entries else None

    def load(self, entry: SpoolEntry) -> SpooledMinute | None:
        """The minute in ``entry``; None when its file is unreadable: then it is moved to ``corrupt/``, logged and
        no longer an entry (the gap backfill fetches the minute from the exchange)."""
        try:
            data = entry.path.read_bytes()
            if data[:8] != MAGIC:
                raise ValueError(f"it does not start with {MAGIC!r}")
            body = data[12:]
            if zlib.crc32(body) != int.from_bytes(data[8:12], "big"):
                raise ValueError("its CRC-32 does not match its content")
            minute = _decode(body)
            if (minute.symbol, minute.minute_start_ms) != (entry.symbol, entry.minute_start_ms):
                raise ValueError(f"it holds {minute.symbol} {minute_key(minute.minute_start_ms)}")
            return minute
        except (OSError, ValueError, msgspec.DecodeError) as exc:  # msgspec.ValidationError is a DecodeError
            self._set_aside(entry.path, str(exc))
            self.remove(entry)
            return None

    def remove(self, entry: SpoolEntry) -> None:
        """Forget ``entry`` and delete its file (once its minute is in the lake, or given up)."""
        with self._mutex:
            if entry in self._entries:
                self._entries.remove(entry)
                self.bytes -= entry.size
            entry.path.unlink(missing_ok=True)

    def waiting_since_ms(self) -> int | None:
        """When the oldest waiting minute was spooled (None: nothing waits)."""
        oldest = self.oldest()
        return oldest.spooled_at_ms if oldest else None

    def _set_aside(self, path: Path, why: str) -> None:
        target = self.folder / CORRUPT / path.name
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
            where = f"set aside as {target}"
        except OSError as exc:
            where = f"could not be set aside ({exc})"
        parsed = _NAME.match(path.name)
        minute = f"{parsed.group(2)} {parsed.group(1)}Z " if parsed else ""
        log.warning(f"spool file {path} is unreadable ({why}): {where}; the minute {minute}is left to the gap backfill")


def _entry(path: Path) -> SpoolEntry | None:
    parsed = _NAME.match(path.name)
    if parsed is None:
        return None
    at = dt.datetime.strptime(parsed.group(1), "%Y%m%dT%H%M").replace(tzinfo=dt.UTC)
    stat = path.stat()
    return SpoolEntry(parsed.group(2), int(at.timestamp()) * 1000, path, stat.st_size, int(stat.st_mtime * 1000))


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _lock(path: Path, wait_s: float):
    """An exclusive ``flock`` on ``path``, waiting up to ``wait_s`` for its holder; SpoolBusy after that."""
    f = open(path, "a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.monotonic() >= deadline:
                f.close()
                raise SpoolBusy(
                    f"the spool {path.parent} is in use by another process (still locked after {wait_s:.0f} s)"
                ) from None
            time.sleep(0.2)
