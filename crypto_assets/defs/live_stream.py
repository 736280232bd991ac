"""`live_trades_stream`: the run that lives as long as it can, streaming every configured symbol's trades.

One WebSocket connection (``BinanceStream``) feeds ``LiveCapture``; every minute proven complete is written to the
lake and recorded at once as the materialization of its `raw_trades/<symbol>` partition (source `stream`), with
its three check results. A minute the stream cannot prove is logged and left to the gap sensor.

The run tags itself with its symbols and writes a heartbeat tag every ``HEARTBEAT_S`` seconds: the keep-alive
sensor (``sensors.py``) uses them to restart a run that died without Dagster noticing, and one whose symbols are
no longer the configured ones. While the exchange is unreachable the stream backs off (up to 30 s between
attempts, at most 60 attempts per 5 minutes) and the run says so in its log; it does not exit.
"""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

import logging
import threading
import time

from dagster import Failure, OpExecutionContext, job, op

from crypto_assets.defs.raw_trades import minute_events, raw_trades_key
from crypto_assets.defs.resources import ExchangeResource, LakeResource
from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable, UnknownSymbol
from crypto_assets.exchange.models import Connected, Disconnected
from crypto_assets.exchange.stream import BinanceStream
from crypto_assets.ingest.live_capture import LiveCapture
from crypto_assets.ingest.minutes import minute_key

STREAM_JOB = "live_trades_stream"
SYMBOLS_TAG = "crypto_assets/symbols"
HEARTBEAT_TAG = "crypto_assets/heartbeat"
HEARTBEAT_S = 15


class _RunLogHandler(logging.Handler):
    """Forwards the stream client's log lines (connects, disconnects, back-off) into the run's log."""

    def __init__(self, context: OpExecutionContext):
        super().__init__(logging.INFO)
        self.context = context

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.context.log.warning(message)
        else:
            self.context.log.info(message)


@op(description="Streams every configured symbol's trades and records each minute proven complete.")
def stream_trades(context: OpExecutionContext, exchange: ExchangeResource, lake: LakeResource) -> None:
    symbols = list(exchange.symbols)
    _check_symbols(context, exchange, symbols)
    capture = LiveCapture(lake.lake(), symbols)
    stream = BinanceStream(exchange.ws_url, symbols)
    handler = _RunLogHandler(context)
    stream_log = logging.getLogger("crypto_assets.exchange.stream")
    stream_log.addHandler(handler)
    stop_beating = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(context, stop_beating), name="heartbeat", daemon=True)
    beat.start()
    try:
        context.log.info(f"streaming {', '.join(symbols)} from {stream.url}")
        for record in stream.records():
            if isinstance(record, Disconnected):
                context.log.warning(f"stream disconnected ({record.reason}); the minutes it touched are left to "
                                    f"the gap backfill")
            elif isinstance(record, Connected):
                context.log.info(f"stream connected: {record.url}")
            for symbol, outcome in capture.feed(record):
                if outcome.ok:
                    for event in minute_events(raw_trades_key(symbol), outcome):
                        context.log_event(event)
                else:
                    context.log.warning(f"{symbol} {minute_key(outcome.minute_start_ms)} not recorded from the "
                                        f"stream (the gap backfill will fetch it): {'; '.join(outcome.problems)}")
    finally:
        stop_beating.set()
        stream_log.removeHandler(handler)
        stream.close()


def _heartbeat(context: OpExecutionContext, stop: threading.Event) -> None:
    """Proof of life for the keep-alive sensor: the run's heartbeat tag, renewed while this process lives (also
    while the stream waits out a back-off)."""
    while not stop.is_set():
        try:
            context.instance.add_run_tags(context.run_id, {HEARTBEAT_TAG: str(int(time.time()))})
        except Exception as exc:  # a busy SQLite storage must not kill the stream: the next beat will do
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


@job(name=STREAM_JOB, description="The live trade stream: one long-lived run, kept alive by live_stream_keepalive.")
def live_trades_stream():
    stream_trades()
