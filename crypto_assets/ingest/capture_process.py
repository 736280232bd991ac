"""The live capture as its own lean process: ``python -m crypto_assets.ingest.capture_process``.

It streams (``BinanceStream``, at most ``symbols_per_connection`` symbols per WebSocket connection), assembles and
writes minutes (``LiveCapture``) and reports on stdout, one JSON message per line:

    {"event": "minute", "symbol": "BTCUSDT", "minute_start_ms": ..., "outcome": "written", ...}
                                                         a minute decided (stored or given up): ``MinuteDecided``
    {"event": "log", "level": "WARNING", "message": "..."}   connects, disconnects, back-off, spool
    {"event": "alive", "at": 1795...}                        every ALIVE_S while records flow

``MinuteDecided`` is the wire format of a decided minute, its own struct: what the op needs to record the minute
(outcome, path, summary, each rule's result, reasons, when it was written), converted from and back to the domain's
``MinuteResult`` (``MinuteDecided.of`` / ``.result()``), so either can change without the other.

A minute the lake cannot take now (``LakeError``) waits in the spool (``spool_dir``, at most ``spool_max_mb``;
see ``spool.py``); a thread retries it every ``RETRY_FIRST_S`` seconds, backing off to ``RETRY_MAX_S`` while the
lake keeps failing, and reports each drained minute like any other. While minutes wait it logs every ``STATUS_S``
how many, since when and why. A restarted process finds the spooled minutes and drains them first.

With ``metrics_port`` > 0 it serves its Prometheus metrics (``metrics.py``) on ``metrics_host:metrics_port``; a
port it cannot bind is a warning in the run's log and the capture goes on without metrics.

It imports no Dagster: about 80 MB resident, where a process that loads the Dagster code location starts near 300 MB
(dagster, dagster-dbt, pyarrow, boto3...). The Dagster op that starts it (``defs/raw/live_stream.py``) records what it
reports. It stops on SIGTERM or SIGINT (Ctrl-C), and when its parent goes away (its stdout breaks; on Linux also the
parent-death signal). Errors go to stderr with a non-zero exit. No Dagster imports.
"""

from __future__ import annotations

import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator

import msgspec
from prometheus_client import disable_created_metrics

from crypto_assets.backoff import Backoff
from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.exchange.stream import DEFAULT_SYMBOLS_PER_CONNECTION, BinanceStream
from crypto_assets.exchange.weight_budget import URGENT_RESERVE, WeightBudget
from crypto_assets.ingest.live_capture import SILENCE_TIMEOUT_S, LiveCapture
from crypto_assets.ingest.metrics import CaptureMetrics
from crypto_assets.ingest.minute_checks import CheckResult, MinuteSummary, Rule
from crypto_assets.ingest.spool import MinuteSpool, SpoolBusy
from crypto_assets.ingest.stored_minutes import MinuteResult, Outcome
from crypto_assets.ingest.stream_repair import StreamRepairer
from crypto_assets.lake.store import LakeError, lake_from_url

ALIVE_S = 5.0
RETRY_FIRST_S = 2.0  # the spool's drainer looks this often; after a failed retry it waits twice as long ...
RETRY_MAX_S = 15.0  # ... up to this
SPOOL_RETRY = Backoff(RETRY_FIRST_S, RETRY_MAX_S)
STATUS_S = 60.0  # while minutes wait in the spool, the log says so this often
DRAINER_STOP_S = 10.0  # at exit, how long the capture loop waits for the drainer to finish what it writes
# Memory: every minute ~60 s of trades are allocated and freed at once. With glibc's per-thread arenas capped, Arrow
# on the system allocator and freed heap handed back after each decided minute, the process stays near its live
# size (measured at 3 x 400 trades/s: ~150 MB flat instead of ~210 MB and growing; bench/stream_memory.py).
ENVIRONMENT = {"MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"}


class ReportedSummary(msgspec.Struct, frozen=True):
    """What a stored minute holds (``MinuteSummary`` without its minute, which the message carries)."""

    rows: int
    first_trade_id: int | None
    last_trade_id: int | None
    base_volume: str
    quote_volume: str
    source: str


class ReportedCheck(msgspec.Struct, frozen=True):
    """One rule's result (``CheckResult``)."""

    rule: Rule
    passed: bool
    description: str
    metadata: dict[str, int | str | None] = {}


