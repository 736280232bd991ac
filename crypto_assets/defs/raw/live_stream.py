"""`live_trades_stream`: the run that lives as long as it can, streaming every configured symbol's trades.

The op starts the capture process (``python -m crypto_assets.ingest.capture_process``: one WebSocket connection,
``BinanceStream`` -> ``LiveCapture`` -> lake, no Dagster imported, so it stays small) and records what it reports:
every minute proven complete, already written to the lake and checked, becomes the materialization of its
`raw_trades/<symbol>` partition with its ``minute_complete`` check result (source `stream`, or `stream+rest` for a
minute the capture process repaired over REST after a reconnect or a restart); a minute the stream cannot prove is
logged and left to the gap sensor. While the lake does not answer, proven minutes wait in the capture process's
spool on local disk (``CRYPTO_SPOOL_DIR``, at most ``CRYPTO_SPOOL_MAX_MB``) and are recorded here once written; the
run logs every minute what waits and why. If the capture process dies, the run fails (and the sensor starts another);
if the run ends or its process dies, the capture process stops with it.

The run tags itself with its symbols and writes a heartbeat tag every ``HEARTBEAT_S`` seconds: the keep-alive
sensor (``sensors.py``) uses them to restart a run that died without Dagster noticing, and one whose symbols are
no longer the configured ones. While the exchange is unreachable the stream backs off (up to 30 s between
attempts, at most 60 attempts per 5 minutes) and the run says so in its log; it does not exit.
"""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

import collections
import os
import subprocess
import threading
import time

import msgspec
from dagster import Failure, OpExecutionContext, job, op

from crypto_assets.defs.names import raw_trades_key
from crypto_assets.defs.raw.recording import minute_check, minute_materialization, record_materializations
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable, UnknownSymbol
from crypto_assets.ingest.capture_process import ENVIRONMENT, LogLine, MinuteDecided, command, decode_message
from crypto_assets.minutes import minute_key

STREAM_JOB = "live_trades_stream"
SYMBOLS_TAG = "crypto_assets/symbols"
# On every stream run: the production run queue allows one run with this tag at a time (deploy/dagster.yaml), and
# Dagster's run retries leave the stream alone (the keep-alive sensor replaces a dead stream run, with back-off).
STREAM_TAG = "crypto_assets/live_stream"
STREAM_RUN_TAGS = {STREAM_TAG: "true", "dagster/max_retries": "0"}
HEARTBEAT_TAG = "crypto_assets/heartbeat"
HEARTBEAT_S = 15
STDERR_LINES = 40  # of the capture process, kept for the failure message


@op(description="Streams every configured symbol's trades and records each minute proven complete.")
def stream_trades(context: OpExecutionContext, exchange: ExchangeResource, lake: LakeResource) -> None:
    stop_beating = threading.Event()  # beating from the start: the keep-alive sensor waits for the first beat
    threading.Thread(target=_heartbeat, args=(context, stop_beating), name="heartbeat", daemon=True).start()
    try:
        _stream(context, exchange, lake)
    finally:
        stop_beating.set()


def _stream(context: OpExecutionContext, exchange: ExchangeResource, lake: LakeResource) -> None:
    """The capture process, run until it exits (a failure naming its exit code and stderr) or the run ends."""
    symbols = list(exchange.symbols)
    _check_symbols(context, exchange, symbols)
    capture = subprocess.Popen(
        command(
            exchange.ws_url,
            exchange.rest_url,
            exchange.weight_budget_dir,
            symbols,
            lake.url,
            lake.endpoint_url,
            lake.spool_dir,
            lake.spool_max_mb,
        ),
        env={**os.environ, **ENVIRONMENT},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
    threading.Thread(target=_collect, args=(capture.stderr, stderr_tail), name="capture-stderr", daemon=True).start()
    try:
        for line in capture.stdout:
            _record(context, line)
        code = capture.wait()
        raise Failure(
            description=f"the capture process (pid {capture.pid}) exited with code {code}; the end of "
            f"its stderr:\n" + "\n".join(stderr_tail)
        )
    finally:
        if capture.poll() is None:
            capture.terminate()
            try:
                capture.wait(10)
            except subprocess.TimeoutExpired:
                capture.kill()


def _record(context: OpExecutionContext, line: bytes) -> None:
    """One message of the capture process into the run: events for a decided minute, or a log line."""
    try:
        message = decode_message(line)
    except msgspec.DecodeError as exc:
        context.log.warning(f"unreadable line from the capture process ({exc}): {line[:300]!r}")
        return
    if isinstance(message, MinuteDecided):
        outcome = message.outcome
        if outcome.ok:
            key = raw_trades_key(message.symbol)
            record_materializations(context, [minute_materialization(key, outcome)])
            context.log_event(minute_check(key, outcome))
        else:
            context.log.warning(
                f"{message.symbol} {minute_key(outcome.minute_start_ms)} not recorded from the stream "
                f"(the gap backfill will fetch it): {'; '.join(outcome.problems)}"
            )
    elif isinstance(message, LogLine):
        (context.log.warning if message.level == "WARNING" else context.log.info)(message.message)


def _collect(pipe, tail: collections.deque) -> None:
    for raw in pipe:
        tail.append(raw.decode(errors="replace").rstrip())


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
    """Unknown symbols stop the run with their names; an unreachable REST API does not (the stream backs off)."""
    try:
        with exchange.rest_client() as client:
            client.validate_symbols(symbols)
    except UnknownSymbol as exc:
        raise Failure(description=f"CRYPTO_SYMBOLS names symbols the exchange does not trade: {exc}") from None
    except (ExchangeUnreachable, ExchangeError) as exc:
        context.log.warning(f"could not check the symbols over REST ({exc}); streaming anyway")


@job(
    name=STREAM_JOB,
    description="The live trade stream: one long-lived run, kept alive by live_stream_keepalive.",
    tags=STREAM_RUN_TAGS,
)
def live_trades_stream():
    stream_trades()
