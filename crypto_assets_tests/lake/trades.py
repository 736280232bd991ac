"""Trades for the lake's tests: by hand, and realistic minutes from the simulator's market model (no server)."""

from __future__ import annotations

from binance_simulator.market import Market, symbol_config, units_to_decimal
from crypto_assets.exchange.models import Trade

MINUTE = 1_763_708_460_000  # 2025-11-21 07:01 UTC
MINUTE_MS = 60_000


def trade(
    trade_id: int,
    price: str = "96748.61000000",
    qty: str = "0.00012000",
    offset_ms: int = 0,
    symbol: str = "BTCUSDT",
    is_buyer_maker: bool = False,
    received_at: int | None = None,
    minute: int = MINUTE,
) -> Trade:
    return Trade(symbol, trade_id, price, qty, minute + offset_ms, is_buyer_maker, received_at)


def simulated_minute(minute: int = MINUTE, symbol: str = "BTCUSDT", rate: float | None = None) -> list[Trade]:
    overrides = {} if rate is None else {"trades_per_second": rate}
    market = Market([symbol_config(symbol, **overrides)], seed=1, origin_ms=minute - 10 * MINUTE_MS)
    t = market[symbol].trades_between(minute, minute + MINUTE_MS - 1)
    return [
        Trade(symbol, i, units_to_decimal(p), units_to_decimal(q), ms, m, ms + 3)
        for i, p, q, ms, m in zip(
            t.id.tolist(), t.price.tolist(), t.qty.tolist(), t.time.tolist(), t.is_buyer_maker.tolist()
        )
    ]
