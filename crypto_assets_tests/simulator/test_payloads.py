"""Every payload against the documented Binance examples, field by field: same keys, same order, same JSON types.

The examples are copied from the Binance Spot API docs (values are Binance's; only keys, their order and the JSON
types are compared). Values are checked against the market model separately.
"""

from __future__ import annotations

import json
import re

import pytest

from binance_simulator import Simulator, SimulatorConfig, StreamSettings, payloads, symbol_config
from binance_simulator.market import UNITS, Market, units_to_decimal
from crypto_assets_tests.simulator._support import api, collect, connect, http, messages, now_ms

# ---- the documented examples -------------------------------------------------------------------------------------
TRADE_EVENT = json.loads(
    '{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}'
)
# The older trade shapes: before 2024 with the buyer's and the seller's order ids ("b", "a") after "q"; without "M".
_TRADE_FIELDS = list(TRADE_EVENT.items())
TRADE_EVENT_PRE_2024 = dict(_TRADE_FIELDS[:6] + [("b", 88), ("a", 50)] + _TRADE_FIELDS[6:])
TRADE_EVENT_WITHOUT_M = {key: value for key, value in _TRADE_FIELDS if key != "M"}
AGG_TRADE_EVENT = json.loads(
    '{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100",'
    '"f":100,"l":105,"T":1672515782136,"m":true,"M":true}'
)
KLINE_EVENT = json.loads(
    '{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,'
    '"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025",'
    '"l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500",'
    '"B":"123456"}}'
)
SHUTDOWN_EVENT = json.loads('{"e":"serverShutdown","E":1672515782136}')
REST_TRADE = json.loads(
    '{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012",'
    '"time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}'
)
REST_AGG_TRADE = json.loads(
    '{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true,"M":true}'
)
REST_KLINE = json.loads(
    '[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",'
    '1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]'
)
ERROR = json.loads('{"code":-1121,"msg":"Invalid symbol."}')
EXCHANGE_INFO = json.loads("""{
  "timezone": "UTC", "serverTime": 1565246363776,
  "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
  "exchangeFilters": [],
  "symbols": [{
    "symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH", "baseAssetPrecision": 8, "quoteAsset": "BTC",
    "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
    "orderTypes": ["LIMIT"], "icebergAllowed": true, "ocoAllowed": true, "otoAllowed": true,
    "quoteOrderQtyMarketAllowed": true, "allowTrailingStop": false, "cancelReplaceAllowed": false,
    "amendAllowed": false, "isSpotTradingAllowed": true, "isMarginTradingAllowed": true, "filters": [],
    "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "NONE",
    "allowedSelfTradePreventionModes": ["NONE"]
  }]
}""")

DECIMAL8 = re.compile(r"^[0-9]+\.[0-9]{8}$")
TRADE_DECIMALS = ("p", "q")
KLINE_DECIMALS = ("o", "c", "h", "l", "v", "q", "V", "Q")
ROW_DECIMALS = (1, 2, 3, 4, 5, 7, 9, 10)


def assert_shape(actual, example, path: str = "$") -> None:
    """Same JSON type; for objects the same keys in the same order; lists: one-item example = template for every
    item, longer example = item by item."""
    assert type(actual) is type(example), f"{path}: {type(actual).__name__}, documented {type(example).__name__}"
    if isinstance(example, dict):
        assert list(actual) == list(example), f"{path}: keys {list(actual)}, documented {list(example)}"
        for key in example:
            assert_shape(actual[key], example[key], f"{path}.{key}")
    elif isinstance(example, list) and len(example) == 1:
        for i, item in enumerate(actual):
            assert_shape(item, example[0], f"{path}[{i}]")
    elif isinstance(example, list) and example:
        assert len(actual) == len(example), f"{path}: {len(actual)} items, documented {len(example)}"
        for i, (a, e) in enumerate(zip(actual, example)):
            assert_shape(a, e, f"{path}[{i}]")


def assert_decimals(obj, keys) -> None:
    for key in keys:
        assert DECIMAL8.match(obj[key]), f"{key}={obj[key]!r} is not a string with exactly 8 decimals"


def units(text: str) -> int:
    whole, frac = text.split(".")
    return int(whole) * UNITS + int(frac)


# ---- encoders, no server -----------------------------------------------------------------------------------------
ORIGIN = 1_767_225_600_000


@pytest.fixture(scope="module")
def sample():
    """A minute of BTCUSDT with bursts, its aggregates and kline."""
    m = Market([symbol_config("BTCUSDT", burst_probability=0.3)], 4, ORIGIN)["BTCUSDT"]
    start, end = ORIGIN + 60_000, ORIGIN + 120_000
    return m.trades_between(start, end), m.aggs_between(start, end, 10**6), m.kline(start, 60_000)


