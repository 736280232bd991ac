"""The stream path into the lake: records from ``BinanceStream`` in, decided minutes out, complete ones written.

    capture = LiveCapture(lake, ["BTCUSDT", "ETHUSDT"])
    for record in stream.records():
        for minute in capture.feed(record):   # StoredMinute: WRITTEN and checked, or UNPROVEN with the reasons
            ...

Each complete minute (``MinuteAssembler``) is written to the lake with its trades' ``received_at``, read back and
checked against the stream's own closed kline (``verify_stored``), so the stream and the REST path leave the same
files and the same checks. A given-up minute is not written: the REST gap backfill fetches it. No Dagster imports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from crypto_assets.exchange.models import Connected, Disconnected, Kline, MalformedFrame, Trade
from crypto_assets.ingest.minute_assembler import DEFAULT_GRACE_MS, DecidedMinute, MinuteAssembler
from crypto_assets.ingest.stored_minutes import UNPROVEN, WRITTEN, StoredMinute, verify_stored
from crypto_assets.lake.store import Lake

HALF_OPEN_LOOKBACK_MS = 30_000  # a lost connection may have been silent this long before it was noticed


class LiveCapture:
    def __init__(self, lake: Lake, symbols: Sequence[str], *, grace_ms: int = DEFAULT_GRACE_MS,
                 clock: Callable[[], float] = time.time):
        self.lake = lake
        self.clock = clock
        self.assemblers = {symbol: MinuteAssembler(symbol, grace_ms) for symbol in symbols}

    def feed(self, record: object) -> list[tuple[str, StoredMinute]]:
        """Take one stream record; return the minutes decided since the last call, (symbol, stored or given up)."""
        if isinstance(record, Trade):
            assembler = self.assemblers.get(record.symbol)
            if assembler is not None:
                assembler.add_trade(record)
        elif isinstance(record, Kline):
            assembler = self.assemblers.get(record.symbol)
            if assembler is not None:
                assembler.add_kline(record)
        elif isinstance(record, Connected):
            for assembler in self.assemblers.values():
                assembler.connected(record.at)
        elif isinstance(record, Disconnected):
            for assembler in self.assemblers.values():
                assembler.disconnected(record.at, record.at - HALF_OPEN_LOOKBACK_MS)
        elif isinstance(record, MalformedFrame):
            targets = [self.assemblers[record.symbol]] if record.symbol in self.assemblers else \
                list(self.assemblers.values())  # no readable symbol: any of them may have lost a record
            for assembler in targets:
                assembler.malformed(record.at)
        return self.decide()

    def decide(self) -> list[tuple[str, StoredMinute]]:
        now_ms = int(self.clock() * 1000)
        out: list[tuple[str, StoredMinute]] = []
        for assembler in self.assemblers.values():
            for minute in assembler.decide(now_ms):
                out.append((minute.symbol, self._store(minute) if minute.complete else
                            StoredMinute(minute.minute_start_ms, UNPROVEN, reasons=tuple(minute.reasons))))
        return out

    def _store(self, minute: DecidedMinute) -> StoredMinute:
        self.lake.write_minute(minute.symbol, minute.minute_start_ms, minute.trades)
        written_at_ms = int(self.clock() * 1000)
        klines = {minute.minute_start_ms: minute.kline} if minute.kline is not None else {}
        stored = verify_stored(self.lake, minute.symbol, [minute.minute_start_ms], klines)[minute.minute_start_ms]
        return StoredMinute(minute.minute_start_ms, WRITTEN, stored.path, stored.summary, stored.checks,
                            written_at_ms=written_at_ms)
