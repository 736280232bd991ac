import pytest

from crypto_assets.exchange.rest import BinanceRestClient, ExchangeError, ExchangeUnreachable
from crypto_assets_tests.stub_exchange import TRADE_ROW, StubExchange, closed_port


def test_ping_time_and_recent_trades():
    routes = {
        "/api/v3/ping": (200, {}),
        "/api/v3/time": (200, {"serverTime": 1499827319559}),
        "/api/v3/trades": (200, [TRADE_ROW]),
    }
    with StubExchange(routes) as stub, BinanceRestClient(stub.http_url + "/") as client:
        client.ping()
        assert client.server_time() == 1499827319559
        assert client.recent_trades("BTCUSDT", limit=7) == [TRADE_ROW]
    assert stub.requests[-1] == ("/api/v3/trades", {"symbol": ["BTCUSDT"], "limit": ["7"]})


def test_binance_error_body_becomes_exchange_error():
    with StubExchange({"/api/v3/trades": (400, {"code": -1121, "msg": "Invalid symbol."})}) as stub:
        with BinanceRestClient(stub.http_url) as client, pytest.raises(ExchangeError) as excinfo:
            client.recent_trades("NOPE1")
    error = excinfo.value
    assert (error.status, error.code, error.msg) == (400, -1121, "Invalid symbol.")
    assert error.url == stub.http_url + "/api/v3/trades"
    assert "Invalid symbol." in str(error) and stub.http_url in str(error)


def test_unexpected_body_is_an_exchange_error():
    with StubExchange({"/api/v3/trades": (200, {"not": "a list"})}) as stub:
        with BinanceRestClient(stub.http_url) as client, pytest.raises(ExchangeError, match="expected a list"):
            client.recent_trades("BTCUSDT")


def test_closed_port_is_unreachable_and_names_the_url():
    url = f"http://127.0.0.1:{closed_port()}"
    with BinanceRestClient(url, timeout=2) as client, pytest.raises(ExchangeUnreachable) as excinfo:
        client.ping()
    assert excinfo.value.url == url + "/api/v3/ping"
    assert url in str(excinfo.value)
    assert "refused" in excinfo.value.reason.lower()


def test_limit_out_of_range_is_rejected_before_any_request():
    with pytest.raises(ValueError, match="limit"):
        BinanceRestClient("http://127.0.0.1:1").recent_trades("BTCUSDT", limit=1001)
