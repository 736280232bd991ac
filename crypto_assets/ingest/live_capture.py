"""The stream path into the lake: records from ``BinanceStream`` in, decided minutes out, complete ones written.

    capture = LiveCapture(lake, ["BTCUSDT", "ETHUSDT"], spool=MinuteSpool(folder, max_bytes),
                          repairer=StreamRepairer(rest_client))
    capture.resume_from_lake()                # after a restart: on from the last minute the lake holds
    for record in stream.records():
        for minute in capture.feed(record):   # MinuteResult: WRITTEN and checked, or UNPROVEN with the reasons
            ...
    capture.drain_spool()                     # from another thread, every few seconds: the minutes that waited

Each complete minute (``MinuteAssembler``) is written to the lake with its trades' ``received_at``, read back and
checked against the stream's own closed kline (``verify_stored``), so the stream and the REST path leave the same
files and the same checks. A minute's ``source`` comes from its trades (``stream``: all streamed, ``stream+rest``:
some repaired, ``rest``: all repaired); a minute without trades has none to tell (the file alone would say
``rest``), so the capture names what proved it empty: ``rest`` when its closed kline came from a repair (the stream
did not see the minute end), ``stream`` otherwise (the stream's own closed kline with n = 0, or, without a kline,
the ids the capture held running on across it). With a ``StreamRepairer`` (the capture process always has one) the
capture repairs its own holes: after every reconnect, and after a restart from the last minute the lake holds (up
to ``RESUME_MAX_MINUTES`` back), the ids it missed are fetched over REST and the touched minutes proven like any
other (``stream_repair.py``). The stream may use several connections: a ``Connected``, ``Disconnected`` or unreadable
``MalformedFrame`` concerns only the symbols of its connection (all when it names none), so a drop of one
connection repairs that connection's symbols and leaves the others streaming. A given-up minute is not written:
the REST gap backfill fetches it. Nothing a minute holds stops the capture:
- trades the lake refuses (``TradeValueError`` or another ValueError from the write): the minute is given up as
  ``REFUSED`` (``stored_minutes.refused``, as on the REST path), naming the symbol, minute, trade and value;
- a lake that does not answer (``LakeError``): the minute waits in the spool, and so does every later minute until
  the spool is empty again (a symbol's minutes reach the lake in order). ``drain_spool`` writes them oldest first,
  verified like any other, as soon as the lake answers. Without a spool, or with a full one, the minute is given up.
With ``metrics`` (``crypto_assets.ingest.metrics.CaptureMetrics``) it counts minutes recorded by source (with their
latency from the minute's end) and given up by reason, repairs and their trades, lake writes (time) and lake errors.
No Dagster imports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import pyarrow.compute as pc

from crypto_assets.exchange.models import Connected, Disconnected, Kline, MalformedFrame, Trade
from crypto_assets.ingest.metrics import CaptureMetrics
from crypto_assets.ingest.minute_assembler import (
    BLIND_WAIT_MS,
    DEFAULT_GRACE_MS,
    REPAIR_WAIT_MS,
    DecidedMinute,
    MinuteAssembler,
)
from crypto_assets.ingest.spool import MinuteSpool, SpooledMinute
from crypto_assets.ingest.stored_minutes import MinuteResult, Outcome, refused, verify_stored
from crypto_assets.ingest.stream_repair import StreamRepairer
from crypto_assets.lake.store import CorruptMinuteFile, Lake, LakeError
from crypto_assets.minutes import MINUTE_MS, floor_minute, minute_key, utc_text

log = logging.getLogger(__name__)

SILENCE_TIMEOUT_S = 6.0  # the stream's kline_1m pushes every ~2 s: three missed pushes means a half-open connection
# Decisions wait for the stream: a minute is decided by the time of the newest record read plus this slack, never by a
# wall clock that ran ahead while records waited to be consumed (a minute's end brings hundreds of lake writes at
# hundreds of symbols; the closed klines read after them must not come too late for their own minutes)
STREAM_SLACK_MS = 3_000
HALF_OPEN_LOOKBACK_MS = 10_000  # a lost connection may have been silent this long before it was noticed
RESUME_MAX_MINUTES = 30  # after a restart, a hole up to this old is repaired by the stream (older: gap backfill)


class LiveCapture:
    def __init__(
        self,
        lake: Lake,
        symbols: Sequence[str],
        *,
        spool: MinuteSpool | None = None,
        repairer: StreamRepairer | None = None,
        grace_ms: int = DEFAULT_GRACE_MS,
        repair_wait_ms: int = REPAIR_WAIT_MS,
        blind_wait_ms: int = BLIND_WAIT_MS,
        clock: Callable[[], float] = time.time,
        metrics: CaptureMetrics | None = None,
    ):
        self.lake = lake
        self.metrics = metrics
        self.spool = spool
        self.repairer = repairer
        self.clock = clock
        self.assemblers = {
            symbol: MinuteAssembler(
                symbol,
                grace_ms,
                repairs=repairer is not None,
                repair_wait_ms=repair_wait_ms,
                blind_wait_ms=blind_wait_ms,
            )
            for symbol in symbols
        }
        # symbol -> when its last trade or kline arrived (stream clock); a connection last heard at its symbols' latest
        self._last_heard_ms: dict[str, int] = {}
        self._stream_ms: int | None = None  # the newest record's time (stream clock): decisions never run ahead of it
        self.lake_error: str | None = None  # why minutes wait in the spool (the lake's last error), None: it answers

    def feed(self, record: object) -> list[tuple[str, MinuteResult]]:
        """Take one stream record; return the minutes decided since the last call, (symbol, stored or given up).
        ``Connected``, ``Disconnected`` and a ``MalformedFrame`` without a readable symbol concern only their
        connection's ``symbols`` (all symbols when they name none)."""
        at = getattr(record, "received_at", None) or getattr(record, "at", None)
        if at is not None and (self._stream_ms is None or at > self._stream_ms):
            self._stream_ms = at
        if isinstance(record, Trade):
            assembler = self.assemblers.get(record.symbol)
            if assembler is not None:
                self._last_heard_ms[record.symbol] = record.received_at
                assembler.add_trade(record)
        elif isinstance(record, Kline):
            assembler = self.assemblers.get(record.symbol)
            if assembler is not None:
                self._last_heard_ms[record.symbol] = record.received_at
                assembler.add_kline(record)
        elif isinstance(record, Connected):
            for assembler in self._of(record.symbols):
                request = assembler.connected(record.at)
                if request is not None and self.repairer is not None:
                    self.repairer.submit(request, lambda a=assembler: a.first_stream_id)
        elif isinstance(record, Disconnected):
            assemblers = self._of(record.symbols)
            # silent since the connection's last record heard (a half-open socket), or a little before the drop
            lost_since = record.at - HALF_OPEN_LOOKBACK_MS
            heard = [self._last_heard_ms[a.symbol] for a in assemblers if a.symbol in self._last_heard_ms]
            if heard:
                lost_since = min(lost_since, max(heard))
            for assembler in assemblers:
                assembler.disconnected(record.at, lost_since)
        elif isinstance(record, MalformedFrame):
            # no readable symbol: any of its connection's symbols may have lost a record
            targets = [self.assemblers[record.symbol]] if record.symbol in self.assemblers else self._of(record.symbols)
            for assembler in targets:
                assembler.malformed(record.at)
        return self.decide()

    def _of(self, symbols: tuple[str, ...]) -> list[MinuteAssembler]:
        """The assemblers of a connection's ``symbols`` (every assembler when it names none)."""
        if not symbols:
            return list(self.assemblers.values())
        return [self.assemblers[s] for s in symbols if s in self.assemblers]

    def resume_from_lake(self, max_minutes: int = RESUME_MAX_MINUTES) -> None:
        """Before streaming: each symbol goes on from the newest minute the lake holds within ``max_minutes`` (the
        repair fetches the ids after its last trade), so a restart loses nothing. A lake that does not answer, or
        a hole before a symbol's newest minute, leaves that symbol to start at its join minute."""
        now_minute = floor_minute(int(self.clock() * 1000))
        for symbol, assembler in self.assemblers.items():
            try:
                found = _last_recorded(self.lake, symbol, now_minute - max_minutes * MINUTE_MS, now_minute)
            except (LakeError, OSError) as exc:
                log.warning(f"{symbol}: the lake's last minute could not be read ({exc}): streaming from the join")
                continue
            if found is not None:
                minute, last_id = found
                assembler.resume(minute, last_id)
                log.info(
                    f"{symbol}: the lake holds up to {minute_key(minute)} (last trade id "
                    f"{'not found' if last_id is None else last_id}): the stream repairs from there"
                )

    def decide(self) -> list[tuple[str, MinuteResult]]:
        if self.repairer is not None:
            for repair in self.repairer.done():
                assembler = self.assemblers[repair.request.symbol]
                if repair.error is None:
                    assembler.repaired(repair.request, repair.trades, repair.klines, repair.first_id)
                    if self.metrics is not None:
                        self.metrics.repaired(len(repair.trades))
                else:
                    assembler.repair_failed(repair.request, repair.error)
        now_ms = int(self.clock() * 1000)
        if self._stream_ms is not None:  # behind the stream's newest record: what waits unread is not missing
            now_ms = min(now_ms, self._stream_ms + STREAM_SLACK_MS)
        out: list[tuple[str, MinuteResult]] = []
        for assembler in self.assemblers.values():
            for minute in assembler.decide(now_ms):
                if not minute.complete:
                    unproven = MinuteResult(minute.minute_start_ms, Outcome.UNPROVEN, reasons=tuple(minute.reasons))
                    out.append((minute.symbol, self._given_up(unproven, "unproven")))
                elif (stored := self._store(minute, now_ms)) is not None:
                    out.append((minute.symbol, stored))
        return out

    def drain_spool(self, should_stop: Callable[[], bool] = lambda: False) -> Iterator[tuple[str, MinuteResult]]:
        """Write the spooled minutes oldest first, each verified, until the spool is empty, the lake fails again
        (the rest wait for the next call) or ``should_stop()``. Yields each minute as it is decided (written, or
        given up), so a caller reports it at once."""
        drained, drained_since = 0, self.spool.waiting_since_ms() if self.spool is not None else None
        while self.spool is not None and not should_stop() and (entry := self.spool.oldest()) is not None:
            minute = self.spool.load(entry)
            if minute is None:
                continue  # corrupt: set aside and reported by the spool
            try:
                stored = self._write(minute.symbol, minute.minute_start_ms, minute.trades, minute.kline)
            except CorruptMinuteFile as exc:
                stored = self._given_up(_stuck(minute.symbol, minute.minute_start_ms, exc), "stuck")
            except LakeError as exc:
                self._lake_failed(exc)
                return
            except ValueError as exc:  # TradeValueError included
                stored = self._given_up(refused(minute.symbol, minute.minute_start_ms, exc), "refused")
            self.spool.remove(entry)
            drained += 1
            self.lake_error = None  # the lake answered
            yield minute.symbol, stored
        if drained and drained_since is not None and self.spool is not None and not len(self.spool):
            log.info(
                f"the lake answers: {drained} spooled minute(s) drained, the spool is empty (minutes had "
                f"waited since {utc_text(drained_since)})"
            )

    def spool_status(self) -> str | None:
        """What waits in the spool, since when and why, for the run's log; None when nothing waits."""
        oldest = self.spool.oldest() if self.spool is not None else None
        if oldest is None:
            return None
        why = self.lake_error or "not retried yet since the capture process started"
        return (
            f"{len(self.spool)} minute(s) wait in the spool {self.spool.folder} for the lake "
            f"({self.spool.bytes / 2**20:.1f} of {self.spool.max_bytes / 2**20:.0f} MB), the oldest "
            f"{oldest.symbol} {minute_key(oldest.minute_start_ms)}, waiting since "
            f"{utc_text(oldest.spooled_at_ms)}: {why}"
        )

    def _store(self, minute: DecidedMinute, now_ms: int) -> MinuteResult | None:
        """Write and verify a complete minute; None when it went to the spool instead (reported once drained)."""
        if self.spool is not None and len(self.spool):
            return self._spool(minute, now_ms)  # behind the minutes already waiting
        try:
            stored = self._write(minute.symbol, minute.minute_start_ms, minute.trades, minute.kline)
        except CorruptMinuteFile as exc:
            return self._given_up(_stuck(minute.symbol, minute.minute_start_ms, exc), "stuck")
        except LakeError as exc:
            self._lake_failed(exc)
            return self._spool(minute, now_ms)
        except ValueError as exc:  # TradeValueError included
            return self._given_up(refused(minute.symbol, minute.minute_start_ms, exc), "refused")
        if self.lake_error is not None:  # without a spool: minutes were given up until now
            log.info(f"the lake answers again ({minute.symbol} {minute.key} written)")
            self.lake_error = None
        return stored

    def _write(self, symbol: str, minute_start_ms: int, trades: list[Trade], kline: Kline | None) -> MinuteResult:
        metrics = self.metrics
        started = time.perf_counter()
        try:
            self.lake.write_minute(symbol, minute_start_ms, trades)
        except LakeError:
            if metrics is not None:
                metrics.lake_failed()
            raise
        if metrics is not None:
            metrics.lake_written(time.perf_counter() - started)
        written_at_ms = int(self.clock() * 1000)
        klines = {minute_start_ms: kline} if kline is not None else {}
        stored = verify_stored(self.lake, symbol, [minute_start_ms], klines)[minute_start_ms]
        if stored.outcome == Outcome.MISSING:  # written, yet not there when read back
            return self._given_up(stored, "unproven")
        summary = stored.summary
        if summary is not None and not summary.rows:  # the file alone says "rest": no trade carries received_at
            summary = replace(summary, source=_empty_minute_source(kline))
        if metrics is not None:
            source = summary.source if summary is not None else "stream"
            metrics.minute_recorded(source, minute_start_ms, int(self.clock() * 1000))
        return MinuteResult(
            minute_start_ms, Outcome.WRITTEN, stored.path, summary, stored.checks, written_at_ms=written_at_ms
        )

    def _spool(self, minute: DecidedMinute, now_ms: int) -> MinuteResult | None:
        if self.spool is None:
            where = "there is no spool"
        else:
            try:
                if self.spool.put(
                    SpooledMinute(minute.symbol, minute.minute_start_ms, minute.trades, minute.kline, now_ms)
                ):
                    return None
                where = (
                    f"the spool {self.spool.folder} is full ({len(self.spool)} minutes, "
                    f"{self.spool.bytes / 2**20:.1f} of {self.spool.max_bytes / 2**20:.0f} MB)"
                )
            except OSError as exc:
                where = f"the spool {self.spool.folder} cannot store it ({exc})"
        given_up = MinuteResult(
            minute.minute_start_ms,
            Outcome.UNPROVEN,
            reasons=(
                f"{minute.symbol} {minute.key}: proven complete but not written: the lake does not answer "
                f"({self.lake_error or 'minutes wait from before a restart'}) and {where}",
            ),
        )
        return self._given_up(given_up, "spool_full")

    def _given_up(self, result: MinuteResult, reason: str) -> MinuteResult:
        """``result``, a minute left to the gap backfill, counted by ``reason`` (``metrics.GIVEN_UP_REASONS``)."""
        if self.metrics is not None:
            self.metrics.minute_given_up(reason)
        return result

    def _lake_failed(self, exc: LakeError) -> None:
        if self.lake_error is None:
            waiting = (
                f"decided minutes wait in the spool {self.spool.folder}"
                if self.spool is not None
                else "decided minutes are given up (no spool)"
            )
            log.warning(f"the lake does not answer ({exc}): {waiting} until it does")
        self.lake_error = str(exc)


