"""A Binance-compatible exchange simulator: live deterministic market, REST + streams on one port, faults."""

from crypto_assets.simulator.market import DEFAULT_SYMBOLS, SymbolConfig, Trades, symbol_config
from crypto_assets.simulator.server import Simulator, SimulatorConfig
from crypto_assets.simulator.streams import StreamSettings

__all__ = [
    "DEFAULT_SYMBOLS",
    "Simulator",
    "SimulatorConfig",
    "StreamSettings",
    "SymbolConfig",
    "Trades",
    "symbol_config",
]