@pytest.mark.parametrize(
    "shape, example",
    [("current", TRADE_EVENT), ("pre-2024", TRADE_EVENT_PRE_2024), ("without-M", TRADE_EVENT_WITHOUT_M)],
)
def test_trade_event_matches_the_documented_shape_and_the_trade(sample, shape, example):
    trades, _, _ = sample
    event_time = int(trades.time[-1]) + 5
    events = [json.loads(e) for e in payloads.trade_events("BTCUSDT", trades, event_time, shape)]
    assert len(events) == len(trades)
    for e, t, ts, p, q, m in zip(
        events,
        trades.id.tolist(),
        trades.time.tolist(),
        trades.price.tolist(),
        trades.qty.tolist(),
        trades.is_buyer_maker.tolist(),
    ):
        assert_shape(e, example)
        assert_decimals(e, TRADE_DECIMALS)
        assert (e["e"], e["E"], e["s"], e["t"], e["T"], e["m"]) == ("trade", event_time, "BTCUSDT", t, ts, m)
        assert (units(e["p"]), units(e["q"])) == (p, q)
        if "M" in e:
            assert e["M"] is True
        if shape == "pre-2024":
            assert e["b"] > 0 and e["a"] > 0 and e["b"] != e["a"]
            assert (e["b"] < e["a"]) == m  # the maker's order is the older one


def test_trade_event_time_is_never_before_the_trade_time(sample):
    trades, _, _ = sample
    events = [json.loads(e) for e in payloads.trade_events("BTCUSDT", trades, 0)]
    assert all(e["E"] == e["T"] for e in events)


def test_unknown_trade_shape_is_refused(sample):
    with pytest.raises(ValueError, match="shape"):
        list(payloads.trade_events("BTCUSDT", sample[0], 0, "v2"))


def test_agg_trade_event_matches_the_documented_shape(sample):
    _, aggs, _ = sample
    events = [json.loads(e) for e in payloads.agg_trade_events("BTCUSDT", aggs, ORIGIN + 200_000)]
    assert len(events) == len(aggs)
    for e, a, f, last, p, q in zip(
        events,
        aggs.agg_id.tolist(),
        aggs.first_id.tolist(),
        aggs.last_id.tolist(),
        aggs.price.tolist(),
        aggs.qty.tolist(),
    ):
        assert_shape(e, AGG_TRADE_EVENT)
        assert_decimals(e, TRADE_DECIMALS)
        assert (e["a"], e["f"], e["l"], units(e["p"]), units(e["q"])) == (a, f, last, p, q)


@pytest.mark.parametrize("closed", [False, True])
def test_kline_event_matches_the_documented_shape(sample, closed):
    _, _, k = sample
    e = json.loads(payloads.kline_event("BTCUSDT", k, ORIGIN + 120_001, closed))
    assert_shape(e, KLINE_EVENT)
    assert_decimals(e["k"], KLINE_DECIMALS)
    body = e["k"]
    assert (e["e"], e["s"], body["s"], body["i"], body["x"]) == ("kline", "BTCUSDT", "BTCUSDT", "1m", closed)
    assert (body["t"], body["T"], body["f"], body["L"], body["n"]) == (
        k.open_time,
        k.close_time,
        k.first_id,
        k.last_id,
        k.count,
    )
    assert [units(body[x]) for x in KLINE_DECIMALS] == [
        k.open,
        k.close,
        k.high,
        k.low,
        k.volume,
        k.quote_volume,
        k.taker_buy_volume,
        k.taker_buy_quote_volume,
    ]


