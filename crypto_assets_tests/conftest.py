import pytest

from crypto_assets.exchange.simulator import Simulator, SimulatorConfig, symbol_config

# A listed symbol that never trades: what a client sees for an illiquid market.
SILENT_SYMBOL = "QUIETUSDT"


@pytest.fixture(scope="session")
def simulator():
    """One exchange simulator on 127.0.0.1 for tests that only read from it (no fault injection)."""
    config = SimulatorConfig(symbols=[symbol_config("BTCUSDT"), symbol_config("ETHUSDT"),
                                      symbol_config(SILENT_SYMBOL, trades_per_second=0, burst_probability=0)],
                             history_minutes=5)
    with Simulator(config) as sim:
        yield sim
