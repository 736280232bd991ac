"""Faults the tests inject: the state the REST API and the stream pump consult on every request and tick.

Faults on live connections (drop, half-open, serverShutdown) are actions on the stream hub; the rest is state
here. Everything is read and written on the simulator's event-loop thread (the Simulator marshals calls).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MALFORMED_KINDS = ("truncated", "not-json", "wrong-type", "missing-field", "binary")
BAD_VALUE_FIELDS = ("price", "qty")
ARCHIVE_KINDS = ("trades", "aggTrades", "klines")
ARCHIVE_PARTS = ("zip", "checksum")  # what a corrupted download of an archive file gets wrong
ARCHIVE_BREAKS = ("cut", "flip")  # how a published zip is broken: cut off halfway, or a byte of its data changed
# What the project's client parses as a decimal (crypto_assets.exchange.models.Decimal): a bad value must pass it,
# so that it reaches the lake, which is what the fault tests.
CLIENT_DECIMAL = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,18})?$")

_FOREVER = 2**62


@dataclass
class Faults:
    rest_error_status: int = 503
    rest_errors_left: int = 0  # the next N REST requests answer rest_error_status
    rest_errors_until_ms: int = 0  # ... or every REST request until then
    rest_latency_ms: int = 0
    storm_until_ms: int = 0  # 429 for every REST request until then
    storm_retry_after_s: int = 1
    stream_latency_ms: int = 0  # trades reach the stream this much after their trade time
    paused_until_ms: dict[str, int] = field(default_factory=dict)  # symbol -> stream silent until
    malformed_left: dict[str, list[str]] = field(default_factory=dict)  # symbol -> kinds of the next bad frames
    # symbol -> {trade id: (field, text)}: that trade carries this price or qty on the stream and over REST
    bad_values: dict[str, dict[int, tuple[str, str]]] = field(default_factory=dict)
    # The daily archive, keyed "SYMBOL/kind/YYYY-MM-DD" (held-back days: "SYMBOL/YYYY-MM-DD", "*" for every symbol):
    archive_truncated: dict[str, int] = field(default_factory=dict)  # -> ms of the day the file holds
    archive_corrupt: dict[str, dict[str, int]] = field(default_factory=dict)  # -> {part: downloads left corrupted}
    archive_unpublished: list[str] = field(default_factory=list)
    # -> how the published zip is broken ("cut" or "flip"), its CHECKSUM matching the broken bytes
    archive_broken: dict[str, str] = field(default_factory=dict)

    def take_rest_error(self, now_ms: int) -> int:
        """The injected 5xx status for this request, or 0."""
        if self.rest_errors_left > 0:
            self.rest_errors_left -= 1
            return self.rest_error_status
        if self.rest_errors_until_ms > now_ms:
            return self.rest_error_status
        return 0

    def storm_retry_after(self, now_ms: int) -> int:
        return self.storm_retry_after_s if self.storm_until_ms > now_ms else 0

    def is_paused(self, symbol: str, now_ms: int) -> bool:
        return self.paused_until_ms.get(symbol, 0) > now_ms

    def pause(self, symbol: str, now_ms: int, duration_s: float | None) -> None:
        self.paused_until_ms[symbol] = _FOREVER if duration_s is None else now_ms + int(duration_s * 1000)

    def resume(self, symbol: str) -> None:
        self.paused_until_ms.pop(symbol, None)

    def add_malformed(self, symbol: str, count: int, kind: str | None) -> None:
        if kind is not None and kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown malformed kind {kind!r}; expected one of {MALFORMED_KINDS}")
        kinds = [kind] * count if kind else [MALFORMED_KINDS[i % len(MALFORMED_KINDS)] for i in range(count)]
        self.malformed_left.setdefault(symbol, []).extend(kinds)

    def add_bad_value(self, symbol: str, trade_id: int, field_name: str, text: str) -> None:
        if field_name not in BAD_VALUE_FIELDS:
            raise ValueError(f"unknown bad-value field {field_name!r}; expected one of {BAD_VALUE_FIELDS}")
        if not CLIENT_DECIMAL.match(text):
            raise ValueError(
                f"bad value {text!r} must still look like a decimal (up to 20 digits, a point, up to "
                "18 decimals) so that the client accepts it"
            )
        self.bad_values.setdefault(symbol, {})[trade_id] = (field_name, text)

    # ---- the daily archive ------------------------------------------------------------------------------------------
    def truncate_archive(self, symbol: str, kind: str, day: str, until_ms_of_day: int) -> None:
        _check_kind(kind)
        if not 0 <= until_ms_of_day < 86_400_000:
            raise ValueError(f"a truncated day holds 0 to 24 hours, not {until_ms_of_day / 3_600_000} hours")
        self.archive_truncated[f"{symbol}/{kind}/{day}"] = until_ms_of_day

    def archive_truncated_ms(self, symbol: str, kind: str, day: str) -> int:
        """How much of the day (ms from its start) the file of ``kind`` holds: all of it unless truncated."""
        return self.archive_truncated.get(f"{symbol}/{kind}/{day}", 86_400_000)

    def corrupt_archive(self, symbol: str, kind: str, day: str, part: str, count: int) -> None:
        _check_kind(kind)
        if part not in ARCHIVE_PARTS:
            raise ValueError(f"unknown archive part {part!r}; expected one of {ARCHIVE_PARTS}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self.archive_corrupt.setdefault(f"{symbol}/{kind}/{day}", {})[part] = count

    def take_archive_corruption(self, symbol: str, kind: str, day: str, part: str) -> bool:
        """Whether this download of ``part`` of the file is a corrupted one (it counts as one of them)."""
        left = self.archive_corrupt.get(f"{symbol}/{kind}/{day}", {})
        if left.get(part, 0) <= 0:
            return False
        left[part] -= 1
        return True

    def break_archive(self, symbol: str, kind: str, day: str, how: str) -> None:
        _check_kind(kind)
        if how not in ARCHIVE_BREAKS:
            raise ValueError(f"unknown way to break a zip {how!r}; expected one of {ARCHIVE_BREAKS}")
        self.archive_broken[f"{symbol}/{kind}/{day}"] = how

    def archive_break(self, symbol: str, kind: str, day: str) -> str | None:
        """How the published zip of ``kind`` is broken ("cut" or "flip"), or None."""
        return self.archive_broken.get(f"{symbol}/{kind}/{day}")

    def hold_back_archive(self, symbol: str | None, day: str) -> None:
        key = f"{symbol or '*'}/{day}"
        if key not in self.archive_unpublished:
            self.archive_unpublished.append(key)

    def archive_held_back(self, symbol: str, day: str) -> bool:
        return f"{symbol}/{day}" in self.archive_unpublished or f"*/{day}" in self.archive_unpublished

    def reupload_archive(self, symbol: str | None, day: str) -> None:
        """The day's files as they should be: every archive fault of ``symbol`` (or of every symbol) on ``day`` ends."""
        for key in [k for k in self.archive_truncated if _archive_match(k, symbol, day)]:
            del self.archive_truncated[key]
        for key in [k for k in self.archive_corrupt if _archive_match(k, symbol, day)]:
            del self.archive_corrupt[key]
        for key in [k for k in self.archive_broken if _archive_match(k, symbol, day)]:
            del self.archive_broken[key]
        self.archive_unpublished[:] = [k for k in self.archive_unpublished if not _archive_match(k, symbol, day)]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _check_kind(kind: str) -> None:
    if kind not in ARCHIVE_KINDS:
        raise ValueError(f"unknown archive kind {kind!r}; expected one of {ARCHIVE_KINDS}")


def _archive_match(key: str, symbol: str | None, day: str) -> bool:
    parts = key.split("/")
    return parts[-1] == day and (symbol is None or parts[0] in (symbol, "*"))


def nine_decimals(true_text: str) -> str:
    """The default bad value: the true 8-decimal value with a ninth decimal, '95000.01000000' -> '95000.010000007'.
    No exchange sends it (Binance has 8 decimals) and no 8-decimal lake column can hold it exactly."""
    return true_text + "7"


def corrupt(payload: bytes, kind: str) -> tuple[bytes, bool]:
    """A malformed version of a trade payload, and whether it goes out as a binary frame."""
    if kind == "truncated":
        return payload[: len(payload) // 2], False
    if kind == "not-json":
        return b"<html><body>502 Bad Gateway</body></html>", False
    if kind == "wrong-type":
        return payload.replace(b'"t":', b'"t":"', 1).replace(b',"p":', b'","p":', 1), False
    if kind == "missing-field":
        start = payload.index(b'"p":')
        end = payload.index(b",", start)
        return payload[:start] + payload[end + 1 :], False
    if kind == "binary":
        return payload, True
    raise ValueError(f"unknown malformed kind {kind!r}")
