import pytest
from dagster import DagsterEventType, Failure, materialize

from crypto_assets.defs.market_snapshot import market_snapshot, utc_iso
from crypto_assets.defs.resources import ExchangeResource
from crypto_assets.exchange.simulator.market import units_to_decimal
from crypto_assets_tests.conftest import SILENT_SYMBOL
from crypto_assets_tests.ports import free_port


def exchange(rest_url: str, symbols: list[str]) -> ExchangeResource:
    return ExchangeResource(rest_url=rest_url, ws_url="ws://127.0.0.1:1", symbols=symbols)


def materialization_metadata(result):
    [event] = [e for e in result.all_events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def test_snapshot_shows_the_exchanges_latest_trades(simulator):
    result = materialize([market_snapshot], resources={"exchange": exchange(simulator.rest_url, ["BTCUSDT", "ETHUSDT"])})
    assert result.success
    metadata = materialization_metadata(result)
    table = metadata["latest_trades"].splitlines()
    assert table[0].startswith("| trade time (UTC) | symbol | trade id | price")
    assert len(table) == 2 + 20
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert metadata[f"{symbol}_trades_fetched"] == 50
        last_id = metadata[f"{symbol}_last_trade_id"]
        # The trade shown is the exchange's own: same id, price and time in the simulator's ground truth.
        truth = simulator.trades_between(symbol, 0, simulator.clock() + 1)
        position = last_id - int(truth.id[0])
        assert metadata[f"{symbol}_last_price"] == pytest.approx(float(units_to_decimal(int(truth.price[position]))))
        assert metadata[f"{symbol}_last_trade_time"] == utc_iso(int(truth.time[position]))
    # Every row of the table is a real trade: time, price, quantity and taker side as the exchange recorded them.
    for line in table[2:]:
        time_, symbol, trade_id, price, qty, side = [cell.strip() for cell in line.strip("|").split("|")]
        truth = simulator.trades_between(symbol, 0, simulator.clock() + 1)
        i = int(trade_id) - int(truth.id[0])
        assert (time_, price, qty, side) == (
            utc_iso(int(truth.time[i])), units_to_decimal(int(truth.price[i])), units_to_decimal(int(truth.qty[i])),
            "sell" if truth.is_buyer_maker[i] else "buy")


def test_symbol_without_recent_trades_is_reported_not_skipped(simulator):
    result = materialize([market_snapshot], resources={"exchange": exchange(simulator.rest_url, [SILENT_SYMBOL])})
    metadata = materialization_metadata(result)
    assert metadata[f"{SILENT_SYMBOL}_trades_fetched"] == 0
    assert f"{SILENT_SYMBOL}_last_price" not in metadata
    assert "(no trades returned)" in metadata["latest_trades"]


def test_unreachable_exchange_fails_naming_the_url():
    rest_url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Failure) as excinfo:
        materialize([market_snapshot], resources={"exchange": exchange(rest_url, ["BTCUSDT"])})
    assert rest_url in excinfo.value.description
    assert "\n" not in excinfo.value.description


def test_exchange_error_fails_naming_the_symbol(simulator):
    with pytest.raises(Failure) as excinfo:
        materialize([market_snapshot], resources={"exchange": exchange(simulator.rest_url, ["NOSUCH1USDT"])})
    assert "NOSUCH1USDT" in excinfo.value.description
    assert "Invalid symbol." in excinfo.value.description
