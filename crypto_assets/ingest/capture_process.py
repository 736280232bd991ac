"""The live capture as its own lean process: ``python -m crypto_assets.ingest.capture_process``.

It streams (``BinanceStream``), assembles and writes minutes (``LiveCapture``) and reports on stdout, one JSON
message per line:

    {"event": "minute", "symbol": "BTCUSDT", "outcome": {...StoredMinute...}}   a minute decided (stored or given up)
    {"event": "log", "level": "WARNING", "message": "..."}                      connects, disconnects, back-off
    {"event": "alive", "at": 1795...}                                           every ALIVE_S while records flow

It imports no Dagster: about 80 MB resident, where a process that loads the Dagster code location starts near 300 MB
(dagster, dagster-dbt, pyarrow, boto3...). The Dagster op that starts it (``defs/live_stream.py``) records what it
reports. It stops on SIGTERM, and when its parent goes away (its stdout breaks; on Linux also the parent-death
signal). Errors go to stderr with a non-zero exit. No Dagster imports.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

import msgspec

from crypto_assets.exchange.stream import BinanceStream
from crypto_assets.ingest.live_capture import LiveCapture
from crypto_assets.ingest.stored_minutes import StoredMinute
from crypto_assets.lake.store import lake_from_url

ALIVE_S = 5.0
# Memory: every minute ~60 s of trades are allocated and freed at once. With glibc's per-thread arenas capped, Arrow
# on the system allocator and freed heap handed back after each decided minute, the process stays near its live
# size (measured at 3 x 400 trades/s: ~150 MB flat instead of ~210 MB and growing; bench/stream_memory.py).
ENVIRONMENT = {"MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"}


class MinuteDecided(msgspec.Struct, tag_field="event", tag="minute"):
    symbol: str
    outcome: StoredMinute


class LogLine(msgspec.Struct, tag_field="event", tag="log"):
    level: str  # "INFO" or "WARNING"
    message: str


class Alive(msgspec.Struct, tag_field="event", tag="alive"):
    at: int


Message = MinuteDecided | LogLine | Alive
decode_message = msgspec.json.Decoder(Message).decode
_encode = msgspec.json.Encoder().encode


def command(ws_url: str, symbols: list[str], lake_url: str, endpoint_url: str | None) -> list[str]:
    """The command line that starts a capture process with this interpreter (start it with ``ENVIRONMENT`` added
    to the environment)."""
    args = [sys.executable, "-m", "crypto_assets.ingest.capture_process", "--ws-url", ws_url,
            "--symbols", ",".join(symbols), "--lake-url", lake_url]
    return args + (["--endpoint-url", endpoint_url] if endpoint_url else [])


class _Reporter(logging.Handler):
    def __init__(self, send):
        super().__init__(logging.INFO)
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        self.send(LogLine("WARNING" if record.levelno >= logging.WARNING else "INFO", record.getMessage()))


def run(ws_url: str, symbols: list[str], lake_url: str, endpoint_url: str | None) -> None:
    out = sys.stdout.buffer

    def send(message: Message) -> None:
        out.write(_encode(message) + b"\n")
        out.flush()

    stream = BinanceStream(ws_url, symbols)
    signal.signal(signal.SIGTERM, lambda *_: stream.close())
    stream_log = logging.getLogger("crypto_assets.exchange.stream")
    stream_log.setLevel(logging.INFO)  # connects are INFO lines; the root logger's default would drop them
    stream_log.addHandler(_Reporter(send))
    capture = LiveCapture(lake_from_url(lake_url, endpoint_url), symbols)
    release_freed_memory = _malloc_trim()
    send(LogLine("INFO", f"capture process streaming {', '.join(symbols)} from {stream.url}"))
    last_alive = 0.0
    for record in stream.records():  # connects and disconnects reach the run through the stream's own log lines
        decided = capture.feed(record)
        for symbol, outcome in decided:
            send(MinuteDecided(symbol, outcome))
        if decided:
            release_freed_memory()
        now = time.time()
        if now - last_alive >= ALIVE_S:
            send(Alive(int(now * 1000)))
            last_alive = now


def _malloc_trim():
    """glibc's ``malloc_trim(0)`` (hands freed heap pages back to the system), or a no-op elsewhere."""
    try:
        import ctypes

        trim = ctypes.CDLL("libc.so.6").malloc_trim
        return lambda: trim(0)
    except (OSError, AttributeError):
        return lambda: None


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies (kill -9 included)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the broken stdout stops it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stream trades into the lake, reporting each minute on stdout.")
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    parser.add_argument("--lake-url", required=True)
    parser.add_argument("--endpoint-url", default=None)
    args = parser.parse_args(argv)
    _die_with_parent()
    try:
        run(args.ws_url, args.symbols.split(","), args.lake_url, args.endpoint_url)
    except BrokenPipeError:  # the parent is gone
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