def _last_recorded(lake: Lake, symbol: str, since_ms: int, before_ms: int) -> tuple[int, int | None] | None:
    """The newest minute of ``symbol`` in the lake in [since_ms, before_ms), and the last trade id up to it, found
    walking back over the stored empty minutes before it (None when a missing minute or the window's start comes
    first). None when no minute is stored."""
    newest = next((m for m in range(before_ms - MINUTE_MS, since_ms - 1, -MINUTE_MS) if lake.exists(symbol, m)), None)
    if newest is None:
        return None
    for minute in range(newest, since_ms - 1, -MINUTE_MS):
        table = lake.read_minute(symbol, minute)
        if table is None:
            break
        if table.num_rows:
            return newest, int(pc.max(table.column("trade_id")).as_py())
    return newest, None


def _empty_minute_source(kline: Kline | None) -> str:
    """The source of a minute the capture proved empty: ``rest`` when its closed kline came from a repair (REST
    klines carry no ``received_at``), ``stream`` when the stream delivered it, or when there is none (the ids the
    capture held run on across the minute)."""
    return "rest" if kline is not None and kline.received_at is None else "stream"


def _stuck(symbol: str, minute_start_ms: int, error: CorruptMinuteFile) -> MinuteResult:
    """A minute whose file in the lake is unreadable: not written (a merge would need it), given up with the file
    named, while the lake itself answers. Nothing waits behind it."""
    return MinuteResult(
        minute_start_ms,
        Outcome.NOT_STORED,
        reasons=(
            f"{symbol} {minute_key(minute_start_ms)}: not written, its file in the lake is unreadable "
            f"(repair or remove it): {error}",
        ),
    )
