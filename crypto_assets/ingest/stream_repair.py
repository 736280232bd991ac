"""The stream's own repair: the trade ids a connection missed, fetched over REST right after it reconnects.

Trade ids are dense per symbol, so what a dropped, half-open or renewed connection (or a restarted capture process)
missed is exactly the ids after the last one held: ``MinuteAssembler.connected`` states it as a ``RepairRequest``.
``StreamRepairer`` fetches it on its own thread (the stream is read on without waiting), ``historicalTrades`` page
by page from that id until the pages reach the first trade the new connection delivered (or the newest trade),
plus the closed 1m klines of the minutes that ended unseen; the capture hands each ``Repair`` back to its
assembler, which proves the touched minutes as usual (their trades come from both, the minute's ``source`` says
``stream+rest``). Every request goes through the REST client's weight budget (shared with every other REST caller
of the machine), so repairs never push the deployment over Binance's limit. A hole larger than ``max_trades`` is
not repaired here (it would take the budget of minutes): its minutes are left to the gap backfill.
No Dagster imports.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.exchange.weight_budget import WeightBudget
from crypto_assets.ingest.minute_assembler import RepairRequest
from crypto_assets.ingest.rest_backfill import closed_klines
from crypto_assets.minutes import MINUTE_MS, floor_minute, minute_key, utc_text

log = logging.getLogger(__name__)

MAX_REPAIR_TRADES = 100_000  # 2,500 request weight: beyond that the gap backfill's runs do it


class RepairClient(Protocol):  # what the repair needs of crypto_assets.exchange.rest.BinanceRestClient
    budget: WeightBudget

    def first_trade_id(self, symbol: str, start_ms: int, end_ms: int) -> int | None: ...
    def historical_trades(self, symbol: str, from_id: int, limit: int = ...) -> list[Trade]: ...
    def klines(
        self, symbol: str, interval: str, start_time: int | None = None, end_time: int | None = None, limit: int = ...
    ) -> list[Kline]: ...
    def server_time(self) -> int: ...


@dataclass
class Repair:
    """The answer to one request: ``trades`` (ascending ids) and ``klines`` by open time, or ``error``."""

    request: RepairRequest
    trades: list[Trade] = field(default_factory=list)
    klines: dict[int, Kline] = field(default_factory=dict)
    first_id: int | None = None  # when request.from_id was unknown: the first trade id since from_minute_ms
    error: str | None = None


@dataclass
class RepairStats:
    repairs: int = 0
    failed: int = 0
    trades: int = 0


class StreamRepairer:
    """Fetches repairs on one background thread: ``submit`` a request with a way to read the first trade id the new
    connection delivered, collect the answers with ``done()``."""

    def __init__(self, client: RepairClient, max_trades: int = MAX_REPAIR_TRADES):
        self.client = client
        self.max_trades = max_trades
        self.stats = RepairStats()
        self._todo: queue.Queue = queue.Queue()
        self._done: queue.Queue[Repair] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="stream-repair", daemon=True)
        self._thread.start()

    def submit(self, request: RepairRequest, first_stream_id: Callable[[], int | None]) -> None:
        self._todo.put((request, first_stream_id))

    def done(self) -> list[Repair]:
        """The repairs answered since the last call."""
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self._todo.put(None)

    def _work(self) -> None:
        while (job := self._todo.get()) is not None:
            request, first_stream_id = job
            try:
                repair = fetch_repair(self.client, request, first_stream_id, self.max_trades)
            except Exception as exc:  # noqa: BLE001 - the exchange unreachable, banned, refusing: the minutes are given up
                repair = Repair(request, error=f"{type(exc).__name__}: {exc}")
            self.stats.repairs += 1
            if repair.error is not None:
                self.stats.failed += 1
                log.warning(
                    f"{request.symbol}: the repair of what the stream missed until "
                    f"{utc_text(request.connected_at)} failed, its minutes are left to the gap backfill: "
                    f"{repair.error}"
                )
            else:
                self.stats.trades += len(repair.trades)
                ids = f"ids {repair.trades[0].trade_id}..{repair.trades[-1].trade_id}" if repair.trades else "no id"
                log.info(
                    f"{request.symbol}: repaired over REST what the stream missed from "
                    f"{minute_key(request.from_minute_ms)} until {utc_text(request.connected_at)}: {ids} "
                    f"({len(repair.trades)} trade(s)), {len(repair.klines)} closed kline(s)"
                )
            self._done.put(repair)


def fetch_repair(
    client: RepairClient,
    request: RepairRequest,
    first_stream_id: Callable[[], int | None],
    max_trades: int = MAX_REPAIR_TRADES,
) -> Repair:
    """Fetch what ``request`` names: trades from its ``from_id`` (or from the first trade of its first minute) until
    a page reaches the first id the new connection delivered (``first_stream_id()``, read before each page) or the
    newest trade, and the closed klines of its minutes up to the reconnect."""
    symbol = request.symbol
    repair = Repair(request)
    from_id = request.from_id
    if from_id is None:  # the first trade since from_minute_ms (aggTrades answers windows of up to an hour)
        window_end = min(request.from_minute_ms + 60 * MINUTE_MS, floor_minute(request.connected_at) + MINUTE_MS)
        from_id = repair.first_id = client.first_trade_id(symbol, request.from_minute_ms, window_end)
    if from_id is not None:
        while True:
            page = client.historical_trades(symbol, from_id, 1000)
            repair.trades.extend(page)
            if len(repair.trades) > max_trades:
                return Repair(
                    request,
                    error=f"{len(repair.trades)}+ trades missed since id {request.from_id}: more "
                    f"than {max_trades} to repair from the stream",
                )
            reached = first_stream_id()
            if len(page) < 1000 or (reached is not None and page[-1].trade_id >= reached):
                break
            from_id = page[-1].trade_id + 1
    last_unseen = floor_minute(request.connected_at)  # the minute of the reconnect closes on the new connection
    if request.from_minute_ms < last_unseen:
        repair.klines = closed_klines(client, symbol, request.from_minute_ms, last_unseen)
    return repair
