import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crypto_assets.exchange.rest import BinanceRestClient, ExchangeError, ExchangeUnreachable
from crypto_assets_tests.ports import free_port


def test_ping_time_and_trades_match_the_exchange(simulator):
    with BinanceRestClient(simulator.rest_url + "/") as client:
        client.ping()
        assert abs(client.server_time() - simulator.clock()) < 5_000
        first = client.first_trade("BTCUSDT")
        trades = client.historical_trades("BTCUSDT", first.trade_id, limit=7)
    assert len(trades) == 7
    ids = [t.trade_id for t in trades]
    assert ids == list(range(first.trade_id, first.trade_id + 7))
    truth = simulator.trades_between("BTCUSDT", trades[0].trade_time, trades[-1].trade_time + 1)
    by_id = dict(zip(truth.id.tolist(), truth.time.tolist()))
    assert all(by_id[t.trade_id] == t.trade_time for t in trades)


def test_binance_error_body_becomes_exchange_error(simulator):
    with BinanceRestClient(simulator.rest_url) as client, pytest.raises(ExchangeError) as excinfo:
        client.historical_trades("NOPE1USDT", 0)
    error = excinfo.value
    assert (error.status, error.code, error.msg) == (400, -1121, "Invalid symbol.")
    assert error.url == simulator.rest_url + "/api/v3/historicalTrades"
    assert "Invalid symbol." in str(error) and simulator.rest_url in str(error)


def test_a_proxy_answering_junk_is_an_exchange_error():
    class Junk(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"not": "a list"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Junk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with BinanceRestClient(f"http://127.0.0.1:{server.server_port}") as client:
            with pytest.raises(ExchangeError, match="historicalTrades"):
                client.historical_trades("BTCUSDT", 0)
    finally:
        server.shutdown()


def test_closed_port_is_unreachable_and_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    with BinanceRestClient(url, timeout=2) as client, pytest.raises(ExchangeUnreachable) as excinfo:
        client.ping()
    assert excinfo.value.url == url + "/api/v3/ping"
    assert url in str(excinfo.value)
    assert "refused" in excinfo.value.reason.lower()


def test_limit_out_of_range_is_rejected_before_any_request():
    with pytest.raises(ValueError, match="limit"):
        BinanceRestClient("http://127.0.0.1:1").historical_trades("BTCUSDT", 0, limit=1001)
