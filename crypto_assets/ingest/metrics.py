"""The capture process's Prometheus metrics (the official ``prometheus_client``), on a registry of their own.

    metrics = CaptureMetrics()                   # every family below, registered on metrics.registry
    metrics.info("0/1", symbols=3)
    metrics.serve("127.0.0.1", 9464)             # GET /metrics; None (and a warning) when the port is taken
    stream = BinanceStream(url, symbols, metrics=metrics)       # trades, messages, reconnects, connections
    capture = LiveCapture(lake, symbols, metrics=metrics)       # minutes, latency, repairs, lake writes
    metrics.watch(budget=rest.budget, spool=spool)              # sampled at each scrape

What each family means is ``FAMILIES`` (the contract the alert rules and the dashboard are written against;
``METRIC_NAMES`` lists them). Labels are bounded: symbol, and small fixed sets (kind, source, reason, cause, status).

The hot path stays cheap: a trade costs one list update (``trade``: a count and the last price and time, about
0.1 µs), not prometheus_client calls (about 0.6 µs each, with a lock). The tallies are moved into the families when
they are collected (a scrape, or ``generate_latest``), together with the sampled values: the REST weight budget
(``WeightBudget.view()``: the machine's shared state, so it covers every process using it, backfill runs included)
and the spool's size. Everything else is rare (a minute, a reconnect, a repair) and goes straight to its family.

``crypto_rest_rate_limited_total`` counts the pauses (429) and bans (418) the shared budget began, whichever process
of the machine got the answer; several 429s between two scrapes that extend one pause count once.
No Dagster imports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
LAKE_WRITE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SOURCES = ("stream", "stream+rest", "rest")
GIVEN_UP_REASONS = ("unproven", "refused", "spool_full", "stuck")
RECONNECT_CAUSES = ("closed", "silent", "server_shutdown", "renewal", "error")
RATE_LIMIT_STATUSES = ("429", "418")

# name -> (type, labels, help): the contract the alert rules and the dashboard are written against
FAMILIES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "crypto_capture_info": ("gauge", ("shard", "symbols"), "Identity of the capture process (always 1)"),
    "crypto_capture_trades_received_total": ("counter", ("symbol",), "Trades read from the stream"),
    "crypto_capture_messages_received_total": ("counter", ("symbol", "kind"), "Stream messages by kind"),
    "crypto_capture_malformed_frames_total": ("counter", (), "Stream frames that did not parse"),
    "crypto_capture_minute_latency_seconds": (
        "histogram",
        (),
        "Minute end to the minute written to the lake and reported",
    ),
    "crypto_capture_minutes_recorded_total": ("counter", ("source",), "Minutes written and proven, by source"),
    "crypto_capture_minutes_given_up_total": ("counter", ("reason",), "Minutes left to the gap backfill, by reason"),
    "crypto_capture_reconnects_total": ("counter", ("cause",), "WebSocket connections re-opened, by cause"),
    "crypto_capture_connections": ("gauge", (), "WebSocket connections open now"),
    "crypto_capture_repairs_total": ("counter", (), "Repairs over REST after a reconnect or restart"),
    "crypto_capture_repaired_trades_total": ("counter", (), "Trades those repairs fetched"),
    "crypto_capture_spool_minutes": ("gauge", (), "Minutes waiting in the spool for the lake"),
    "crypto_capture_spool_bytes": ("gauge", (), "Bytes of the minutes waiting in the spool"),
    "crypto_lake_write_seconds": ("histogram", (), "One minute file written to the lake"),
    "crypto_lake_write_errors_total": ("counter", (), "Lake writes refused or unanswered"),
    "crypto_rest_weight_used": ("gauge", (), "REST weight used in the current minute (the machine's shared budget)"),
    "crypto_rest_weight_limit": ("gauge", (), "The exchange's REQUEST_WEIGHT per minute limit"),
    "crypto_rest_rate_limited_total": ("counter", ("status",), "REST back-off (429) and ban (418) answers"),
    "crypto_capture_last_trade_timestamp_seconds": ("gauge", ("symbol",), "Time of the last trade seen"),
    "crypto_capture_last_price": ("gauge", ("symbol",), "Price of the last trade seen (float, for dashboards)"),
}
METRIC_NAMES: tuple[str, ...] = tuple(FAMILIES)


class BudgetView(Protocol):  # what the metrics read of crypto_assets.exchange.weight_budget.WeightBudget.view()
    used: int
    limit: int
    paused_until_ms: int
    banned_until_ms: int


class SpoolSize(Protocol):  # crypto_assets.ingest.spool.MinuteSpool
    bytes: int

    def __len__(self) -> int: ...


class _Tally:
    """One symbol's counts since the start (written by the one thread reading its connection) and what the last
    flush moved into the families."""

    __slots__ = ("trades", "klines", "price", "time_ms", "flushed_trades", "flushed_klines", "children")

    def __init__(self, children):
        self.trades = self.klines = self.flushed_trades = self.flushed_klines = 0
        self.price: object = None
        self.time_ms = 0
        self.children = children  # (trades, messages kind=trade, messages kind=kline, last time, last price)


class CaptureMetrics:
    """Every family of ``FAMILIES`` on ``registry`` (a new ``CollectorRegistry`` unless given), and the methods the
    capture code calls. Thread-safe: the stream's readers, the capture loop, the spool's drainer and the HTTP
    server's scrapes may call at once."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        self._lock = threading.Lock()  # one flush at a time; tallies created under it
        self._tallies: dict[str, _Tally] = {}
        self._budget: Callable[[], BudgetView] | None = None
        self._spool: SpoolSize | None = None
        self._seen_pause_ms: int | None = None
        self._seen_ban_ms: int | None = None
        self.registry.register(_Refresh(self))  # first: the tallies and samples are current before anything is read
        r = self.registry
        self._info = Gauge("crypto_capture_info", _help("crypto_capture_info"), ["shard", "symbols"], registry=r)
        self._trades = _counter("crypto_capture_trades_received_total", r)
        self._messages = _counter("crypto_capture_messages_received_total", r)
        self._malformed = _counter("crypto_capture_malformed_frames_total", r)
        self._latency = Histogram(
            "crypto_capture_minute_latency_seconds",
            _help("crypto_capture_minute_latency_seconds"),
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        recorded = _counter("crypto_capture_minutes_recorded_total", r)
        self._recorded = {source: recorded.labels(source) for source in SOURCES}
        given_up = _counter("crypto_capture_minutes_given_up_total", r)
        self._given_up = {reason: given_up.labels(reason) for reason in GIVEN_UP_REASONS}
        reconnects = _counter("crypto_capture_reconnects_total", r)
        self._reconnects = {cause: reconnects.labels(cause) for cause in RECONNECT_CAUSES}
        self._connections = _gauge("crypto_capture_connections", r)
        self._repairs = _counter("crypto_capture_repairs_total", r)
        self._repaired_trades = _counter("crypto_capture_repaired_trades_total", r)
        self._spool_minutes = _gauge("crypto_capture_spool_minutes", r)
        self._spool_bytes = _gauge("crypto_capture_spool_bytes", r)
        self._lake_write = Histogram(
            "crypto_lake_write_seconds", _help("crypto_lake_write_seconds"), buckets=LAKE_WRITE_BUCKETS_S, registry=r
        )
        self._lake_errors = _counter("crypto_lake_write_errors_total", r)
        self._weight_used = _gauge("crypto_rest_weight_used", r)
        self._weight_limit = _gauge("crypto_rest_weight_limit", r)
        rate_limited = _counter("crypto_rest_rate_limited_total", r)
        self._rate_limited = {status: rate_limited.labels(status) for status in RATE_LIMIT_STATUSES}
        self._last_time = _gauge("crypto_capture_last_trade_timestamp_seconds", r)
        self._last_price = _gauge("crypto_capture_last_price", r)

    # ---- identity and what is sampled at each scrape -----------------------------------------------------------
    def info(self, shard: str, symbols: int) -> None:
        self._info.labels(shard, str(symbols)).set(1)

    def watch(self, *, budget: Callable[[], BudgetView] | None = None, spool: SpoolSize | None = None) -> None:
        """Sample these at each collection: ``budget`` (e.g. ``WeightBudget.view``) for the REST weight and its
        429 / 418, ``spool`` for its minutes and bytes."""
        self._budget, self._spool = budget, spool
        self.refresh()  # the pause and ban standing now are the baseline: only later ones count

    # ---- the stream ------------------------------------------------------------------------------------------------
    def tally(self, symbol: str) -> _Tally:
        """The symbol's tally: the stream keeps it and updates it per trade (``trade``)."""
        tally = self._tallies.get(symbol)
        if tally is None:
            with self._lock:
                tally = self._tallies.get(symbol)
                if tally is None:
                    tally = self._tallies[symbol] = _Tally(
                        (
                            self._trades.labels(symbol),
                            self._messages.labels(symbol, "trade"),
                            self._messages.labels(symbol, "kline"),
                            self._last_time.labels(symbol),
                            self._last_price.labels(symbol),
                        )
                    )
        return tally

    def trade(self, symbol: str, price: object, time_ms: int) -> None:
        """A trade read from the stream (its price as the record holds it: converted to float only when scraped)."""
        tally = self._tallies.get(symbol)
        if tally is None:
            tally = self.tally(symbol)
        tally.trades += 1
        tally.price = price
        tally.time_ms = time_ms

    def kline(self, symbol: str) -> None:
        """A closed kline read from the stream."""
        (self._tallies.get(symbol) or self.tally(symbol)).klines += 1

    def malformed(self) -> None:
        self._malformed.inc()

    def connected(self) -> None:
        self._connections.inc()

    def disconnected(self) -> None:
        self._connections.dec()

    def reconnected(self, cause: str) -> None:
        """A connection re-opened after it ended for ``cause`` (one of ``RECONNECT_CAUSES``)."""
        self._reconnects[cause if cause in self._reconnects else "error"].inc()

    # ---- minutes, repairs, the lake ------------------------------------------------------------------------------
    def minute_recorded(self, source: str, minute_start_ms: int, now_ms: int) -> None:
        """A minute written to the lake and proven, ``now_ms`` when it was decided (latency from its end)."""
        self._recorded[source if source in self._recorded else "stream"].inc()
        self._latency.observe(max(0.0, (now_ms - minute_start_ms - 60_000) / 1000))

    def minute_given_up(self, reason: str) -> None:
        """A minute left to the gap backfill, ``reason`` one of ``GIVEN_UP_REASONS``."""
        self._given_up[reason if reason in self._given_up else "unproven"].inc()

    def repaired(self, trades: int) -> None:
        """A repair over REST answered, with ``trades`` trades."""
        self._repairs.inc()
        self._repaired_trades.inc(trades)

    def lake_written(self, seconds: float) -> None:
        self._lake_write.observe(seconds)

    def lake_failed(self) -> None:
        self._lake_errors.inc()

    # ---- the HTTP endpoint -------------------------------------------------------------------------------------
    def serve(self, host: str, port: int, tries: int = 1):
        """Serve ``/metrics`` from a daemon thread on host:port, or, when that port is taken, on the next free one of
        ``tries`` ports from it (shards sharing a host, as under ``dagster dev``, take port, port + 1, ...; each in
        its own container or pod takes port itself). Returns the server, or None with a warning naming the ports
        when none can be bound (the capture goes on without metrics)."""
        error: OSError | None = None
        for candidate in range(port, min(port + max(tries, 1), 65536)):
            try:
                server, _thread = start_http_server(candidate, host, registry=self.registry)
            except OSError as exc:
                error = exc
                continue
            log.info(f"metrics served on http://{host}:{server.server_port}/metrics")
            return server
        ports = f"{port}" if tries <= 1 else f"{port}-{min(port + tries, 65536) - 1}"
        why = (error.strerror or str(error)) if error else "no port in range"
        log.warning(
            f"metrics are off: cannot serve them on {host}:{ports} ({why}); "
            f"the capture goes on without them (set CRYPTO_METRICS_PORT to a free port, or 0 to turn them off)"
        )
        return None

    # ---- collection ------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Move the tallies into their families and sample the budget and the spool (at each collection)."""
        with self._lock:
            for tally in self._tallies.values():
                trades, klines, price, time_ms = tally.trades, tally.klines, tally.price, tally.time_ms
                c_trades, c_trade_messages, c_klines, g_time, g_price = tally.children
                if trades > tally.flushed_trades:
                    c_trades.inc(trades - tally.flushed_trades)
                    c_trade_messages.inc(trades - tally.flushed_trades)
                    tally.flushed_trades = trades
                    g_time.set(time_ms / 1000)
                    g_price.set(float(price))
                if klines > tally.flushed_klines:
                    c_klines.inc(klines - tally.flushed_klines)
                    tally.flushed_klines = klines
            if self._spool is not None:
                self._spool_minutes.set(len(self._spool))
                self._spool_bytes.set(self._spool.bytes)
            if self._budget is not None:
                try:
                    view = self._budget()
                except Exception as exc:  # noqa: BLE001 - a scrape never fails on the budget: the last values stay
                    log.debug(f"the REST weight budget could not be read for the metrics: {exc}")
                    return
                self._weight_used.set(view.used)
                self._weight_limit.set(view.limit)
                self._count_new("429", view.paused_until_ms, "_seen_pause_ms")
                self._count_new("418", view.banned_until_ms, "_seen_ban_ms")

    def _count_new(self, status: str, until_ms: int, seen: str) -> None:
        """A pause / ban end later than the one seen last is a new one (the first value read is the baseline)."""
        before = getattr(self, seen)
        if before is not None and until_ms > before:
            self._rate_limited[status].inc()
        setattr(self, seen, until_ms if before is None else max(before, until_ms))


class _Refresh:
    """Registered first on the registry: each collection refreshes the tallies and samples; yields no family."""

    def __init__(self, metrics: CaptureMetrics):
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        self.metrics.refresh()
        return []


def _help(name: str) -> str:
    return FAMILIES[name][2]


def _counter(name: str, registry: CollectorRegistry):
    return Counter(name.removesuffix("_total"), _help(name), list(FAMILIES[name][1]), registry=registry)


def _gauge(name: str, registry: CollectorRegistry):
    return Gauge(name, _help(name), list(FAMILIES[name][1]), registry=registry)