class MinuteDecided(msgspec.Struct, tag_field="event", tag="minute", frozen=True):
    """A minute the capture process decided, on the wire. A stream minute comes from no archive and is never before
    its symbol's first trade: ``MinuteResult.archive`` and ``.note`` are not sent."""

    symbol: str
    minute_start_ms: int
    outcome: Outcome
    path: str | None = None
    summary: ReportedSummary | None = None
    checks: tuple[ReportedCheck, ...] = ()
    reasons: tuple[str, ...] = ()
    written_at_ms: int | None = None

    @classmethod
    def of(cls, symbol: str, result: MinuteResult) -> MinuteDecided:
        s = result.summary
        return cls(
            symbol,
            result.minute_start_ms,
            result.outcome,
            result.path,
            ReportedSummary(s.rows, s.first_trade_id, s.last_trade_id, s.base_volume, s.quote_volume, s.source)
            if s is not None
            else None,
            tuple(ReportedCheck(c.rule, c.passed, c.description, dict(c.metadata)) for c in result.checks),
            tuple(result.reasons),
            result.written_at_ms,
        )

    def result(self) -> MinuteResult:
        s = self.summary
        return MinuteResult(
            self.minute_start_ms,
            self.outcome,
            self.path,
            MinuteSummary(
                self.minute_start_ms, s.rows, s.first_trade_id, s.last_trade_id, s.base_volume, s.quote_volume, s.source
            )
            if s is not None
            else None,
            tuple(CheckResult(c.rule, c.passed, c.description, dict(c.metadata)) for c in self.checks),
            self.reasons,
            self.written_at_ms,
        )


class LogLine(msgspec.Struct, tag_field="event", tag="log"):
    level: str  # "INFO" or "WARNING"
    message: str


class Alive(msgspec.Struct, tag_field="event", tag="alive"):
    at: int


Message = MinuteDecided | LogLine | Alive
decode_message = msgspec.json.Decoder(Message).decode
encode_message = msgspec.json.Encoder().encode


class CaptureConfig(msgspec.Struct, frozen=True):
    """What a capture process streams and where it writes: passed to it as one JSON argument."""

    ws_url: str
    rest_url: str  # where the stream repairs what it missed
    budget_dir: str  # the REST weight budget shared with every other caller
    symbols: list[str]
    lake_url: str
    endpoint_url: str | None  # an S3-compatible endpoint for an s3:// lake
    spool_dir: str  # where decided minutes wait while the lake fails
    spool_max_mb: int  # the spool's bound
    symbols_per_connection: int = DEFAULT_SYMBOLS_PER_CONNECTION  # the stream's symbols per WebSocket connection
    metrics_host: str = "127.0.0.1"  # where the Prometheus metrics are served ...
    metrics_port: int = 0  # ... on this port (0: no metrics)
    shard: str = "0/1"  # which shard of the symbols this process streams ("<index>/<count>": crypto_capture_info)


def command(config: CaptureConfig) -> list[str]:
    """The command line that starts a capture process with this interpreter (start it with ``ENVIRONMENT`` added
    to the environment)."""
    return [sys.executable, "-m", "crypto_assets.ingest.capture_process", msgspec.json.encode(config).decode()]


class _Reporter(logging.Handler):
    def __init__(self, send):
        super().__init__(logging.INFO)
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        self.send(LogLine("WARNING" if record.levelno >= logging.WARNING else "INFO", record.getMessage()))


def run(config: CaptureConfig) -> None:
    symbols, rest_url = config.symbols, config.rest_url
    out = sys.stdout.buffer
    sending = threading.Lock()  # the capture loop and the spool's drainer both report

    def send(message: Message) -> None:
        with sending:
            out.write(encode_message(message) + b"\n")
            out.flush()

    lake = lake_from_url(config.lake_url, config.endpoint_url)
    for name in ("crypto_assets.exchange.stream", "crypto_assets.exchange.rest", "crypto_assets.ingest"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)  # connects are INFO lines; the root logger's default would drop them
        logger.addHandler(_Reporter(send))
    metrics = _serve_metrics(config)
    spool = MinuteSpool(config.spool_dir, config.spool_max_mb * 2**20)
    if len(spool):
        send(LogLine("INFO", f"{len(spool)} minute(s) found in the spool {spool.folder}: written first"))
    stream = BinanceStream(
        config.ws_url,
        symbols,
        silence_timeout_s=SILENCE_TIMEOUT_S,
        symbols_per_connection=config.symbols_per_connection,
        metrics=metrics,
    )
    # SIGINT as SIGTERM: Ctrl-C on `dagster dev` reaches this process with its whole process group; either way the
    # stream closes, the minutes decided so far are reported, and the process exits 0 (the minute in progress is
    # left to the gap backfill)
    signal.signal(signal.SIGTERM, lambda *_: stream.close())
    signal.signal(signal.SIGINT, lambda *_: stream.close())
    rest = BinanceRestClient(
        rest_url,
        urgent=True,
        budget=WeightBudget.for_host(rest_url, state_dir=config.budget_dir, urgent_reserve=URGENT_RESERVE),
    )
    if metrics is not None:
        metrics.watch(budget=rest.budget.view, spool=spool)
    capture = LiveCapture(lake, symbols, spool=spool, repairer=StreamRepairer(rest), metrics=metrics)
    capture.resume_from_lake()
    stopping = threading.Event()
    drainer = threading.Thread(target=_drain, args=(capture, send, stopping), name="spool-drainer", daemon=True)
    drainer.start()
    release_freed_memory = _malloc_trim()
    send(LogLine("INFO", f"capture process streaming {', '.join(symbols)} from {stream.url}"))
    last_alive = 0.0
    try:
        # read ahead in a thread: the socket is read (and each record timed) while minutes are written; connects and
        # disconnects reach the run through the stream's own log lines
        for record in _read_ahead(stream.records()):
            decided = capture.feed(record)
            for symbol, result in decided:
                send(MinuteDecided.of(symbol, result))
            if decided:
                release_freed_memory()
            now = time.time()
            if now - last_alive >= ALIVE_S:
                send(Alive(int(now * 1000)))
                last_alive = now
    finally:
        # The drainer must be done with stdout before the interpreter shuts down: a daemon thread holding stdout's
        # lock at exit aborts the process (SIGABRT) instead of a clean stop.
        stopping.set()
        drainer.join(DRAINER_STOP_S)


