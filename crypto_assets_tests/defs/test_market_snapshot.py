import pytest
from dagster import DagsterEventType, Failure, materialize

from crypto_assets.defs.market_snapshot import market_snapshot
from crypto_assets.defs.resources import ExchangeResource
from crypto_assets_tests.stub_exchange import TRADE_ROW, StubExchange, closed_port


def exchange(rest_url: str, symbols: list[str]) -> ExchangeResource:
    return ExchangeResource(rest_url=rest_url, ws_url="ws://127.0.0.1:1", symbols=symbols)


def materialization_metadata(result):
    [event] = [e for e in result.all_events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def test_snapshot_metadata_from_a_binance_shaped_server():
    older = {**TRADE_ROW, "id": 28456, "price": "3.99000000", "time": 1499865549000, "isBuyerMaker": False}
    with StubExchange({"/api/v3/trades": (200, [older, TRADE_ROW])}) as stub:
        result = materialize(
            [market_snapshot], resources={"exchange": exchange(stub.http_url, ["BTCUSDT", "ETHUSDT"])}
        )
    assert result.success
    metadata = materialization_metadata(result)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert metadata[f"{symbol}_last_price"] == pytest.approx(4.000001)
        assert metadata[f"{symbol}_last_trade_id"] == 28457
        assert metadata[f"{symbol}_last_trade_time"] == "2017-07-12T13:19:09.590+00:00"
        assert metadata[f"{symbol}_trades_fetched"] == 2
    table = metadata["latest_trades"].splitlines()
    assert table[0].startswith("| trade time (UTC) | symbol | trade id | price")
    assert len(table) == 2 + 4
    assert "| 2017-07-12T13:19:09.590+00:00 | BTCUSDT | 28457 | 4.00000100 | 12.00000000 | sell |" in table
    assert table[-1].endswith("| 28456 | 3.99000000 | 12.00000000 | buy |")
    symbols_requested = [query["symbol"] for path, query in stub.requests if path == "/api/v3/trades"]
    assert symbols_requested == [["BTCUSDT"], ["ETHUSDT"]]


def test_symbol_without_recent_trades_is_reported_not_skipped():
    with StubExchange({"/api/v3/trades": (200, [])}) as stub:
        result = materialize([market_snapshot], resources={"exchange": exchange(stub.http_url, ["BTCUSDT"])})
    metadata = materialization_metadata(result)
    assert metadata["BTCUSDT_trades_fetched"] == 0
    assert "BTCUSDT_last_price" not in metadata
    assert "(no trades returned)" in metadata["latest_trades"]


def test_unreachable_exchange_fails_naming_the_url():
    rest_url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(Failure) as excinfo:
        materialize([market_snapshot], resources={"exchange": exchange(rest_url, ["BTCUSDT"])})
    assert rest_url in excinfo.value.description
    assert "\n" not in excinfo.value.description


def test_exchange_error_fails_naming_the_symbol():
    with StubExchange({"/api/v3/trades": (400, {"code": -1121, "msg": "Invalid symbol."})}) as stub:
        with pytest.raises(Failure) as excinfo:
            materialize([market_snapshot], resources={"exchange": exchange(stub.http_url, ["NOSUCH1"])})
    assert "NOSUCH1" in excinfo.value.description
    assert "Invalid symbol." in excinfo.value.description
