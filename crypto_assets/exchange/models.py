"""Binance market-data records, and one parse function per message type (stream frames and REST bodies).

Records are what the rest of the project consumes: ``Trade``, ``Kline``, ``AggTrade``, and the stream's
continuity events ``Connected``, ``Disconnected`` and ``MalformedFrame``. Prices and quantities stay the exact
decimal strings Binance sent (never floats): the lake turns them into exact decimals in bulk.

Parsing uses msgspec structs that mirror Binance's payloads; unknown fields are ignored, so the pre-2024 trade
shape (with ``b``/``a``) and a missing ``M`` both parse. A frame that does not fit raises ``MalformedPayload``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

# An exact, non-negative decimal as Binance writes it: "96748.61000000", "0.001", "100".
Decimal = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,20}(\.[0-9]{1,18})?$")]


class MalformedPayload(ValueError):
    """A frame or body that is not the Binance payload it claims to be."""


# msgspec reports invalid UTF-8 inside a string (or a str frame with a lone surrogate) as a UnicodeError.
_NOT_JSON = (msgspec.DecodeError, UnicodeError)


# ---- records -----------------------------------------------------------------------------------------------------
class Trade(msgspec.Struct, frozen=True, gc=False):
    """One spot trade. ``trade_time`` and ``received_at`` are milliseconds since the epoch (UTC);
    ``received_at`` is when the stream delivered it, None when it came over REST."""

    symbol: str
    trade_id: int
    price: str
    qty: str
    trade_time: int
    is_buyer_maker: bool
    received_at: int | None = None


class Kline(msgspec.Struct, frozen=True, gc=False):
    """A kline (candle). The stream's closed 1m kline carries the first and last trade id of the minute
    (-1 when it had no trade); REST klines do not (None)."""

    symbol: str
    open_time: int
    close_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trade_count: int
    taker_buy_volume: str
    taker_buy_quote_volume: str
    first_trade_id: int | None = None
    last_trade_id: int | None = None
    received_at: int | None = None


class AggTrade(msgspec.Struct, frozen=True, gc=False):
    agg_id: int
    price: str
    qty: str
    first_trade_id: int
    last_trade_id: int
    trade_time: int
    is_buyer_maker: bool


class Connected(msgspec.Struct, frozen=True):
    """A connection of the stream is (re)connected: records of its ``symbols`` after this one are contiguous until
    its next Disconnected. ``symbols`` empty: the stream's every symbol."""

    at: int
    url: str
    symbols: tuple[str, ...] = ()


class Disconnected(msgspec.Struct, frozen=True):
    """A connection of the stream was lost at ``at`` (ms): continuity of its ``symbols`` (empty: every symbol) may
    be broken between the last record before this and the first after that connection's next Connected."""

    at: int
    reason: str
    symbols: tuple[str, ...] = ()


class MalformedFrame(msgspec.Struct, frozen=True):
    """A frame that could not be parsed. ``symbol`` is set when the stream name could still be read: that
    symbol's current minute cannot be trusted; otherwise any of ``symbols`` (its connection's; empty: every
    symbol) may have lost a record."""

    at: int
    symbol: str | None
    error: str
    frame: str  # the frame's content (cut to a few hundred characters)
    symbols: tuple[str, ...] = ()


class ServerShutdown(msgspec.Struct, frozen=True):
    at: int


class ControlReply(msgspec.Struct, frozen=True):
    """The answer to a SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS message."""

    id: int | str | None
    result: object = None
    error: str | None = None


StreamRecord = Trade | Kline | Connected | Disconnected | MalformedFrame | ServerShutdown | ControlReply


# ---- wire shapes (Binance's keys) -------------------------------------------------------------------------------
class _TradeEvent(msgspec.Struct, tag_field="e", tag="trade", gc=False):
    E: int
    s: str
    t: int
    p: Decimal
    q: Decimal
    T: int
    m: bool


class _KlineBody(msgspec.Struct, gc=False):
    t: int
    T: int
    s: str
    i: str
    f: int
    L: int
    o: Decimal
    c: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 - Binance's key
    v: Decimal
    n: int
    x: bool
    q: Decimal
    V: Decimal
    Q: Decimal


class _KlineEvent(msgspec.Struct, tag_field="e", tag="kline", gc=False):
    E: int
    s: str
    k: _KlineBody


class _ShutdownEvent(msgspec.Struct, tag_field="e", tag="serverShutdown"):
    E: int


_Event = _TradeEvent | _KlineEvent | _ShutdownEvent


class _Envelope(msgspec.Struct, gc=False):
    stream: str
    data: _Event


class _Reply(msgspec.Struct):
    id: int | str | None = None
    result: object = None
    code: int | None = None
    msg: str | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_event_decoder = msgspec.json.Decoder(_Event)
_reply_decoder = msgspec.json.Decoder(_Reply)


