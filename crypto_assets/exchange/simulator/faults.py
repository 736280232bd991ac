"""Faults the tests inject: the state the REST API and the stream pump consult on every request and tick.

Faults on live connections (drop, half-open, serverShutdown) are actions on the stream hub; the rest is state
here. Everything is read and written on the simulator's event-loop thread (the Simulator marshals calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MALFORMED_KINDS = ("truncated", "not-json", "wrong-type", "missing-field", "binary")

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

    def as_dict(self) -> dict:
        return dict(self.__dict__)


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
        return payload[:start] + payload[end + 1:], False
    if kind == "binary":
        return payload, True
    raise ValueError(f"unknown malformed kind {kind!r}")
