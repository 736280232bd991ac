"""Time, in one home: UTC minutes, hours and days as milliseconds since the epoch (every clock of the project is
in ms) and as the texts the project writes: minute partition keys (``%Y-%m-%d-%H:%M``), hour keys
(``%Y-%m-%d-%H:00``), days (``%Y-%m-%d``, as Binance's archive names them) and log times (``utc_text``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
KEY_FORMAT = "%Y-%m-%d-%H:%M"
HOUR_KEY_FORMAT = "%Y-%m-%d-%H:00"
DAY_FORMAT = "%Y-%m-%d"
_KEY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}:\d{2}$")


def minute_start_ms(key: str) -> int:
    """'2026-11-21-10:05' -> the minute's start in ms (UTC). A malformed key raises ValueError naming it."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(
            f"malformed minute partition key {key!r}: expected YYYY-MM-DD-HH:MM (UTC), e.g. '2026-11-21-10:05'"
        )
    try:
        moment = dt.datetime.strptime(key, KEY_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise ValueError(f"malformed minute partition key {key!r}: {exc}") from None
    return int(moment.timestamp()) * 1000


def minute_key(ms: int) -> str:
    """The key of the minute holding ``ms`` (ms since the epoch, UTC)."""
    return dt.datetime.fromtimestamp(floor_minute(ms) // 1000, dt.UTC).strftime(KEY_FORMAT)


def hour_key(ms: int) -> str:
    """The key of the hour holding ``ms``, e.g. '2026-11-21-10:00' (an hour partition)."""
    return dt.datetime.fromtimestamp(ms // HOUR_MS * HOUR_MS // 1000, dt.UTC).strftime(HOUR_KEY_FORMAT)


def day_text(ms: int) -> str:
    """The UTC day holding ``ms``, e.g. '2026-11-21'."""
    return dt.datetime.fromtimestamp(ms // DAY_MS * DAY_MS // 1000, dt.UTC).strftime(DAY_FORMAT)


def day_start_ms(day: str | dt.date) -> int:
    """'2025-01-02' (or a date) -> the day's first millisecond (UTC); ValueError for anything but a real date."""
    if isinstance(day, dt.date):
        day = day.strftime(DAY_FORMAT)
    if not isinstance(day, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", day):
        raise ValueError(f"day must be YYYY-MM-DD, got {day!r}")
    return int(dt.datetime.strptime(day, DAY_FORMAT).replace(tzinfo=dt.UTC).timestamp()) * 1000


def utc_text(ms: int) -> str:
    """1767225600000 -> '2026-01-01T00:00:00.000Z' (log lines and messages)."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def floor_minute(ms: int) -> int:
    """Start of the minute holding ``ms``."""
    return ms - ms % MINUTE_MS


def check_whole_minutes(start_ms: int, end_ms: int) -> None:
    """Raise ValueError unless [start_ms, end_ms) is a non-empty range of whole minutes."""
    if start_ms % MINUTE_MS or end_ms % MINUTE_MS:
        raise ValueError(
            f"[{start_ms}, {end_ms}) is not a range of whole minutes (both ends must be multiples of {MINUTE_MS} ms)"
        )
    if end_ms <= start_ms:
        raise ValueError(f"empty minute range [{minute_key(start_ms)}, {minute_key(end_ms)})")


def minute_starts(start_ms: int, end_ms: int) -> list[int]:
    """Starts of the minutes overlapping [start_ms, end_ms), ascending ([] when the range is empty)."""
    if end_ms <= start_ms:
        return []
    return list(range(floor_minute(start_ms), end_ms, MINUTE_MS))


def minute_keys(start_ms: int, end_ms: int) -> list[str]:
    """Keys of the minutes overlapping [start_ms, end_ms)."""
    return [minute_key(m) for m in minute_starts(start_ms, end_ms)]


def contiguous_ranges(starts: Sequence[int], max_minutes: int | None = None) -> list[tuple[int, int]]:
    """Ascending minute starts as [start, end) ranges of consecutive minutes, each at most ``max_minutes`` long
    (None: no limit)."""
    ranges: list[tuple[int, int]] = []
    for minute in starts:
        if (
            ranges
            and ranges[-1][1] == minute
            and (max_minutes is None or (minute - ranges[-1][0]) // MINUTE_MS < max_minutes)
        ):
            ranges[-1] = (ranges[-1][0], minute + MINUTE_MS)
        else:
            ranges.append((minute, minute + MINUTE_MS))
    return ranges
