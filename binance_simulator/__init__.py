"""A Binance-compatible exchange simulator: live deterministic market, REST + streams on one port, faults."""

from binance_simulator.market import DEFAULT_SYMBOLS, SymbolConfig, Trades, symbol_config
from binance_simulator.server import Simulator, SimulatorConfig
from binance_simulator.streams import StreamSettings

__all__ = [
    "DEFAULT_SYMBOLS",
    "Simulator",
    "SimulatorConfig",
    "StreamSettings",
    "SymbolConfig",
    "Trades",
    "symbol_config",
]
