"""The exchange simulator's ground truth as the project's own records, for tests that compare against it."""

from binance_simulator import Simulator
from binance_simulator.market import units_to_decimal
from crypto_assets.exchange.models import Trade

MINUTE_MS = 60_000


def truth(sim: Simulator, symbol: str, start_ms: int, end_ms: int) -> list[Trade]:
    """Every trade of ``symbol`` with start_ms <= time < end_ms, as REST would deliver it (no received_at)."""
    t = sim.trades_between(symbol, start_ms, end_ms)
    return [
        Trade(symbol, int(i), units_to_decimal(int(p)), units_to_decimal(int(q)), int(ms), bool(m))
        for i, ms, p, q, m in zip(
            t.id.tolist(), t.time.tolist(), t.price.tolist(), t.qty.tolist(), t.is_buyer_maker.tolist()
        )
    ]


def past_minute(sim: Simulator, minutes_ago: int) -> int:
    """Start of the exchange minute ``minutes_ago`` minutes before the current one."""
    return (sim.clock() // MINUTE_MS - minutes_ago) * MINUTE_MS