def test_combined_envelope_and_server_shutdown_event():
    event = payloads.server_shutdown_event(1672515782136)
    assert_shape(json.loads(event), SHUTDOWN_EVENT)
    wrapped = json.loads(payloads.combined("!serverShutdown", event))
    assert list(wrapped) == ["stream", "data"]
    assert wrapped == {"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1672515782136}}


def test_rest_rows_match_the_documented_shapes(sample):
    trades, aggs, k = sample
    rows = json.loads(payloads.rest_trades(trades))
    assert len(rows) == len(trades)
    for row, qq in zip(rows, trades.quote_qty()):
        assert_shape(row, REST_TRADE)
        assert_decimals(row, ("price", "qty", "quoteQty"))
        assert units(row["quoteQty"]) == qq == units(row["price"]) * units(row["qty"]) // UNITS
    for row in json.loads(payloads.rest_agg_trades(aggs)):
        assert_shape(row, REST_AGG_TRADE)
        assert_decimals(row, ("p", "q"))
    row = json.loads(json.dumps(payloads.rest_kline_row(k)))
    assert_shape(row, REST_KLINE)
    assert_decimals({i: row[i] for i in ROW_DECIMALS}, ROW_DECIMALS)
    assert row[8] == k.count and row[0] == k.open_time and row[6] == k.open_time + 59_999
    assert json.loads(payloads.rest_trades(trades.slice(0, 0))) == []
    assert_shape(json.loads(payloads.error_body(-1121, "Invalid symbol.")), ERROR)


def test_decimal_strings_have_exactly_eight_places():
    assert units_to_decimal(0) == "0.00000000"
    assert units_to_decimal(1) == "0.00000001"
    assert units_to_decimal(9_500_001_000_000) == "95000.01000000"


# ---- over the wire -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim():
    config = SimulatorConfig(
        symbols=[
            symbol_config("BTCUSDT"),
            symbol_config("ETHUSDT", quiet_minute_probability=0.0),
            symbol_config("BNBUSDT", status="HALT"),
        ],
        history_minutes=5,
    )
    with Simulator(config) as s:
        yield s


@pytest.mark.integration
def test_ping_and_time(sim):
    r = api(sim, "ping")
    assert (r.status, r.body) == (200, b"{}")
    before = now_ms()
    r = api(sim, "time")
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["serverTime"] and type(body["serverTime"]) is int
    assert before <= body["serverTime"] <= now_ms()


@pytest.mark.integration
def test_exchange_info_matches_the_documented_shape(sim):
    info = api(sim, "exchangeInfo").json()
    assert_shape(info, EXCHANGE_INFO)
    weight = [r for r in info["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT"]
    assert weight == [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}]
    assert {s["symbol"]: s["status"] for s in info["symbols"]} == {
        "BTCUSDT": "TRADING",
        "ETHUSDT": "TRADING",
        "BNBUSDT": "HALT",
    }
    btc = info["symbols"][0]
    assert (btc["baseAsset"], btc["quoteAsset"]) == ("BTC", "USDT")
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000" and filters["LOT_SIZE"]["stepSize"] == "0.00001000"


@pytest.mark.integration
def test_exchange_info_filters_by_symbol_and_symbols(sim):
    one = api(sim, "exchangeInfo", symbol="ETHUSDT").json()
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    two = api(sim, "exchangeInfo", symbols='["BNBUSDT","BTCUSDT"]').json()
    assert [s["symbol"] for s in two["symbols"]] == ["BNBUSDT", "BTCUSDT"]
    assert api(sim, "exchangeInfo", symbol="DOGEUSDT").json()["code"] == -1121


@pytest.mark.integration
@pytest.mark.parametrize(
    "endpoint, params", [("trades", {}), ("historicalTrades", {}), ("historicalTrades", {"fromId": 5_100_000_100})]
)
def test_rest_trade_rows_match_the_documented_shape_and_the_market(sim, endpoint, params):
    r = api(sim, endpoint, symbol="BTCUSDT", limit=300, **params)
    assert r.status == 200
    rows = r.json()
    assert len(rows) == 300
    ids = [row["id"] for row in rows]
    assert ids == list(range(ids[0], ids[0] + 300))
    if "fromId" in params:
        assert ids[0] == params["fromId"]
    truth = sim.trades_between("BTCUSDT", rows[0]["time"], rows[-1]["time"] + 1)
    by_id = dict(
        zip(
            truth.id.tolist(),
            zip(truth.price.tolist(), truth.qty.tolist(), truth.time.tolist(), truth.is_buyer_maker.tolist()),
        )
    )
    for row in rows:
        assert_shape(row, REST_TRADE)
        assert_decimals(row, ("price", "qty", "quoteQty"))
        assert (units(row["price"]), units(row["qty"]), row["time"], row["isBuyerMaker"]) == by_id[row["id"]]
        assert units(row["quoteQty"]) * UNITS == units(row["price"]) * units(row["qty"])
        assert row["isBestMatch"] is True


@pytest.mark.integration
def test_rest_agg_trade_rows_match_the_documented_shape(sim):
    rows = api(sim, "aggTrades", symbol="ETHUSDT", limit=200).json()
    assert len(rows) == 200
    for row in rows:
        assert_shape(row, REST_AGG_TRADE)
        assert_decimals(row, ("p", "q"))
    assert [r["a"] for r in rows] == list(range(rows[0]["a"], rows[0]["a"] + 200))
    assert all(b["f"] == a["l"] + 1 for a, b in zip(rows, rows[1:]))


@pytest.mark.integration
def test_rest_kline_rows_have_twelve_documented_fields(sim):
    rows = api(sim, "klines", symbol="BTCUSDT", interval="1m", limit=4).json()
    assert len(rows) == 4
    for row in rows:
        assert_shape(row, REST_KLINE)
        assert [type(v) for v in row] == [int, str, str, str, str, str, int, str, int, str, str, str]
        assert_decimals({i: row[i] for i in ROW_DECIMALS}, ROW_DECIMALS)
        assert row[0] % 60_000 == 0 and row[6] == row[0] + 59_999 and row[8] > 0
    assert [r[0] for r in rows] == [rows[0][0] + 60_000 * i for i in range(4)]


@pytest.mark.integration
def test_error_body_matches_the_documented_shape(sim):
    r = api(sim, "trades", symbol="NOPEUSDT")
    assert r.status == 400
    assert_shape(r.json(), ERROR)
    assert r.json() == {"code": -1121, "msg": "Invalid symbol."}


@pytest.mark.integration
def test_only_api_v3_exists(sim):
    assert http(sim, "/api/v1/ping").status == 404
    assert http(sim, "/api/v1/trades", {"symbol": "BTCUSDT"}).status == 404


def _stream(sim, path: str, want: int, seconds: float = 8.0) -> list[dict]:
    ws = connect(sim, path)
    try:
        return messages(collect(ws, seconds, until=lambda frames: len(frames) >= want))
    finally:
        ws.close()


@pytest.mark.integration
def test_raw_trade_stream_matches_the_documented_shape(sim):
    events = _stream(sim, "/ws/btcusdt@trade", 20)
    assert len(events) >= 20
    truth = sim.trades_between("BTCUSDT", events[0]["T"], events[-1]["T"] + 1)
    by_id = dict(zip(truth.id.tolist(), zip(truth.price.tolist(), truth.qty.tolist(), truth.time.tolist())))
    for e in events:
        assert_shape(e, TRADE_EVENT)
        assert_decimals(e, TRADE_DECIMALS)
        assert e["s"] == "BTCUSDT" and e["E"] >= e["T"]
        assert (units(e["p"]), units(e["q"]), e["T"]) == by_id[e["t"]]


@pytest.mark.integration
def test_raw_agg_trade_and_kline_streams_match_the_documented_shapes(sim):
    aggs = _stream(sim, "/ws/ethusdt@aggTrade", 5)
    assert len(aggs) >= 5
    for e in aggs:
        assert_shape(e, AGG_TRADE_EVENT)
        assert_decimals(e, TRADE_DECIMALS)
    klines = _stream(sim, "/ws/btcusdt@kline_1m", 1)
    assert len(klines) == 1
    assert_shape(klines[0], KLINE_EVENT)
    assert_decimals(klines[0]["k"], KLINE_DECIMALS)
    k = klines[0]["k"]
    assert k["t"] % 60_000 == 0 and k["T"] == k["t"] + 59_999 and k["i"] == "1m" and k["B"] == "0"


@pytest.mark.integration
def test_combined_stream_wraps_every_payload_in_the_envelope(sim):
    streams = ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@kline_1m", "ethusdt@trade"]
    seen: dict[str, dict] = {}

    def enough(frames):
        for m in messages(frames[-1:]):
            seen.setdefault(m["stream"], m)
        return len(seen) == len(streams)

    ws = connect(sim, "/stream?streams=" + "/".join(streams))
    try:
        collect(ws, 10, until=enough)
    finally:
        ws.close()
    assert set(seen) == set(streams)
    examples = {
        "btcusdt@trade": TRADE_EVENT,
        "btcusdt@aggTrade": AGG_TRADE_EVENT,
        "btcusdt@kline_1m": KLINE_EVENT,
        "ethusdt@trade": TRADE_EVENT,
    }
    for name, msg in seen.items():
        assert list(msg) == ["stream", "data"]
        assert_shape(msg["data"], examples[name])
        assert msg["data"]["s"] == name.split("@")[0].upper()


@pytest.mark.integration
@pytest.mark.parametrize("shape, example", [("pre-2024", TRADE_EVENT_PRE_2024), ("without-M", TRADE_EVENT_WITHOUT_M)])
def test_older_trade_shapes_over_the_wire(shape, example):
    config = SimulatorConfig(
        symbols=[symbol_config("BTCUSDT")], history_minutes=2, stream=StreamSettings(trade_shape=shape)
    )
    with Simulator(config) as s:
        events = _stream(s, "/ws/btcusdt@trade", 10)
        combined = _stream(s, "/stream?streams=btcusdt@trade", 3)
    assert len(events) >= 10 and len(combined) >= 3
    for e in events + [m["data"] for m in combined]:
        assert_shape(e, example)
        assert_decimals(e, TRADE_DECIMALS)