def _serve_metrics(config: CaptureConfig) -> CaptureMetrics | None:
    """The process's metrics, served on metrics_host:metrics_port; None when the port is 0 or cannot be bound
    (``CaptureMetrics.serve`` has then said why in the log: the capture goes on without them)."""
    if config.metrics_port <= 0:
        return None
    disable_created_metrics()  # no <counter>_created series: a second series per symbol that nobody queries
    metrics = CaptureMetrics()
    metrics.info(config.shard, len(config.symbols))
    shards = int(config.shard.split("/")[1])  # on one host, each shard's process takes the next free port
    if metrics.serve(config.metrics_host, config.metrics_port, tries=shards) is None:
        return None
    return metrics


def _read_ahead(records: Iterator[object]) -> Iterator[object]:
    """``records`` read by a thread of their own into a queue: at a minute's end the capture writes hundreds of
    minutes while the frames behind them keep being read and stamped with their arrival time (``LiveCapture``
    decides by that stream time, so a kline read late is not taken for a kline missing)."""
    pending: queue.SimpleQueue = queue.SimpleQueue()
    done = object()

    def read() -> None:
        try:
            for record in records:
                pending.put(record)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            pending.put(exc)
        pending.put(done)

    threading.Thread(target=read, name="stream-reader", daemon=True).start()
    while (item := pending.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _drain(capture: LiveCapture, send, stopping: threading.Event) -> None:
    """The spool's drainer: writes waiting minutes as soon as the lake answers, says what waits every STATUS_S.
    Returns once ``stopping`` is set."""
    delay, next_status, failures = 0.0, 0.0, 0
    while not stopping.wait(delay):
        try:
            for symbol, result in capture.drain_spool(stopping.is_set):
                send(MinuteDecided.of(symbol, result))
        except BrokenPipeError:
            return  # the parent is gone; the capture loop notices too
        except Exception as exc:  # noqa: BLE001 - never let the drainer die quietly: say why, retry later
            send(LogLine("WARNING", f"draining the spool failed ({type(exc).__name__}: {exc}); retrying"))
        status = capture.spool_status()
        if status is None:
            delay, next_status, failures = (
                RETRY_FIRST_S,
                0.0,
                0,
            )  # the next wait is reported at once, then every STATUS_S
            continue
        failures += 1  # the lake failed again: back off (4, 8, 15 s)
        delay = SPOOL_RETRY.delay_s(failures + 1)
        if time.monotonic() >= next_status:
            send(LogLine("WARNING", status))
            next_status = time.monotonic() + STATUS_S


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
    argv = sys.argv[1:] if argv is None else argv
    try:
        (config,) = [msgspec.json.decode(arg, type=CaptureConfig) for arg in argv]
    except (ValueError, msgspec.ValidationError) as exc:  # a wrong count of arguments, or not a CaptureConfig
        print(f"usage: capture_process '<CaptureConfig as JSON>' ({exc})", file=sys.stderr)
        return 2
    _die_with_parent()
    try:
        run(config)
    except BrokenPipeError:  # the parent is gone
        return 0
    except (SpoolBusy, LakeError, OSError, ValueError) as exc:  # e.g. the spool busy, a bad lake URL: one line
        print(f"capture process stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