# ---- stream frames -----------------------------------------------------------------------------------------------
def parse_stream_frame(frame: bytes | str, received_at: int) -> Trade | Kline | ServerShutdown | ControlReply | None:
    """One text frame of a combined (``{"stream":..,"data":..}``) or raw stream. Returns None for an open
    (not yet closed) kline update. Raises MalformedPayload for anything else that is not a Binance payload."""
    try:
        envelope = _envelope_decoder.decode(frame)
        event = envelope.data
        if type(event) is not _ShutdownEvent and not envelope.stream.startswith(event.s.lower() + "@"):
            raise MalformedPayload(f"stream {envelope.stream!r} carries an event for {event.s}")
    except msgspec.ValidationError as envelope_error:
        try:
            event = _event_decoder.decode(frame)
        except (msgspec.ValidationError, *_NOT_JSON):
            return _parse_reply(frame, envelope_error)
    except _NOT_JSON as exc:
        raise MalformedPayload(f"not JSON: {exc}") from None
    if type(event) is _TradeEvent:
        return Trade(event.s, event.t, event.p, event.q, event.T, event.m, received_at)
    if type(event) is _KlineEvent:
        return _closed_kline(event, received_at)
    return ServerShutdown(event.E)


def stream_symbol(frame: bytes | str) -> str | None:
    """The upper-case symbol a (possibly broken) combined-stream frame was about, when it can still be read."""
    text = frame if isinstance(frame, str) else frame[:200].decode("utf-8", "replace")
    start = text.find('"stream":"')
    if start < 0:
        return None
    name = text[start + 10 :].split('"', 1)[0]
    symbol = name.split("@", 1)[0]
    return symbol.upper() if symbol.isalnum() and "@" in name else None


def _closed_kline(event: _KlineEvent, received_at: int) -> Kline | None:
    k = event.k
    if not k.x:
        return None
    if k.s != event.s:
        raise MalformedPayload(f"kline for {k.s} inside an event for {event.s}")
    return Kline(k.s, k.t, k.T, k.o, k.h, k.l, k.c, k.v, k.q, k.n, k.V, k.Q, k.f, k.L, received_at)


def _parse_reply(frame: bytes | str, envelope_error: Exception) -> ControlReply:
    try:
        reply = _reply_decoder.decode(frame)
    except (msgspec.ValidationError, *_NOT_JSON):
        raise MalformedPayload(f"not a Binance stream payload: {envelope_error}") from None
    if reply.code is not None:
        return ControlReply(reply.id, None, f"code {reply.code}: {reply.msg}")
    if "result" not in (frame if isinstance(frame, str) else frame.decode("utf-8", "replace")):
        raise MalformedPayload(f"not a Binance stream payload: {envelope_error}")
    return ControlReply(reply.id, reply.result)


# ---- REST bodies -------------------------------------------------------------------------------------------------
class _RestTrade(msgspec.Struct, gc=False):
    id: int
    price: Decimal
    qty: Decimal
    time: int
    isBuyerMaker: bool


class _RestAggTrade(msgspec.Struct, gc=False):
    a: int
    p: Decimal
    q: Decimal
    f: int
    l: int  # noqa: E741 - Binance's key
    T: int
    m: bool


_rest_trades_decoder = msgspec.json.Decoder(list[_RestTrade])
_rest_aggs_decoder = msgspec.json.Decoder(list[_RestAggTrade])
_rest_klines_decoder = msgspec.json.Decoder(
    list[tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal, int, Decimal, int, Decimal, Decimal, str]]
)


def parse_rest_trades(symbol: str, body: bytes) -> list[Trade]:
    """A ``trades`` / ``historicalTrades`` body."""
    rows = _decode(_rest_trades_decoder, body, "trades")
    return [Trade(symbol, r.id, r.price, r.qty, r.time, r.isBuyerMaker) for r in rows]


def parse_rest_agg_trades(body: bytes) -> list[AggTrade]:
    """An ``aggTrades`` body, without the rows Binance marks invalid (``f = l = -1``)."""
    rows = _decode(_rest_aggs_decoder, body, "aggTrades")
    return [AggTrade(r.a, r.p, r.q, r.f, r.l, r.T, r.m) for r in rows if r.f >= 0]


def parse_rest_klines(symbol: str, body: bytes) -> list[Kline]:
    """A ``klines`` body (rows of 12)."""
    rows = _decode(_rest_klines_decoder, body, "klines")
    return [Kline(symbol, r[0], r[6], r[1], r[2], r[3], r[4], r[5], r[7], r[8], r[9], r[10]) for r in rows]


def _decode(decoder: msgspec.json.Decoder, body: bytes, what: str):
    try:
        return decoder.decode(body)
    except (msgspec.ValidationError, *_NOT_JSON) as exc:
        raise MalformedPayload(f"unexpected {what} body: {exc}: {body[:200]!r}") from None


# ---- exchangeInfo ------------------------------------------------------------------------------------------------
class SymbolListing(msgspec.Struct, frozen=True):
    """One symbol as exchangeInfo lists it: ``status`` TRADING, HALT (trading suspended for a while), BREAK
    (delisted, or listed but not open yet), ..."""

    symbol: str
    status: str
    baseAsset: str = ""
    quoteAsset: str = ""


class _ExchangeSymbols(msgspec.Struct):
    symbols: list[SymbolListing]


def parse_listings(body: dict, url: str) -> list[SymbolListing]:
    """The ``symbols`` of an exchangeInfo body; without a readable list: MalformedPayload naming ``url``."""
    try:
        return msgspec.convert(body, _ExchangeSymbols).symbols
    except msgspec.ValidationError as exc:
        raise MalformedPayload(f"exchangeInfo at {url} has no readable symbol list: {exc}") from None
