"""Property-based tests of the stream parser: anything at all either parses into a record or raises MalformedPayload;
valid trade and kline payloads (every trade shape) round-trip exactly."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto_assets.exchange.models import (
    ControlReply,
    Kline,
    MalformedPayload,
    ServerShutdown,
    Trade,
    parse_stream_frame,
    stream_symbol,
)

RECORDS = (Trade, Kline, ServerShutdown, ControlReply, type(None))
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

symbols = st.from_regex(r"[A-Z0-9]{2,12}", fullmatch=True)
decimals = st.from_regex(r"[0-9]{1,20}(\.[0-9]{1,18})?", fullmatch=True)
times = st.integers(0, 2**53)
ids = st.integers(0, 2**62)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)
# Objects made of Binance's own keys, so the fuzzing reaches deep into the payload shapes.
binance_keys = st.sampled_from(
    [
        "e",
        "E",
        "s",
        "t",
        "p",
        "q",
        "T",
        "m",
        "M",
        "b",
        "a",
        "k",
        "i",
        "f",
        "L",
        "o",
        "c",
        "h",
        "l",
        "v",
        "n",
        "x",
        "V",
        "Q",
        "B",
        "stream",
        "data",
        "result",
        "id",
        "code",
        "msg",
    ]
)
binance_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**65), 2**65)
    | decimals
    | st.sampled_from(["trade", "kline", "serverShutdown", "1m"]),
    lambda inner: st.dictionaries(binance_keys, inner, max_size=12),
    max_leaves=40,
)


def outcome(frame):
    try:
        record = parse_stream_frame(frame, 1)
    except MalformedPayload:
        return "malformed"
    assert isinstance(record, RECORDS)
    return record


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_malformed_payload(frame):
    outcome(frame)
    stream_symbol(frame)


@FAST
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_anything_but_malformed_payload(frame):
    outcome(frame)
    stream_symbol(frame)


@FAST
@given(
    json_values | binance_like,
    st.booleans(),
    st.sampled_from(["btcusdt@trade", "btcusdt@kline_1m", "!serverShutdown", "x"]),
)
def test_arbitrary_json_never_raises_anything_but_malformed_payload(value, wrap, stream):
    body = {"stream": stream, "data": value} if wrap else value
    outcome(json.dumps(body).encode())
    outcome(json.dumps(body))


@FAST
@given(binance_like, st.integers(0, 200), st.binary(max_size=4))
def test_cut_or_spoiled_frames_never_raise_anything_but_malformed_payload(value, cut, junk):
    frame = json.dumps({"stream": "btcusdt@trade", "data": value}).encode()
    outcome(frame[:cut])
    outcome(frame[:cut] + junk + frame[cut:])
    assert stream_symbol(frame[:cut]) in (None, "BTCUSDT")


@st.composite
def trade_payloads(draw):
    symbol = draw(symbols)
    shape = draw(st.sampled_from(["current", "pre-2024", "without-M"]))
    data = {
        "e": "trade",
        "E": draw(times),
        "s": symbol,
        "t": draw(ids),
        "p": draw(decimals),
        "q": draw(decimals),
        "T": draw(times),
        "m": draw(st.booleans()),
    }
    if shape == "pre-2024":  # buyer and seller order ids, until 2024-06-18
        data = {
            **{k: data[k] for k in ("e", "E", "s", "t", "p", "q")},
            "b": draw(ids),
            "a": draw(ids),
            **{k: data[k] for k in ("T", "m")},
        }
    if shape != "without-M":
        data["M"] = True
    return symbol, data


@FAST
@given(trade_payloads(), times, st.booleans())
def test_valid_trades_round_trip_exactly(payload, received_at, as_text):
    symbol, data = payload
    frame = json.dumps({"stream": symbol.lower() + "@trade", "data": data}, separators=(",", ":"))
    record = parse_stream_frame(frame if as_text else frame.encode(), received_at)
    assert record == Trade(symbol, data["t"], data["p"], data["q"], data["T"], data["m"], received_at)
    assert record.price == data["p"] and record.qty == data["q"]  # the exact strings, never floats
    assert stream_symbol(frame) == symbol
    assert parse_stream_frame(json.dumps(data), received_at) == record  # the raw-stream shape


@st.composite
def kline_payloads(draw):
    symbol = draw(symbols)
    open_time = draw(st.integers(0, 2**40)) * 60_000
    first = draw(st.integers(-1, 2**40))
    k = {
        "t": open_time,
        "T": open_time + 59_999,
        "s": symbol,
        "i": "1m",
        "f": first,
        "L": first + draw(st.integers(0, 10_000)) if first >= 0 else -1,
        "o": draw(decimals),
        "c": draw(decimals),
        "h": draw(decimals),
        "l": draw(decimals),
        "v": draw(decimals),
        "n": draw(st.integers(0, 10**6)),
        "x": draw(st.booleans()),
        "q": draw(decimals),
        "V": draw(decimals),
        "Q": draw(decimals),
        "B": "0",
    }
    return symbol, {"e": "kline", "E": draw(times), "s": symbol, "k": k}


@FAST
@given(kline_payloads(), times)
def test_valid_klines_round_trip_exactly_and_open_ones_are_dropped(payload, received_at):
    symbol, data = payload
    k = data["k"]
    frame = json.dumps({"stream": symbol.lower() + "@kline_1m", "data": data}).encode()
    record = parse_stream_frame(frame, received_at)
    if not k["x"]:
        assert record is None
        return
    assert record == Kline(
        symbol,
        k["t"],
        k["T"],
        k["o"],
        k["h"],
        k["l"],
        k["c"],
        k["v"],
        k["q"],
        k["n"],
        k["V"],
        k["Q"],
        k["f"],
        k["L"],
        received_at,
    )


@FAST
@given(
    trade_payloads(),
    st.sampled_from(["p", "q", "t", "T", "m", "s", "e"]),
    st.none() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5) | st.just("1e5") | st.just("-1"),
)
def test_a_trade_with_a_bad_field_is_malformed_never_a_wrong_record(payload, field, value):
    symbol, data = payload
    data = {**data, field: value}
    frame = json.dumps({"stream": symbol.lower() + "@trade", "data": data})
    result = outcome(frame)
    if result != "malformed":  # the value happened to be valid for the field: then the record shows it exactly
        assert result == Trade(data["s"], data["t"], data["p"], data["q"], data["T"], data["m"], 1)


@pytest.mark.parametrize(
    "frame, symbol",
    [
        ('{"stream":"ethusdt@trade","data":{"e":"trade","E":1,"s":"ETH', "ETHUSDT"),
        ('{"stream":"ethusdt@trade","data":<html><body>502 Bad Gateway</body></html>}', "ETHUSDT"),
        (b'{"stream":"btcusdt@kline_1m","data":{}}', "BTCUSDT"),
        ('{"stream":"ethus', None),
        ("<html>", None),
        ('{"stream":"!serverShutdown","data":{}}', None),
    ],
)
def test_stream_symbol_reads_broken_frames(frame, symbol):
    assert stream_symbol(frame) == symbol
    with pytest.raises(MalformedPayload):
        parse_stream_frame(frame, 1)


def test_a_stream_carrying_another_symbols_event_is_malformed():
    frame = '{"stream":"ethusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true}}'
    with pytest.raises(MalformedPayload, match="carries an event for BTCUSDT"):
        parse_stream_frame(frame, 1)


def test_invalid_utf8_is_malformed_not_a_unicode_error():
    with pytest.raises(MalformedPayload):
        parse_stream_frame(b'{"result":"\xff"}', 1)
    with pytest.raises(MalformedPayload):
        parse_stream_frame('{"result":"\ud800"}', 1)
