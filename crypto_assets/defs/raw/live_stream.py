"""`live_trades_stream`: the run that lives as long as it can, streaming every configured symbol's trades.

The op starts the capture process (``python -m crypto_assets.ingest.capture_process``: one WebSocket connection,
``BinanceStream`` -> ``LiveCapture`` -> lake, no Dagster imported, so it stays small) and records what it reports:
every minute proven complete, already written to the lake and checked, becomes the materialization of its
`raw_trades/<symbol>` partition with its ``minute_complete`` check result (source `stream`, or `stream+rest` for a
minute the capture process repaired over REST after a reconnect or a restart); a minute the stream cannot prove is
logged and left to the gap sensor. While the lake does not answer, proven minutes wait in the capture process's
spool on local disk (``CRYPTO_SPOOL_DIR``, at most ``CRYPTO_SPOOL_MAX_MB``) and are recorded here once written; the
run logs every minute what waits and why. If the capture process dies, the run fails (and the sensor starts another);
if the run ends or its process dies, the capture process stops with it. The capture process serves its Prometheus
metrics on ``CRYPTO_METRICS_HOST``:``CRYPTO_METRICS_PORT`` (shards sharing a host take the next free ports).

Stopping it (Ctrl-C or SIGTERM to ``dagster dev``, ``docker stop``, Terminate in the UI, ``dagster run terminate``)
ends the run CANCELED, not failed, with its capture process gone. An interrupt of the step process (Dagster's way
of stopping a run: the run worker forwards it) no longer raises in the middle of recording a minute: it is captured
(``dagster._utils.interrupts.capture_interrupts``), the capture process gets SIGTERM and reports the minutes it
decided up to then, which are recorded; then the run is reported canceling, as Dagster's own termination does
(``DagsterInstance.report_run_canceling``), and the interrupt ends the step: Dagster's run worker, finding the run
canceling, records RUN_CANCELED. The minute in progress is left to the gap sensor. Without this Dagster records an
interrupt nobody asked for through Dagster as "Execution was interrupted unexpectedly" (RUN_FAILURE).
Under ``dagster dev`` the op also watches the ``dagster dev`` process: a SIGTERM to ``dagster dev`` alone stops it
but not its code server, which keeps a run going until it ends (a stream never does), so once ``dagster dev`` is
gone the run terminates itself through the run launcher, like ``dagster run terminate`` (docs/adr/0003).

The keep-alive sensor (``keepalive.py``) tells each run its shard's symbols (``StreamConfig``) and tags it with them;
the run writes a heartbeat tag every ``HEARTBEAT_S`` seconds, by which the sensor restarts a run that died without
Dagster noticing. While the exchange is unreachable the stream backs off (up to 30 s between
attempts, at most 60 attempts per 5 minutes) and the run says so in its log; it does not exit.
"""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

import collections
import hashlib
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import msgspec
from dagster import Config, DagsterExecutionInterruptedError, DagsterRunStatus, Failure, OpExecutionContext, job, op
from dagster._utils.interrupts import capture_interrupts, check_captured_interrupt

from crypto_assets.defs.names import raw_trades_key
from crypto_assets.defs.raw.recording import minute_check, minute_materialization, record_materializations
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable, UnknownSymbol
from crypto_assets.ingest.capture_process import (
    ENVIRONMENT,
    CaptureConfig,
    LogLine,
    MinuteDecided,
    command,
    decode_message,
)
from crypto_assets.minutes import minute_key

STREAM_JOB = "live_trades_stream"
SYMBOLS_TAG = "crypto_assets/symbols"  # what the run streams (``symbols_tag``)
# On every stream run: "<index>/<count>" of its shard (a run launched by hand: the one shard "0/1"); the production
# run queue allows one run per value (deploy/dagster.yaml), and Dagster's run retries leave the stream alone (the
# keep-alive sensor replaces a dead stream run, with back-off).
SHARD_TAG = "crypto_assets/stream_shard"
STREAM_RUN_TAGS = {SHARD_TAG: "0/1", "dagster/max_retries": "0"}
HEARTBEAT_TAG = "crypto_assets/heartbeat"
HEARTBEAT_S = 15
RECORD_BATCH = 2000  # reports recorded together at most (a minute's end of every symbol of a shard)
STDERR_LINES = 40  # of the capture process, kept for the failure message
STOP_S = 10  # once asked to stop, the capture process has this long to report its last minutes and exit
WATCH_S = 0.5  # how often the op looks for an interrupt, and for its `dagster dev`
DEV_FLAG = b"DAGSTER_IS_DEV_CLI=1"  # `dagster dev` puts it in the environment of every process it starts


