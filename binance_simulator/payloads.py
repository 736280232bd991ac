"""Binance's JSON payloads, byte for byte in Binance's field order, one encoder per message type.

Stream payloads are built with bytes %-formatting rather than ``json.dumps``: the stream must push more than
100k trades a second from one Python process, and these templates are about five times faster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from binance_simulator.market import UNITS, AggTrades, Kline, Trades, units_to_decimal

TRADE_SHAPES = ("current", "pre-2024", "without-M")

_TRADE = b'{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%d.%08d","q":"%d.%08d","T":%d,"m":%s,"M":true}'
_TRADE_PRE_2024 = (
    b'{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%d.%08d","q":"%d.%08d","b":%d,"a":%d,"T":%d,"m":%s,"M":true}'
)
_TRADE_WITHOUT_M = b'{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%d.%08d","q":"%d.%08d","T":%d,"m":%s}'
_AGG_TRADE = b'{"e":"aggTrade","E":%d,"s":"%s","a":%d,"p":"%d.%08d","q":"%d.%08d","f":%d,"l":%d,"T":%d,"m":%s,"M":true}'
_BOOL = {True: b"true", False: b"false"}
STREAM_KEYS = {"price": "p", "qty": "q"}  # a trade's fields as the @trade stream names them
REST_KEYS = {"price": "price", "qty": "qty"}  # ... and as trades / historicalTrades name them


def trade_events(symbol: str, trades: Trades, event_time: int, shape: str = "current") -> Iterator[bytes]:
    """``<symbol>@trade`` payloads. ``shape`` picks the current trade shape, the pre-2024 one (with buyer and
    seller order ids ``b``/``a``) or one without the ``M`` field."""
    sym = symbol.encode()
    ids, times = trades.id.tolist(), trades.time.tolist()
    prices, qtys, makers = trades.price.tolist(), trades.qty.tolist(), trades.is_buyer_maker.tolist()
    if shape == "current":
        for t, p, q, ts, m in zip(ids, prices, qtys, times, makers):
            yield _TRADE % (max(event_time, ts), sym, t, p // UNITS, p % UNITS, q // UNITS, q % UNITS, ts, _BOOL[m])
    elif shape == "pre-2024":
        for t, p, q, ts, m in zip(ids, prices, qtys, times, makers):
            buyer, seller = 2 * t + (0 if m else 1), 2 * t + (1 if m else 0)  # the maker's order is older
            yield _TRADE_PRE_2024 % (
                max(event_time, ts),
                sym,
                t,
                p // UNITS,
                p % UNITS,
                q // UNITS,
                q % UNITS,
                buyer,
                seller,
                ts,
                _BOOL[m],
            )
    elif shape == "without-M":
        for t, p, q, ts, m in zip(ids, prices, qtys, times, makers):
            yield _TRADE_WITHOUT_M % (
                max(event_time, ts),
                sym,
                t,
                p // UNITS,
                p % UNITS,
                q // UNITS,
                q % UNITS,
                ts,
                _BOOL[m],
            )
    else:
        raise ValueError(f"unknown trade shape {shape!r}; expected one of {TRADE_SHAPES}")


def with_bad_values(
    rows: list[bytes], trades: Trades, bad: dict[int, tuple[str, str]] | None, keys: dict[str, str]
) -> list[bytes]:
    """``rows`` (one JSON object per trade of ``trades``) with the injected bad values in place: the row of trade id
    ``i`` carries ``bad[i] = (field, text)`` instead of its true value; everything else stays as it was."""
    if bad and len(trades):
        first = int(trades.id[0])
        for trade_id, (field, text) in bad.items():
            i = trade_id - first
            if 0 <= i < len(rows) and int(trades.id[i]) == trade_id:
                row = json.loads(rows[i])
                row[keys[field]] = text
                rows[i] = json.dumps(row, separators=(",", ":")).encode()
    return rows


def agg_trade_events(symbol: str, aggs: AggTrades, event_time: int) -> Iterator[bytes]:
    """``<symbol>@aggTrade`` payloads."""
    sym = symbol.encode()
    for a, p, q, f, last, ts, m in zip(
        aggs.agg_id.tolist(),
        aggs.price.tolist(),
        aggs.qty.tolist(),
        aggs.first_id.tolist(),
        aggs.last_id.tolist(),
        aggs.time.tolist(),
        aggs.is_buyer_maker.tolist(),
    ):
        yield _AGG_TRADE % (
            max(event_time, ts),
            sym,
            a,
            p // UNITS,
            p % UNITS,
            q // UNITS,
            q % UNITS,
            f,
            last,
            ts,
            _BOOL[m],
        )


def kline_event(symbol: str, k: Kline, event_time: int, closed: bool) -> bytes:
    """One ``<symbol>@kline_1m`` payload (``x`` is true once the minute has closed)."""
    return json.dumps(
        {
            "e": "kline",
            "E": event_time,
            "s": symbol,
            "k": {
                "t": k.open_time,
                "T": k.close_time,
                "s": symbol,
                "i": "1m",
                "f": k.first_id,
                "L": k.last_id,
                "o": units_to_decimal(k.open),
                "c": units_to_decimal(k.close),
                "h": units_to_decimal(k.high),
                "l": units_to_decimal(k.low),
                "v": units_to_decimal(k.volume),
                "n": k.count,
                "x": closed,
                "q": units_to_decimal(k.quote_volume),
                "V": units_to_decimal(k.taker_buy_volume),
                "Q": units_to_decimal(k.taker_buy_quote_volume),
                "B": "0",
            },
        },
        separators=(",", ":"),
    ).encode()


def server_shutdown_event(event_time: int) -> bytes:
    return b'{"e":"serverShutdown","E":%d}' % event_time


def combined(stream: str, payload: bytes) -> bytes:
    """The combined-stream envelope ``{"stream": ..., "data": ...}``."""
    return b'{"stream":"%s","data":%s}' % (stream.encode(), payload)


# ---- REST rows ---------------------------------------------------------------------------------------------------
_REST_TRADE = (
    b'{"id":%d,"price":"%d.%08d","qty":"%d.%08d","quoteQty":"%d.%08d","time":%d,"isBuyerMaker":%s,"isBestMatch":true}'
)
_REST_AGG = b'{"a":%d,"p":"%d.%08d","q":"%d.%08d","f":%d,"l":%d,"T":%d,"m":%s,"M":true}'


def rest_trades(trades: Trades, bad: dict[int, tuple[str, str]] | None = None) -> bytes:
    """A ``trades`` / ``historicalTrades`` response body. ``quoteQty`` is the exact price x qty truncated to 8
    decimals (``Trades.quote_qty``); ``bad`` puts injected bad values in place (``with_bad_values``), the quoteQty
    of such a trade stays the true one."""
    rows = [
        _REST_TRADE % (t, p // UNITS, p % UNITS, q // UNITS, q % UNITS, qq // UNITS, qq % UNITS, ts, _BOOL[m])
        for t, p, q, qq, ts, m in zip(
            trades.id.tolist(),
            trades.price.tolist(),
            trades.qty.tolist(),
            trades.quote_qty(),
            trades.time.tolist(),
            trades.is_buyer_maker.tolist(),
        )
    ]
    return b"[" + b",".join(with_bad_values(rows, trades, bad, REST_KEYS)) + b"]"


def rest_agg_trades(aggs: AggTrades) -> bytes:
    """An ``aggTrades`` response body."""
    rows = [
        _REST_AGG % (a, p // UNITS, p % UNITS, q // UNITS, q % UNITS, f, last, ts, _BOOL[m])
        for a, p, q, f, last, ts, m in zip(
            aggs.agg_id.tolist(),
            aggs.price.tolist(),
            aggs.qty.tolist(),
            aggs.first_id.tolist(),
            aggs.last_id.tolist(),
            aggs.time.tolist(),
            aggs.is_buyer_maker.tolist(),
        )
    ]
    return b"[" + b",".join(rows) + b"]"


def rest_kline_row(k: Kline) -> list:
    """One row of a ``klines`` response: 12 fields, prices and volumes as strings, the trade count an integer."""
    return [
        k.open_time,
        units_to_decimal(k.open),
        units_to_decimal(k.high),
        units_to_decimal(k.low),
        units_to_decimal(k.close),
        units_to_decimal(k.volume),
        k.close_time,
        units_to_decimal(k.quote_volume),
        k.count,
        units_to_decimal(k.taker_buy_volume),
        units_to_decimal(k.taker_buy_quote_volume),
        "0",
    ]


def error_body(code: int, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg}, separators=(",", ":")).encode()
