"""The exchange's universe: generated quiet symbols, and each symbol's lifecycle (halts, delisting).

Quiet symbols (``quiet_symbols(n, seed)``): ``n`` plausible pairs, a pure function of the seed. Seven in eight are
quoted in USDT, the eighth in turn in BTC, FDUSD, USDC, ETH or TRY; names are 5-20 upper-case letters or digits;
each trades 0.01 to 0.5 times a second with many quiet minutes, on a grid that suits its price (about five
significant digits of price, a step of about a hundredth of a typical order). Their seconds are drawn an hour at a
time (``SymbolConfig.hourly_draws``), so that hundreds of them cost little.

A symbol's lifecycle (``Lifecycle``) is a list of stops, each a run of seconds in which it does not trade: a halt
(status ``HALT``, until resumed) or its delisting (status ``BREAK``, for good). A stop starts (and a halt ends) at
the first second nobody can have seen yet (``SymbolMarket`` decides which), so everything read before and after
stays one market: ids stay dense across a stop, klines of stopped minutes have no trade. A delisted symbol can
also be removed from the exchange (``removed``): it then answers as an unknown symbol.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from binance_simulator.hostile import Seconds

FOREVER_S = 2**40
TRADING, HALT, BREAK = "TRADING", "HALT", "BREAK"
OTHER_QUOTES = ("BTC", "FDUSD", "USDC", "ETH", "TRY")  # one quiet symbol in eight is quoted in these, in turn
QUOTE_IN_USD = {"USDT": 1.0, "FDUSD": 1.0, "USDC": 1.0, "BTC": 95_000.0, "ETH": 3_500.0, "TRY": 0.03}
RATE_RANGE = (0.01, 0.5)  # trades a second, log-uniform
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Stop(Seconds):
    """These seconds trade nothing; the symbol's status meanwhile is ``status`` (HALT or BREAK)."""

    status: str

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "from_ms": self.start_s * 1000,
            "until_ms": None if self.end_s == FOREVER_S else self.end_s * 1000,
        }


class Lifecycle:
    """The stops of one symbol. Lists are replaced, never changed in place: readers never see a half-made change."""

    def __init__(self) -> None:
        self.stops: list[Stop] = []
        self.removed = False

    @property
    def current(self) -> Stop | None:
        """The open-ended stop (a halt not resumed, or the delisting), if any."""
        return self.stops[-1] if self.stops and self.stops[-1].end_s == FOREVER_S else None

    def stopped(self, second: int) -> bool:
        return any(s.covers(second) for s in self.stops)

    def status(self, second: int, base: str = TRADING) -> str:
        for s in self.stops:
            if s.covers(second):
                return s.status
        return base

    def stop(self, from_s: int, status: str) -> int:
        """Stop trading from ``from_s`` with ``status``; a halt becomes a delisting from ``from_s``. Returns the
        first second concerned (that of the halt already running when halting again)."""
        current = self.current
        if current is not None and current.status == BREAK:
            raise ValueError("the symbol is delisted")
        if current is not None and status == HALT:
            return current.start_s
        if current is not None:  # delisting a halted symbol: the halt ends where the break starts
            self._end(from_s)
        self.stops = [*self.stops, Stop(from_s, FOREVER_S, status)]
        return from_s

    def resume(self, from_s: int) -> int:
        """End the halt at ``from_s``. Returns that second."""
        current = self.current
        if current is None:
            raise ValueError("the symbol is not halted")
        if current.status == BREAK:
            raise ValueError("the symbol is delisted: it does not resume")
        self._end(from_s)
        return from_s

    def _end(self, from_s: int) -> None:
        *done, s = self.stops
        self.stops = done + ([Stop(s.start_s, from_s, s.status)] if from_s > s.start_s else [])


def quiet_symbols(n: int, seed: int, taken: set[str] | frozenset[str] = frozenset()) -> list[dict]:
    """The settings (``SymbolConfig`` keywords) of ``n`` quiet symbols, none named as in ``taken``."""
    rng = random.Random(f"quiet-symbols/{seed}")
    out, names = [], set(taken)
    for i in range(n):
        quote = OTHER_QUOTES[(i // 8) % len(OTHER_QUOTES)] if i % 8 == 1 else "USDT"
        while True:
            base = "".join(rng.choice(_LETTERS) for _ in range(rng.choice((3, 3, 4, 4, 4, 5, 5, 6, 7, 8))))
            if rng.random() < 0.08:
                base += str(rng.randrange(1, 10))
            if rng.random() < 0.03:
                base = "1000" + base
            symbol = base + quote
            if symbol not in names and base not in QUOTE_IN_USD and 5 <= len(symbol) <= 20:
                break
        names.add(symbol)
        out.append(_quiet_settings(rng, symbol, base, quote))
    return out


def _quiet_settings(rng: random.Random, symbol: str, base: str, quote: str) -> dict:
    price_usd = 10 ** rng.uniform(-4.0, 2.7)
    price = max(price_usd / QUOTE_IN_USD[quote], 1e-6)
    tick_exp = min(max(math.floor(math.log10(price)) - 4, -8), -2)  # about five significant digits of price
    mean_qty = 10 ** rng.uniform(1.0, 2.5) / price_usd  # orders of 10 to 300 USD
    step_exp = min(max(math.floor(math.log10(mean_qty)) - 2, -8), 0)
    step_units = 10 ** (8 + step_exp)
    first_trade_id = rng.randrange(1_000_000, 400_000_000)
    return dict(
        symbol=symbol,
        base_price=price,
        trades_per_second=10 ** rng.uniform(math.log10(RATE_RANGE[0]), math.log10(RATE_RANGE[1])),
        tick_size=_decimal(10 ** (8 + tick_exp)),
        step_size=_decimal(step_units),
        max_qty=_decimal(min(step_units * 10**9, 9_000_000_000 * 10**8)),
        mean_qty=mean_qty,
        volatility_per_second=0.0003,
        mean_fills_per_order=1.3,
        burst_probability=0.0005,  # a sweeping order every half hour or so
        burst_trades=(5, 60),
        quiet_minute_probability=rng.uniform(0.05, 0.4),
        first_trade_id=first_trade_id,
        first_agg_id=first_trade_id * 3 // 4,
        base_asset=base,
        quote_asset=quote,
        hourly_draws=True,
    )


def _decimal(units: int) -> str:
    return "%d.%08d" % divmod(units, 10**8)