class StreamConfig(Config):
    """What one streaming run carries (the keep-alive sets both); empty ``symbols``: every symbol the universe
    streams now, as one shard (a run launched by hand)."""

    symbols: list[str] = []
    shard: str = "0/1"


def symbols_tag(symbols: list[str]) -> str:
    """The run's ``SYMBOLS_TAG``: the symbols themselves, or for many a count and a digest (tags stay small)."""
    text = ",".join(symbols)
    if len(symbols) <= 20:
        return text
    return f"{len(symbols)} symbols, {symbols[0]}..{symbols[-1]}, sha1 {hashlib.sha1(text.encode()).hexdigest()[:12]}"


@op(description="Streams its shard of the symbol universe's trades and records each minute proven complete.")
def stream_trades(
    context: OpExecutionContext, config: StreamConfig, exchange: ExchangeResource, lake: LakeResource
) -> None:
    stop_beating = threading.Event()  # beating from the start: the keep-alive sensor waits for the first beat
    threading.Thread(target=_heartbeat, args=(context, stop_beating), name="heartbeat", daemon=True).start()
    try:
        with capture_interrupts():  # SIGINT / SIGTERM stop the capture process instead of raising mid-record
            dev = _dagster_dev()
            if dev is not None:
                threading.Thread(
                    target=_watch_dagster_dev, args=(context, dev, stop_beating), name="dagster-dev-watch", daemon=True
                ).start()
            symbols = config.symbols or exchange.universe(lake.lake()).streamed()
            _stream(context, symbols, config.shard, exchange, lake)
        raise DagsterExecutionInterruptedError()  # _stream returns only once an interrupt stopped it
    except (DagsterExecutionInterruptedError, KeyboardInterrupt):
        with capture_interrupts():  # the run worker forwards the same stop: it must not cut this short
            _report_canceling(context)
        raise
    finally:
        stop_beating.set()


def spool_dir(folder: str, shard: str) -> str:
    """The shard's own spool folder (a spool is locked by one capture process): the folder itself for the one shard,
    ``<folder>/shard-<index>-of-<count>`` for each of several."""
    if shard == "0/1":
        return folder
    index, count = shard.split("/")
    return str(Path(folder) / f"shard-{index}-of-{count}")


