"""The stream path stores every class of symbol Binance lists exactly: BinanceStream -> LiveCapture -> lake against
the simulator at ten times real time, several symbol classes on one connection (BTC-quoted, a meme coin trading up
to 92 billion units at once, 8-decimal prices, 16-decimal products), extreme quantities frequent, every minute
compared with the ground truth trade by trade. One trade of one minute carries a value no lake can hold (the
simulator's bad_value fault): that minute alone is refused, naming the trade and the value, and the capture goes on."""

from decimal import Decimal

import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.exchange.stream import BinanceStream
from crypto_assets.ingest.live_capture import LiveCapture
from crypto_assets.ingest.stored_minutes import Outcome
from crypto_assets.lake import LocalLake
from crypto_assets.lake.schema import trades_to_table
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets_tests.exchange._clocks import FastClock
from crypto_assets_tests.ground_truth import truth

pytestmark = pytest.mark.integration

SPEED = 10
CLASSES = ("BTCUSDT", "ETHBTC", "PEPEUSDT", "DOGEBTC", "WBTCBTC")
T0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS
MINUTES = 2
BAD_SYMBOL, BAD_MINUTE = "ETHBTC", T0 + MINUTE_MS


def test_every_symbol_class_is_captured_exactly_from_the_stream(tmp_path):
    clock = FastClock(T0 - 5_000, SPEED)
    config = SimulatorConfig(symbols=[symbol_config(s, extreme_probability=0.2) for s in CLASSES], history_minutes=2)
    sim = Simulator(config, clock=clock)
    sim.start()
    bad = sim.bad_value(BAD_SYMBOL, at_or_after_ms=BAD_MINUTE + 20_000)
    lake = LocalLake(tmp_path / "lake")
    live = LiveCapture(lake, CLASSES, grace_ms=30_000, clock=lambda: clock() / 1000)  # grace: a loaded CI box
    decided = {}
    stream = BinanceStream(sim.ws_url, list(CLASSES), clock=clock)
    try:
        for record in stream.records():
            for symbol, result in live.feed(record):
                decided[(symbol, result.minute_start_ms)] = result
            if all((s, T0 + MINUTES * MINUTE_MS) in decided for s in CLASSES):
                break
    finally:
        stream.close()
        sim.stop()

    for symbol in CLASSES:
        max_qty = Decimal(symbol_config(symbol).max_qty)
        extremes = 0
        for minute in range(T0, T0 + (MINUTES + 1) * MINUTE_MS, MINUTE_MS):
            result = decided[(symbol, minute)]
            if (symbol, minute) == (BAD_SYMBOL, BAD_MINUTE):
                assert result.outcome == Outcome.REFUSED and not result.ok and lake.read_minute(symbol, minute) is None
                for part in (symbol, minute_key(minute), f"#{bad['trade_id']}", bad["value"]):
                    assert part in result.problems[0], result.problems
                continue
            assert result.outcome == Outcome.WRITTEN and result.ok, (symbol, result.problems)
            expected = truth(sim, symbol, minute, minute + MINUTE_MS)
            stored = lake.read_minute(symbol, minute)
            assert stored.drop_columns("received_at").equals(trades_to_table(expected).drop_columns("received_at"))
            assert Decimal(result.summary.base_volume) == sum((Decimal(t.qty) for t in expected), Decimal(0))
            extremes += any(Decimal(t.qty) == max_qty for t in expected)
        assert extremes > 0, symbol  # the equality above covered max_qty trades
