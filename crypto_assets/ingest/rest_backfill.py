"""A range of whole minutes of one symbol's spot trades over REST, every minute with its completeness proof.

One continuous paging pass (``BinanceRestClient.trade_window``), so REST weight is spent once per 1000 trades, not
once per minute:
1. ``aggTrades`` (startTime/endTime, limit 1) finds the id of the range's first trade. By Binance's startTime
   semantics the trade before it happened before the range's start, so the first minute's start boundary is
   that id - 1.
2. ``historicalTrades`` pages by id from there until a trade at or after the range's end has been seen (it
   confirms the last minute's end boundary), or until the newest trade: a range reaching past the exchange's now
   leaves its unconfirmed minutes incomplete.
3. ``klines`` 1m (one call per <= 1000 minutes) gives each ended minute's trade count and volume; minutes that
   have not ended by the exchange's clock get no kline (an open kline proves nothing).
4. The trades are split into minutes and each minute gets its ``MinuteProof``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.exchange.rest import TradeWindow
from crypto_assets.ingest.completeness import MinuteProof, prove_minute
from crypto_assets.minutes import MINUTE_MS, check_whole_minutes, minute_key

KLINES_PER_CALL = 1000


class RestClient(Protocol):  # what fetch_minutes needs of crypto_assets.exchange.rest.BinanceRestClient
    def trade_window(self, symbol: str, start_ms: int, end_ms: int) -> TradeWindow: ...
    def klines(
        self, symbol: str, interval: str, start_time: int | None = None, end_time: int | None = None, limit: int = ...
    ) -> list[Kline]: ...
    def server_time(self) -> int: ...


@dataclass(frozen=True)
class MinuteBatch:
    """One minute's trades (ascending by id) and the proof that they are all of them (or why not)."""

    minute_start_ms: int
    trades: list[Trade]
    proof: MinuteProof

    @property
    def key(self) -> str:
        return minute_key(self.minute_start_ms)


def fetch_minutes(
    client: RestClient, symbol: str, start_ms: int, end_ms: int, klines: dict[int, Kline] | None = None
) -> list[MinuteBatch]:
    """Every minute of [start_ms, end_ms) (whole minutes) with its trades and proof, empty minutes included.
    ``klines``: the range's closed klines when the caller has them already (``closed_klines``)."""
    check_whole_minutes(start_ms, end_ms)
    window = client.trade_window(symbol, start_ms, end_ms)
    if klines is None:
        klines = closed_klines(client, symbol, start_ms, end_ms)
    return split_and_prove(
        start_ms,
        end_ms,
        window.trades,
        first_id=window.first_id,
        next_trade_id=window.next_trade.trade_id if window.next_trade else None,
        klines=klines,
    )


def closed_klines(client: RestClient, symbol: str, start_ms: int, end_ms: int) -> dict[int, Kline]:
    """The 1m klines of the minutes of [start_ms, end_ms) that had ended by the exchange's clock, by open time."""
    now = client.server_time()
    ended_end = min(end_ms, now - now % MINUTE_MS)  # minutes opening before this have closed
    out: dict[int, Kline] = {}
    for chunk_start in range(start_ms, ended_end, KLINES_PER_CALL * MINUTE_MS):
        chunk_end = min(chunk_start + KLINES_PER_CALL * MINUTE_MS, ended_end)
        for k in client.klines(symbol, "1m", start_time=chunk_start, end_time=chunk_end - 1, limit=KLINES_PER_CALL):
            if start_ms <= k.open_time < ended_end and k.open_time + MINUTE_MS <= now:
                out[k.open_time] = k
    return out


def split_and_prove(
    start_ms: int,
    end_ms: int,
    trades: Sequence[Trade],
    *,
    first_id: int | None,
    next_trade_id: int | None,
    klines: dict[int, Kline],
) -> list[MinuteBatch]:
    """Split ``trades`` (the range's trades from ``first_id`` on, ascending by id) into the minutes of
    [start_ms, end_ms) and prove each. ``next_trade_id``: the first trade at/after end_ms, when seen. A trade
    outside the range is kept in the first / last minute, where its proof names it."""
    starts = list(range(start_ms, end_ms, MINUTE_MS))
    groups: list[list[Trade]] = [[] for _ in starts]
    for trade in trades:
        index = min(max((trade.trade_time - start_ms) // MINUTE_MS, 0), len(starts) - 1)
        groups[index].append(trade)
    # the first trade at/after each minute's end: the next non-empty minute's first trade, else the range's next
    nexts: list[int | None] = [None] * len(starts)
    following = next_trade_id
    for i in range(len(starts) - 1, -1, -1):
        nexts[i] = following
        if groups[i]:
            following = groups[i][0].trade_id
    out: list[MinuteBatch] = []
    prev = first_id - 1 if first_id is not None else None
    for minute_start, group, nxt in zip(starts, groups, nexts):
        proof = prove_minute(minute_start, group, prev_trade_id=prev, next_trade_id=nxt, kline=klines.get(minute_start))
        out.append(MinuteBatch(minute_start, group, proof))
        if group:
            prev = group[-1].trade_id
    return out