def _stream(
    context: OpExecutionContext, symbols: list[str], shard: str, exchange: ExchangeResource, lake: LakeResource
) -> None:
    """The capture process, run until it exits on its own (a failure naming its exit code and stderr) or an
    interrupt stops it (returns once it has exited and everything it reported is recorded)."""
    if not symbols:
        raise Failure(description="no symbol to stream: the universe has no member (every symbol left or none listed)")
    _check_symbols(context, exchange, symbols)
    if check_captured_interrupt():
        return
    capture = subprocess.Popen(
        command(
            CaptureConfig(
                ws_url=exchange.ws_url,
                rest_url=exchange.rest_url,
                budget_dir=exchange.weight_budget_dir,
                symbols=symbols,
                lake_url=lake.url,
                endpoint_url=lake.endpoint_url,
                spool_dir=spool_dir(lake.spool_dir, shard),
                spool_max_mb=lake.spool_max_mb,
                symbols_per_connection=exchange.symbols_per_connection,
                metrics_host=exchange.metrics_host,
                metrics_port=exchange.metrics_port,
                shard=shard,
            )
        ),
        env={**os.environ, **ENVIRONMENT},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
    threading.Thread(target=_collect, args=(capture.stderr, stderr_tail), name="capture-stderr", daemon=True).start()
    done = threading.Event()
    threading.Thread(target=_stop_on_interrupt, args=(capture, done), name="capture-stop", daemon=True).start()
    try:
        # a thread drains its reports as they come, so the capture process never waits on this op's event writes
        # (at hundreds of symbols, a minute's end brings hundreds of minutes to record at once)
        reports: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        threading.Thread(target=_drain, args=(capture.stdout, reports), name="capture-stdout", daemon=True).start()
        ended = False
        while not ended:  # until it exits: on its own, or stopped by _stop_on_interrupt
            batch = [reports.get()]
            while not reports.empty() and len(batch) < RECORD_BATCH:
                batch.append(reports.get_nowait())
            ended = batch[-1] is None
            _record(context, [line for line in batch if line is not None])
        code = capture.wait()
        if check_captured_interrupt():
            context.log.info(
                f"stream stopped: the capture process (pid {capture.pid}) exited with code {code} and its last "
                f"decided minutes are recorded; the minute in progress is left to the gap backfill"
            )
            return
        raise Failure(
            description=f"the capture process (pid {capture.pid}) exited with code {code}; the end of "
            f"its stderr:\n" + "\n".join(stderr_tail)
        )
    finally:
        done.set()
        if capture.poll() is None:
            capture.terminate()
            try:
                capture.wait(10)
            except subprocess.TimeoutExpired:
                capture.kill()


def _drain(pipe, reports: queue.SimpleQueue) -> None:
    """Every line of the capture process's stdout into ``reports``, then None once it is closed."""
    try:
        for line in pipe:
            reports.put(line)
    finally:
        reports.put(None)


def _record(context: OpExecutionContext, lines: list[bytes]) -> None:
    """The capture process's messages into the run, in order: the good minutes' materializations as one batch (one
    multi-row write where the storage batches, ``recording.py``), each with its check evaluation; log lines."""
    messages = []
    for line in lines:
        try:
            messages.append(decode_message(line))
        except msgspec.DecodeError as exc:
            context.log.warning(f"unreadable line from the capture process ({exc}): {line[:300]!r}")
    good = [m for m in messages if isinstance(m, MinuteDecided) and m.result().ok]
    if good:
        record_materializations(context, [minute_materialization(raw_trades_key(m.symbol), m.result()) for m in good])
    for message in messages:
        if isinstance(message, MinuteDecided):
            result = message.result()
            if result.ok:
                context.log_event(minute_check(raw_trades_key(message.symbol), result))
            else:
                context.log.warning(
                    f"{message.symbol} {minute_key(result.minute_start_ms)} not recorded from the stream "
                    f"(the gap backfill will fetch it): {'; '.join(result.problems)}"
                )
        elif isinstance(message, LogLine):
            (context.log.warning if message.level == "WARNING" else context.log.info)(message.message)


def _collect(pipe, tail: collections.deque) -> None:
    for raw in pipe:
        tail.append(raw.decode(errors="replace").rstrip())


def _stop_on_interrupt(capture: subprocess.Popen, done: threading.Event) -> None:
    """Once the step process is interrupted (the interrupt is captured, not raised): SIGTERM to the capture process,
    which closes the stream and reports what it decided before exiting; killed if it takes over ``STOP_S``."""
    while not done.wait(WATCH_S):
        if check_captured_interrupt():
            if capture.poll() is None:
                capture.terminate()
            if not done.wait(STOP_S) and capture.poll() is None:
                capture.kill()
            return


def _report_canceling(context: OpExecutionContext) -> None:
    """The run, interrupted, is reported canceling (unless a termination already did): Dagster's run worker then ends
    it RUN_CANCELED instead of RUN_FAILURE ("Execution was interrupted unexpectedly")."""
    run = context.instance.get_run_by_id(context.run_id)
    if run is not None and run.status == DagsterRunStatus.STARTED:
        context.instance.report_run_canceling(
            run,
            "The stream was stopped (its process interrupted: `dagster dev` stopped, its container stopped, or the "
            "run terminated): the run ends canceled; the minute in progress is left to the gap backfill.",
        )


def _dagster_dev() -> tuple[int, bytes] | None:
    """The `dagster dev` this run runs under (its pid and start time, from /proc), or None: not under `dagster dev`
    (production), or not on Linux. `dagster dev` sets DAGSTER_IS_DEV_CLI=1 in the environment of all it starts (code
    server, run worker, this step process) but not in its own initial one: the first ancestor without it."""
    if os.environ.get("DAGSTER_IS_DEV_CLI") != "1":
        return None
    pid = os.getppid()
    try:
        while pid > 1:
            if DEV_FLAG not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return pid, _stat(pid)[19]
            pid = int(_stat(pid)[1])
    except (OSError, IndexError, ValueError):
        pass
    return None


def _stat(pid: int) -> list[bytes]:
    """/proc/<pid>/stat's fields after the command name: [state, ppid, ..., starttime at 19, ...]."""
    return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()


def _alive(pid: int, started: bytes) -> bool:
    try:
        return _stat(pid)[19] == started  # the same process, not a new one with its pid
    except (OSError, IndexError):
        return False


def _watch_dagster_dev(context: OpExecutionContext, dev: tuple[int, bytes], stop: threading.Event) -> None:
    """Once `dagster dev` is gone (SIGTERM or kill to it alone), the run is terminated as `dagster run terminate`
    does it (the run launcher marks it canceling and asks the code server to interrupt the run worker): the code
    server outlives `dagster dev` for as long as a run goes on, and a stream would go on for ever, unseen. If the
    launcher cannot, this step process interrupts itself (the run is canceling already: it ends canceled)."""
    while not stop.wait(WATCH_S):
        if check_captured_interrupt():
            return  # stopping already (Ctrl-C reaches the whole process group)
        if _alive(*dev):
            continue
        run = context.instance.get_run_by_id(context.run_id)
        if run is None or run.status != DagsterRunStatus.STARTED:
            return  # ending already
        context.log.warning(f"`dagster dev` (pid {dev[0]}) is gone: terminating this run (docs/adr/0003)")
        try:
            if context.instance.run_launcher.terminate(context.run_id):
                return
        except Exception as exc:  # noqa: BLE001 - an unreachable code server: the fallback below ends the run
            context.log.warning(f"the run launcher could not terminate the run ({exc}); interrupting the step")
        _report_canceling(context)
        os.kill(os.getpid(), signal.SIGINT)
        return


def _heartbeat(context: OpExecutionContext, stop: threading.Event) -> None:
    """Proof of life for the keep-alive sensor: the run's heartbeat tag, renewed while this process lives (also
    while the stream waits out a back-off)."""
    while not stop.is_set():
        try:
            context.instance.add_run_tags(context.run_id, {HEARTBEAT_TAG: str(int(time.time()))})
        except Exception as exc:  # noqa: BLE001 - a busy SQLite storage must not kill the stream: the next beat will do
            context.log.warning(f"heartbeat not written: {exc}")
        stop.wait(HEARTBEAT_S)


def _check_symbols(context: OpExecutionContext, exchange: ExchangeResource, symbols: list[str]) -> None:
    """Unknown symbols stop the run with their names; halted ones are streamed (their minutes are recorded empty),
    and an unreachable REST API does not stop it either (the stream backs off)."""
    try:
        with exchange.rest_client() as client:
            client.validate_symbols(symbols)
    except UnknownSymbol as exc:
        if exc.unknown:
            raise Failure(description=f"CRYPTO_SYMBOLS names symbols the exchange does not list: {exc}") from None
        context.log.warning(f"streaming symbols that do not trade now: {exc}")
    except (ExchangeUnreachable, ExchangeError) as exc:
        context.log.warning(f"could not check the symbols over REST ({exc}); streaming anyway")


@job(
    name=STREAM_JOB,
    description="The live trade stream: one long-lived run, kept alive by live_stream_keepalive.",
    tags=STREAM_RUN_TAGS,
)
def live_trades_stream():
    stream_trades()
