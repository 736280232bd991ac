"""A deterministic, live market per symbol: the single source of every trade the simulator reports.

Every trade is a pure function of ``(seed, symbol, second)``: the stream, ``historicalTrades``, ``aggTrades``,
klines and the tests' ground truth all read the same arrays, so they agree by construction.

The model, one second at a time (absolute epoch seconds, nothing before ``origin_ms``):
- a mid price follows a geometric random walk, one step per second, rounded to the symbol's tick;
- taker orders arrive as a Poisson process; each taker order is one aggregate trade (one time, one price, one
  side) made of a geometric number of fills (trades); Binance aggregates exactly such groups;
- a burst is one taker order sweeping several price levels in a single millisecond: hundreds of trades;
- a quiet minute has no trades at all (the mid price still walks);
- a symbol's history starts with a trade: its first second has at least one taker order and its first minute is
  never quiet, so its first 1m kline holds its first trade, as on Binance after a listing; except a symbol that
  never trades (rate 0, or every minute quiet: ``quiet_minute_probability`` 1), which has no trade at all;
- hostile mode (``hostile.py``) adds bursts (10-50x the rate for a few seconds) and empty minutes, only to seconds
  not generated yet, so everything read before and after stays one market;
- a symbol's lifecycle (``universe.py``: halts, delisting) stops its trading the same way, from the first second
  not generated yet: ids stay dense across a stop, and its minutes have klines without trades;
- a symbol with ``hourly_draws`` (the generated quiet symbols) draws its seconds an hour at a time: one generator
  per hour instead of one per second, its index and walk computed with numpy over whole runs of seconds, so that
  its history costs about a hundredth; still a pure function of ``(seed, symbol, second)``, drawn differently;
- prices and quantities are integers in units of 1e-8 (Binance's 8 decimals), on the symbol's grid (tickSize,
  stepSize) and inside its filters (PRICE_FILTER, LOT_SIZE); now and then (``extreme_probability`` per second) a
  trade is exactly ``max_qty`` and another exactly ``min_qty``;
- sums are exact: quote amounts (price x qty, up to 16 decimals, beyond int64 for meme coins) are Python integers.

Trade ids are dense per symbol: the first trade of second ``s`` has id ``first_trade_id + trades before s``. A
symbol listed during the simulator's history (``Market(listings=...)``) starts there with trade and aggregate ids 0,
as a new spot listing does; the others start their history at their configured (realistically large) first ids.
``Market.list_symbol`` lists one while the market runs: its history starts at the next second, with ids 0.
The per-second counts are computed once, in order, into a growing index; a second's full trade arrays are
regenerated from the seed on demand and kept in a small LRU cache.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from binance_simulator.endpoints import MINUTE_MS
from binance_simulator.hostile import HostileMarket
from binance_simulator.universe import BREAK, HALT, Lifecycle

UNITS = 100_000_000  # 1e8: prices and quantities are integers in units of 1e-8
MAX_UNITS = 2**63 - 1  # Binance keeps prices and quantities as int64 counts of 1e-8: 92,233,720,368.54775807
DEFAULT_MAX_PRICE = "1000000.00000000"
DEFAULT_MAX_QTY = "9000.00000000"


@dataclass(frozen=True)
class SymbolConfig:
    """How one symbol trades. Rates are averages; bursts, quiet minutes and extreme quantities come on top.

    The grid is Binance's exchangeInfo filters, as decimal strings of at most 8 decimals (Binance writes exactly 8):
    PRICE_FILTER ``tick_size``, ``min_price``, ``max_price`` and LOT_SIZE ``step_size``, ``min_qty``, ``max_qty``.
    A minimum left out is one tick (step); a maximum left out is 1,000,000 (9,000) rounded down to the grid.
    """

    symbol: str
    base_price: float
    trades_per_second: float
    tick_size: str = "0.01"
    step_size: str = "0.00001"
    mean_qty: float = 0.01
    volatility_per_second: float = 0.0002
    mean_fills_per_order: float = 1.5
    burst_probability: float = 0.01  # chance per second of one sweeping taker order
    burst_trades: tuple[int, int] = (100, 600)  # trades in one burst, all in one millisecond
    quiet_minute_probability: float = 0.02  # chance that a whole minute has no trade
    first_trade_id: int = 1_000_000
    first_agg_id: int = 500_000
    status: str = "TRADING"
    base_asset: str = ""
    quote_asset: str = "USDT"
    min_price: str | None = None
    max_price: str | None = None
    min_qty: str | None = None
    max_qty: str | None = None
    extreme_probability: float = 0.01  # chance per second of a max_qty trade, and (apart) of a min_qty trade
    hourly_draws: bool = False  # seconds drawn an hour at a time: cheap for quiet symbols (see the module docstring)

    @property
    def tick_units(self) -> int:
        return decimal_to_units(self.tick_size)

    @property
    def step_units(self) -> int:
        return decimal_to_units(self.step_size)

    @property
    def min_price_units(self) -> int:
        return decimal_to_units(self.min_price) if self.min_price else self.tick_units

    @property
    def max_price_units(self) -> int:
        return decimal_to_units(self.max_price) if self.max_price else _round_down(DEFAULT_MAX_PRICE, self.tick_units)

    @property
    def min_qty_units(self) -> int:
        return decimal_to_units(self.min_qty) if self.min_qty else self.step_units

    @property
    def max_qty_units(self) -> int:
        return decimal_to_units(self.max_qty) if self.max_qty else _round_down(DEFAULT_MAX_QTY, self.step_units)

    def validate(self) -> None:
        """Binance's own constraints on a symbol's filters: every bound on its grid, 0 < min <= max, all int64.
        (Binance has no rule on tick x step: price x qty may need up to 16 decimals.)"""
        if not (self.symbol.isalnum() and self.symbol.isupper() and 5 <= len(self.symbol) <= 20):
            raise ValueError(f"symbol {self.symbol!r} must be 5-20 upper-case letters or digits")
        for name, grid, low, high in (
            ("price", self.tick_units, self.min_price_units, self.max_price_units),
            ("qty", self.step_units, self.min_qty_units, self.max_qty_units),
        ):
            size = "tick_size" if name == "price" else "step_size"
            if grid <= 0:
                raise ValueError(f"{self.symbol}: {size} must be > 0")
            if low % grid or high % grid:
                raise ValueError(
                    f"{self.symbol}: min_{name} and max_{name} must be multiples of {size} "
                    f"{units_to_decimal(grid)}, got {units_to_decimal(low)} and {units_to_decimal(high)}"
                )
            if not 0 < low <= high <= MAX_UNITS:
                raise ValueError(
                    f"{self.symbol}: need 0 < min_{name} <= max_{name} <= 92233720368.54775807, got "
                    f"{units_to_decimal(low)} and {units_to_decimal(high)}"
                )
        if self.trades_per_second < 0 or self.base_price <= 0:
            raise ValueError(f"{self.symbol}: trades_per_second must be >= 0 and base_price > 0")


def _round_down(text: str, grid: int) -> int:
    units = decimal_to_units(text)
    return units - units % grid if grid > 0 else units


# The shipped symbols, with exchangeInfo filters as on Binance spot (approximately; read live values from Binance).
# Rates are per second; first ids are arbitrary but realistic in size.
DEFAULT_SYMBOLS: dict[str, SymbolConfig] = {
    c.symbol: c
    for c in (
        SymbolConfig(
            "BTCUSDT",
            95_000.0,
            40.0,
            tick_size="0.01000000",
            min_price="0.01000000",
            max_price="1000000.00000000",
            step_size="0.00001000",
            min_qty="0.00001000",
            max_qty="9000.00000000",
            mean_qty=0.01,
            first_trade_id=5_100_000_000,
            first_agg_id=3_600_000_000,
            quiet_minute_probability=0.0,
            base_asset="BTC",
        ),
        SymbolConfig(
            "ETHUSDT",
            3_500.0,
            20.0,
            tick_size="0.01000000",
            min_price="0.01000000",
            max_price="1000000.00000000",
            step_size="0.00010000",
            min_qty="0.00010000",
            max_qty="9000.00000000",
            mean_qty=0.5,
            first_trade_id=2_900_000_000,
            first_agg_id=2_100_000_000,
            quiet_minute_probability=0.01,
            base_asset="ETH",
        ),
        SymbolConfig(
            "SOLUSDT",
            200.0,
            5.0,
            tick_size="0.01000000",
            min_price="0.01000000",
            max_price="10000.00000000",
            step_size="0.00100000",
            min_qty="0.00100000",
            max_qty="9000000.00000000",
            mean_qty=5.0,
            first_trade_id=1_300_000_000,
            first_agg_id=900_000_000,
            quiet_minute_probability=0.05,
            base_asset="SOL",
        ),
        # BTC-quoted: price x qty needs 9 decimals on most trades (tick 1e-5 x step 1e-4).
        SymbolConfig(
            "ETHBTC",
            0.036,
            3.0,
            tick_size="0.00001000",
            min_price="0.00001000",
            max_price="922327.00000000",
            step_size="0.00010000",
            min_qty="0.00010000",
            max_qty="100000.00000000",
            mean_qty=0.3,
            first_trade_id=480_000_000,
            first_agg_id=330_000_000,
            quiet_minute_probability=0.02,
            base_asset="ETH",
            quote_asset="BTC",
        ),
        # A meme coin: prices use all 8 decimals, quantities have 11 integer digits at the top of LOT_SIZE (int64's
        # 92,233,720,368), so price_units x qty_units and a minute's volume exceed int64.
        SymbolConfig(
            "PEPEUSDT",
            0.00001,
            8.0,
            tick_size="0.00000001",
            min_price="0.00000001",
            max_price="1.00000000",
            step_size="1.00000000",
            min_qty="1.00000000",
            max_qty="92233720368.00000000",
            mean_qty=30_000_000.0,
            volatility_per_second=0.0004,
            first_trade_id=350_000_000,
            first_agg_id=250_000_000,
            quiet_minute_probability=0.01,
            base_asset="PEPE",
        ),
        # Priced in satoshis: 8-decimal prices of a few hundred ticks.
        SymbolConfig(
            "DOGEBTC",
            0.0000025,
            1.0,
            tick_size="0.00000001",
            min_price="0.00000001",
            max_price="1.00000000",
            step_size="1.00000000",
            min_qty="1.00000000",
            max_qty="90000000.00000000",
            mean_qty=2_000.0,
            volatility_per_second=0.0004,
            first_trade_id=60_000_000,
            first_agg_id=40_000_000,
            quiet_minute_probability=0.05,
            base_asset="DOGE",
            quote_asset="BTC",
        ),
        # Finer than Binance's own grid for this pair: tick and step both 1e-8, so price x qty needs all 16 decimals.
        SymbolConfig(
            "WBTCBTC",
            0.9998,
            2.0,
            tick_size="0.00000001",
            min_price="0.00000001",
            max_price="1000.00000000",
            step_size="0.00000001",
            min_qty="0.00000001",
            max_qty="9000.00000000",
            mean_qty=0.05,
            volatility_per_second=0.00002,
            first_trade_id=12_000_000,
            first_agg_id=9_000_000,
            quiet_minute_probability=0.05,
            base_asset="WBTC",
            quote_asset="BTC",
        ),
    )
}

# Quote assets recognised at the end of an unknown symbol; the longest match wins.
_QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


def symbol_config(symbol: str, **overrides) -> SymbolConfig:
    """The default configuration for ``symbol``. A symbol we have no defaults for is a generic pair with full
    filters: a USDT-like pair priced around 100 (tick 0.01, step 0.001), or, quoted in a coin (BTC, ETH, BNB),
    one priced around 0.0005 in it (tick 1e-8, step 0.01)."""
    base = DEFAULT_SYMBOLS.get(symbol)
    if base is None:
        quote = max((q for q in _QUOTE_ASSETS if symbol.endswith(q) and symbol != q), key=len, default="USDT")
        ids = dict(
            first_trade_id=100_000_000 + zlib.crc32(symbol.encode()) % 100_000_000,
            base_asset=symbol.removesuffix(quote) if symbol.endswith(quote) else symbol,
            quote_asset=quote,
        )
        if quote in ("BTC", "ETH", "BNB"):
            base = SymbolConfig(
                symbol,
                0.0005,
                2.0,
                tick_size="0.00000001",
                min_price="0.00000001",
                max_price="1000.00000000",
                step_size="0.01000000",
                min_qty="0.01000000",
                max_qty="9000000.00000000",
                mean_qty=50.0,
                **ids,
            )
        else:
            base = SymbolConfig(
                symbol,
                100.0,
                5.0,
                tick_size="0.01000000",
                min_price="0.01000000",
                max_price="1000000.00000000",
                step_size="0.00100000",
                min_qty="0.00100000",
                max_qty="9000000.00000000",
                mean_qty=1.0,
                **ids,
            )
    cfg = SymbolConfig(**{**base.__dict__, "symbol": symbol, **overrides})
    cfg.validate()
    return cfg


def decimal_to_units(text: str) -> int:
    """'0.01' -> 1_000_000 (units of 1e-8), exactly."""
    whole, _, frac = text.partition(".")
    if len(frac) > 8:
        raise ValueError(f"{text!r} has more than 8 decimals")
    if not (whole or frac) or not (whole + frac).isdigit():
        raise ValueError(f"{text!r} is not a decimal number")
    return int(whole or 0) * UNITS + int((frac + "00000000")[:8])


def units_to_decimal(units: int) -> str:
    """1_000_000 -> '0.01000000': Binance's 8-decimal strings."""
    return "%d.%08d" % divmod(units, UNITS)


def seeded_rng(*words: int) -> np.random.Generator:
    """``np.random.default_rng(list(words))``, the same generator at two thirds of the cost (the market seeds several
    per second): words that fit 32 bits go to SeedSequence as one uint32 array, which is how it reads such a list."""
    if all(0 <= w <= 0xFFFFFFFF for w in words):
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(np.array(words, dtype=np.uint32))))
    return np.random.default_rng(list(words))


def truncated_quote(exact: int) -> int:
    """An exact quote amount in units of 1e-16 (price units x qty units) -> units of 1e-8, truncated toward zero.

    How Binance renders a quote amount with more than 8 decimals (REST ``quoteQty``, kline ``q`` / ``Q``) is not
    documented; this is inferred: Binance keeps amounts as int64 counts of 1e-8, and integer division truncates."""
    return exact // UNITS  # amounts are never negative: floor is truncation toward zero


def exact_sum(values: np.ndarray) -> int:
    """The sum of non-negative int64s as a Python int: numpy's sum where it cannot wrap, Python's otherwise."""
    if not len(values):
        return 0
    if int(values.max()) * len(values) < 2**63:
        return int(values.sum())
    return sum(values.tolist())


@dataclass
class Trades:
    """Trades of one symbol as parallel arrays, ascending by id (and so by time)."""

    id: np.ndarray  # int64
    time: np.ndarray  # int64, ms
    price: np.ndarray  # int64, units of 1e-8
    qty: np.ndarray  # int64, units of 1e-8
    is_buyer_maker: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.id)

    def slice(self, start: int, stop: int | None = None) -> Trades:
        return Trades(
            self.id[start:stop],
            self.time[start:stop],
            self.price[start:stop],
            self.qty[start:stop],
            self.is_buyer_maker[start:stop],
        )

    def quote_qty(self) -> list[int]:
        """REST ``quoteQty`` in units of 1e-8: the exact price x qty (up to 16 decimals, computed with Python ints:
        it can exceed int64) truncated to 8 decimals (see ``truncated_quote``)."""
        return [truncated_quote(p * q) for p, q in zip(self.price.tolist(), self.qty.tolist())]

    @staticmethod
    def concat(parts: list[Trades]) -> Trades:
        if not parts:
            return EMPTY_TRADES
        if len(parts) == 1:
            return parts[0]
        return Trades(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in ("id", "time", "price", "qty", "is_buyer_maker"))
        )


EMPTY_TRADES = Trades(
    np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool)
)


@dataclass
class AggTrades:
    """Aggregate trades: one per (taker order, price level), as Binance groups them."""

    agg_id: np.ndarray
    first_id: np.ndarray
    last_id: np.ndarray
    time: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    is_buyer_maker: np.ndarray

    def __len__(self) -> int:
        return len(self.agg_id)

    def slice(self, start: int, stop: int | None = None) -> AggTrades:
        return AggTrades(*(getattr(self, f)[start:stop] for f in self._fields()))

    @staticmethod
    def _fields() -> tuple[str, ...]:
        return ("agg_id", "first_id", "last_id", "time", "price", "qty", "is_buyer_maker")

    @staticmethod
    def concat(parts: list[AggTrades]) -> AggTrades:
        if len(parts) == 1:
            return parts[0]
        return AggTrades(
            *(
                np.concatenate([getattr(p, f) for p in parts]) if parts else np.empty(0, np.int64)
                for f in AggTrades._fields()
            )
        )


@dataclass(frozen=True)
class _Series:
    """Where one kind of row (trades or aggregate trades) lives in the index and in a second's block."""

    block: str  # attribute of _SecondBlock
    id_field: str
    counts: str  # per-second counts in _Index
    starts: str  # per-second first ids in _Index
    first_id: str  # attribute of SymbolConfig
    concat: Callable

    def empty(self):
        return self.concat([])


TRADE_SERIES = _Series("trades", "id", "trade_counts", "trade_starts", "first_trade_id", Trades.concat)
AGG_SERIES = _Series("aggs", "agg_id", "agg_counts", "agg_starts", "first_agg_id", AggTrades.concat)


@dataclass
class _SecondBlock:
    trades: Trades
    aggs: AggTrades


@dataclass(frozen=True)
class Kline:
    """One kline in units of 1e-8 (Python ints: a meme coin's minute volume exceeds int64). The quote volumes are
    the exact sums of price x qty truncated to 8 decimals, as Binance renders them (``truncated_quote``)."""

    open_time: int
    close_time: int
    first_id: int  # -1 when the kline has no trade
    last_id: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    count: int
    taker_buy_volume: int
    taker_buy_quote_volume: int


HOUR_S = 3600


@dataclass(frozen=True)
class _HourDraws:
    """One hour's draws of an ``hourly_draws`` symbol, before the first trade of a history, hostile bursts and stops
    apply: per second its price step, taker orders (their fills) and sweeping order if any; per minute its quiet
    draw."""

    z: np.ndarray  # 3600 price steps (float32, int32 below: an hour's draws take about 60 kB)
    quiet: np.ndarray  # 60 bools
    order_starts: np.ndarray  # 3601 offsets into fills
    fills: np.ndarray  # fills of each taker order, in order
    bursts: dict[int, tuple[int, int]]  # second of the hour -> (trades, price levels) of its sweeping order
    trades: np.ndarray  # 3600 trade counts
    aggs: np.ndarray  # 3600 aggregate trade counts


_NO_FILLS = np.empty(0, np.int64)


@dataclass
class _Index:
    """Per-second counts from the origin on, extended in order as the wall clock advances."""

    origin_s: int
    trade_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    agg_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # the walk in units, not yet on the grid (``hourly_draws``: its natural logarithm)
    mids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    trade_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # first id of each second
    agg_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    size: int = 0  # seconds indexed


class SymbolMarket:
    """The market of one symbol."""

    def __init__(
        self, cfg: SymbolConfig, seed: int, origin_ms: int, cache_trades: int = 2_000_000, cache_seconds: int = 20_000
    ):
        cfg.validate()
        self.cfg = cfg
        self.seed = seed
        self.origin_ms = origin_ms - origin_ms % 1000
        self._key = zlib.crc32(cfg.symbol.encode())
        self._index = _Index(origin_s=self.origin_ms // 1000)
        self._lock = threading.RLock()
        self._cache: OrderedDict[int, _SecondBlock] = OrderedDict()
        self._stats: dict[int, _Stats] = {}  # per-second kline statistics (small; kept for the process's life)
        self._cached_trades = 0
        self._cache_budget = cache_trades
        # Also a bound on cached seconds: a second of a few trades costs ~2 kB of arrays, so a slow symbol would
        # otherwise keep days of seconds (~250 MB a day) under the trade budget.
        self._cache_seconds = cache_seconds
        tick = cfg.tick_units
        self._tick = tick
        self._min_price, self._max_price = cfg.min_price_units, cfg.max_price_units
        self._mid0 = self._on_price_grid(cfg.base_price * UNITS)
        self._agg_rate = cfg.trades_per_second / cfg.mean_fills_per_order
        self._fill_p = 1.0 / cfg.mean_fills_per_order
        step = cfg.step_units
        self._mean_qty_steps = max(1.0, cfg.mean_qty * UNITS / step)
        self._min_qty_steps, self._max_qty_steps = cfg.min_qty_units // step, cfg.max_qty_units // step
        self.hostile = HostileMarket(seed, self._key)
        # A symbol that trades at all starts its history with a trade (see the module docstring).
        self._trades_at_all = self._agg_rate > 0 and cfg.quiet_minute_probability < 1
        self._quiet_drawn: tuple[int, bool] = (-1, False)  # (minute, its quiet draw), the last one drawn
        self.lifecycle = Lifecycle()
        self._draws: OrderedDict[int, _HourDraws] = OrderedDict()  # hourly_draws: the last hours drawn

    def _first_unseen_s(self, now_ms: int, from_origin: bool = False) -> int:
        """The first second nobody can have seen yet: the later of the first second not indexed and the second
        after ``now_ms`` (or the origin, with ``from_origin`` on a fresh market)."""
        idx = self._index
        if from_origin and idx.size == 0:
            return idx.origin_s
        return max(idx.origin_s + idx.size, now_ms // 1000 + 1)

    def set_hostile(self, enabled: bool, now_ms: int, hostile_seed: int = 0, from_origin: bool = False) -> int:
        """Switch hostile market behaviour on or off from the first second nobody can have seen yet. Returns that
        second."""
        with self._lock:
            first = self._first_unseen_s(now_ms, from_origin)
            if enabled:
                return self.hostile.start(first, hostile_seed)
            self.hostile.stop(first)
            return first

    # ---- lifecycle: each returns the first second concerned -----------------------------------------------------
    def halt(self, now_ms: int) -> int:
        """No trade from the first second not seen yet on (status HALT), until ``resume``."""
        with self._lock:
            return self.lifecycle.stop(self._first_unseen_s(now_ms), HALT)

    def resume(self, now_ms: int) -> int:
        with self._lock:
            return self.lifecycle.resume(self._first_unseen_s(now_ms))

    def delist(self, now_ms: int) -> int:
        """No trade ever again from the first second not seen yet on (status BREAK)."""
        with self._lock:
            return self.lifecycle.stop(self._first_unseen_s(now_ms), BREAK)

    def status(self, ms: int) -> str:
        """exchangeInfo's ``status`` at ``ms``: TRADING (or the configured status), HALT or BREAK."""
        return self.lifecycle.status(ms // 1000, self.cfg.status)

    def trades_in_second(self, second: int) -> int:
        """How many trades ``second`` holds (indexing up to it)."""
        if second < self._index.origin_s:
            return 0
        self._ensure_indexed(second)
        return int(self._index.trade_counts[second - self._index.origin_s])

    def _on_price_grid(self, units: float) -> int:
        """The nearest price on the tick grid inside [min_price, max_price]."""
        return min(max(int(round(units / self._tick)) * self._tick, self._min_price), self._max_price)

    # ---- the random shape of one second ------------------------------------------------------------------------
    def _quiet_minute(self, minute: int) -> bool:
        if minute == self._index.origin_s // 60 and self._trades_at_all:
            return False  # the first minute holds the first trade
        if self.hostile.windows and self.hostile.empty_minute(minute):
            return True
        if self.cfg.hourly_draws:
            return bool(self._hour_draws(minute // 60).quiet[minute % 60])
        if self.cfg.quiet_minute_probability <= 0:
            return False
        drawn = self._quiet_drawn  # seconds are shaped in order: one draw serves a minute's 60 seconds
        if drawn[0] != minute:
            rng = seeded_rng(self.seed, self._key, minute, 2)
            drawn = self._quiet_drawn = (minute, bool(rng.random() < self.cfg.quiet_minute_probability))
        return drawn[1]

    def _shape(self, second: int) -> tuple[float, np.ndarray, int]:
        """(price step z, fills per aggregate, number of trailing aggregates that form a burst)."""
        if self.cfg.hourly_draws:
            return self._shape_drawn_by_hour(second)
        rng = seeded_rng(self.seed, self._key, second, 0)
        z = float(rng.standard_normal())
        if self._quiet_minute(second // 60) or self._stopped(second):
            return z, np.empty(0, np.int64), 0
        rate = self._agg_rate * (self.hostile.rate_multiplier(second) if self.hostile.windows else 1)
        n_orders = int(rng.poisson(rate))
        if n_orders == 0 and second == self._index.origin_s and self._trades_at_all:
            n_orders = 1  # a history starts with a trade
        fills = rng.geometric(self._fill_p, n_orders).astype(np.int64) if n_orders else np.empty(0, np.int64)
        burst_aggs = 0
        if rng.random() < self.cfg.burst_probability:
            lo, hi = self.cfg.burst_trades
            total = int(rng.integers(lo, hi + 1))
            levels = int(rng.integers(2, 9))
            per_level = np.full(levels, total // levels, np.int64)
            per_level[: total % levels] += 1
            fills = np.concatenate([fills, per_level])
            burst_aggs = levels
        return z, fills, burst_aggs

    def _stopped(self, second: int) -> bool:
        return bool(self.lifecycle.stops) and self.lifecycle.stopped(second)

    def _hour_draws(self, hour: int) -> _HourDraws:
        with self._lock:
            draws = self._draws.get(hour)
            if draws is not None:
                return draws
        cfg = self.cfg
        rng = seeded_rng(self.seed, self._key, hour, 6)
        z = rng.standard_normal(HOUR_S, dtype=np.float32)
        quiet = rng.random(60) < cfg.quiet_minute_probability
        burst_at = np.flatnonzero(rng.random(HOUR_S) < cfg.burst_probability)
        burst_trades = rng.integers(cfg.burst_trades[0], cfg.burst_trades[1] + 1, len(burst_at))
        burst_levels = np.minimum(rng.integers(2, 9, len(burst_at)), burst_trades)
        orders = rng.poisson(self._agg_rate, HOUR_S).astype(np.int32)
        fills = rng.geometric(self._fill_p, int(orders.sum())).astype(np.int64)
        order_starts = np.concatenate((np.zeros(1, np.int32), np.cumsum(orders, dtype=np.int32)))
        trades = np.diff(np.concatenate(([0], np.cumsum(fills)))[order_starts]).astype(np.int32)
        aggs = orders
        trades[burst_at] += burst_trades
        aggs[burst_at] += burst_levels
        bursts = {int(k): (int(t), int(n)) for k, t, n in zip(burst_at, burst_trades, burst_levels)}
        draws = _HourDraws(z, quiet, order_starts, fills, bursts, trades, aggs)
        with self._lock:
            self._draws[hour] = draws
            while len(self._draws) > 2:
                self._draws.popitem(last=False)
        return draws

    def _shape_drawn_by_hour(self, second: int) -> tuple[float, np.ndarray, int]:
        """``_shape`` of an ``hourly_draws`` symbol: the second's share of its hour's draws. A hostile burst adds
        orders drawn from the second's own generator (a sum of Poisson counts is one at the summed rate)."""
        d, k = self._hour_draws(second // HOUR_S), second % HOUR_S
        z = float(d.z[k])
        if self._quiet_minute(second // 60) or self._stopped(second):
            return z, _NO_FILLS, 0
        fills = d.fills[d.order_starts[k] : d.order_starts[k + 1]]
        multiplier = self.hostile.rate_multiplier(second) if self.hostile.windows else 1
        if multiplier > 1:
            rng = seeded_rng(self.seed, self._key, second, 7)
            extra = rng.geometric(self._fill_p, int(rng.poisson(self._agg_rate * (multiplier - 1))))
            fills = np.concatenate([fills, extra.astype(np.int64)])
        if not len(fills) and second == self._index.origin_s and self._trades_at_all:
            fills = np.ones(1, np.int64)  # a history starts with a trade
        total, levels = d.bursts.get(k, (0, 0))
        if levels:
            per_level = np.full(levels, total // levels, np.int64)
            per_level[: total % levels] += 1
            fills = np.concatenate([fills, per_level])
        return z, fills, levels

    def _mid_units(self, i: int) -> float:
        mid = float(self._index.mids[i])
        return float(np.exp(mid)) if self.cfg.hourly_draws else mid

    # ---- the index ---------------------------------------------------------------------------------------------
    def _ensure_indexed(self, second: int) -> None:
        """Index every second up to and including ``second``."""
        idx = self._index
        need = second - idx.origin_s + 1
        if need <= idx.size:
            return
        with self._lock:
            need = second - idx.origin_s + 1
            if need <= idx.size:
                return
            if need > len(idx.trade_counts):
                cap = max(need + 3600, len(idx.trade_counts) * 5 // 4)  # an hour ahead: not twice the history
                for name in ("trade_counts", "agg_counts", "mids", "trade_starts", "agg_starts"):
                    grown = np.zeros(cap, getattr(idx, name).dtype)
                    grown[: idx.size] = getattr(idx, name)[: idx.size]
                    setattr(idx, name, grown)
            if self.cfg.hourly_draws:
                self._index_by_hour(need)
                return
            i = idx.size
            if i == 0:
                mid, t_start, a_start = float(self._mid0), self.cfg.first_trade_id, self.cfg.first_agg_id
            else:
                mid = idx.mids[i - 1]
                t_start = idx.trade_starts[i - 1] + idx.trade_counts[i - 1]
                a_start = idx.agg_starts[i - 1] + idx.agg_counts[i - 1]
            vol = self.cfg.volatility_per_second
            for i in range(idx.size, need):
                z, fills, _ = self._shape(idx.origin_s + i)
                if i > 0:  # unrounded, so that a price a few hundred ticks high still moves
                    mid = min(max(mid * float(np.exp(vol * z)), self._min_price), self._max_price)
                idx.mids[i] = mid
                idx.trade_starts[i] = t_start
                idx.agg_starts[i] = a_start
                n_trades = int(fills.sum())
                idx.trade_counts[i] = n_trades
                idx.agg_counts[i] = len(fills)
                t_start += n_trades
                a_start += len(fills)
            idx.size = need

    def _index_by_hour(self, need: int) -> None:
        """``_ensure_indexed`` for an ``hourly_draws`` symbol: whole runs of an hour's seconds at once. The walk is
        in logarithms, a running sum (sequential, so the same however the seconds are split into runs); the few
        seconds that differ from their hour's draws (the first of the history, those of a hostile burst) go
        through ``_shape``."""
        idx, cfg = self._index, self.cfg
        lo, hi = float(np.log(self._min_price)), float(np.log(self._max_price))
        i = idx.size
        if i == 0:
            mid, t_start, a_start = float(np.log(self._mid0)), cfg.first_trade_id, cfg.first_agg_id
        else:
            mid = float(idx.mids[i - 1])
            t_start = int(idx.trade_starts[i - 1] + idx.trade_counts[i - 1])
            a_start = int(idx.agg_starts[i - 1] + idx.agg_counts[i - 1])
        while i < need:
            s0 = idx.origin_s + i
            k, n = s0 % HOUR_S, min(HOUR_S - s0 % HOUR_S, need - i)
            s1 = s0 + n
            d = self._hour_draws(s0 // HOUR_S)
            steps = cfg.volatility_per_second * d.z[k : k + n].astype(np.float64)
            trades, aggs = d.trades[k : k + n].astype(np.int64), d.aggs[k : k + n].astype(np.int64)
            for minute in range(s0 // 60, (s1 - 1) // 60 + 1):
                if self._quiet_minute(minute):
                    a, b = max(minute * 60, s0) - s0, min(minute * 60 + 60, s1) - s0
                    trades[a:b], aggs[a:b] = 0, 0
            for stop in self.lifecycle.stops:
                a, b = max(stop.start_s, s0) - s0, min(stop.end_s, s1) - s0
                if a < b:
                    trades[a:b], aggs[a:b] = 0, 0
            special = set(self.hostile.burst_seconds(s0, s1)) if self.hostile.windows else set()
            if s0 == idx.origin_s:
                special.add(s0)
                steps[0] = 0.0  # the history opens at the configured price
            for second in special:
                fills = self._shape(second)[1]
                trades[second - s0], aggs[second - s0] = int(fills.sum()), len(fills)
            walk = np.cumsum(np.concatenate(([mid], steps)))[1:]
            if walk.min() < lo or walk.max() > hi:  # the same sums, held inside the price filter
                x = mid
                for j in range(n):
                    x = min(max(x + float(steps[j]), lo), hi)
                    walk[j] = x
            idx.mids[i : i + n] = walk
            idx.trade_starts[i : i + n] = t_start + np.cumsum(trades) - trades
            idx.agg_starts[i : i + n] = a_start + np.cumsum(aggs) - aggs
            idx.trade_counts[i : i + n], idx.agg_counts[i : i + n] = trades, aggs
            mid, t_start, a_start = float(walk[-1]), t_start + int(trades.sum()), a_start + int(aggs.sum())
            i += n
            idx.size = i

    def _second_of_trade_id(self, trade_id: int) -> int:
        """The second holding ``trade_id`` (which must be indexed)."""
        idx = self._index
        pos = int(np.searchsorted(idx.trade_starts[: idx.size], trade_id, side="right")) - 1
        return idx.origin_s + max(pos, 0)

    # ---- one second's trades -----------------------------------------------------------------------------------
    def _block(self, second: int) -> _SecondBlock:
        with self._lock:
            cached = self._cache.get(second)
            if cached is not None:
                self._cache.move_to_end(second)
                return cached
        self._ensure_indexed(second)
        block = self._generate(second)
        with self._lock:
            self._cache[second] = block
            self._cached_trades += len(block.trades)
            while (self._cached_trades > self._cache_budget or len(self._cache) > self._cache_seconds) and len(
                self._cache
            ) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached_trades -= len(old.trades)
        return block

    def _generate(self, second: int) -> _SecondBlock:
        i = second - self._index.origin_s
        z, fills, burst_aggs = self._shape(second)
        n_aggs = len(fills)
        if n_aggs == 0:
            return _SecondBlock(EMPTY_TRADES, AggTrades.concat([]))
        mid = self._on_price_grid(self._mid_units(i))
        tick = self._tick
        rng = seeded_rng(self.seed, self._key, second, 1)
        n_regular = n_aggs - burst_aggs
        # Regular taker orders: a side each, at the touch or a few ticks through it.
        maker = rng.random(n_regular) < 0.5
        through = rng.geometric(0.7, n_regular).astype(np.int64)  # 1 = at the touch
        sign = np.where(maker, -1, 1)
        price = mid + sign * through * tick
        ms = rng.integers(0, 1000, n_regular)
        if burst_aggs:
            # One taker order sweeping `burst_aggs` levels in a single millisecond.
            b_maker = bool(rng.random() < 0.5)
            b_sign = -1 if b_maker else 1
            levels = np.arange(1, burst_aggs + 1, dtype=np.int64)
            price = np.concatenate([price, mid + b_sign * levels * tick])
            maker = np.concatenate([maker, np.full(burst_aggs, b_maker)])
            ms = np.concatenate([ms, np.full(burst_aggs, int(rng.integers(0, 1000)))])
        price = np.clip(price, self._min_price, self._max_price)
        regular = np.arange(n_aggs) < n_regular
        order = np.argsort(ms, kind="stable")
        ms, price, maker, fills, regular = ms[order], price[order], maker[order], fills[order], regular[order]
        agg_time = second * 1000 + ms.astype(np.int64)

        n_trades = int(fills.sum())
        first = int(self._index.trade_starts[i])
        ends = np.cumsum(fills)
        starts = ends - fills
        qty = self._quantities(rng, second, fills, starts, regular)
        trades = Trades(
            id=np.arange(first, first + n_trades, dtype=np.int64),
            time=np.repeat(agg_time, fills),
            price=np.repeat(price, fills),
            qty=qty,
            is_buyer_maker=np.repeat(maker, fills),
        )
        agg_first = first + starts
        a0 = int(self._index.agg_starts[i])
        aggs = AggTrades(
            agg_id=np.arange(a0, a0 + n_aggs, dtype=np.int64),
            first_id=agg_first,
            last_id=first + ends - 1,
            time=agg_time,
            price=price,
            qty=np.add.reduceat(qty, starts),
            is_buyer_maker=maker,
        )
        return _SecondBlock(trades, aggs)

    def _quantities(
        self, rng: np.random.Generator, second: int, fills: np.ndarray, starts: np.ndarray, regular: np.ndarray
    ) -> np.ndarray:
        """Each trade's qty in units, on the step grid inside [min_qty, max_qty]. A regular fill is at most
        max_qty / 1024 (or / the largest aggregate), so that an aggregate, one taker order, never exceeds max_qty,
        as on Binance (and its qty stays int64). Extremes, drawn from their own generator: with
        ``extreme_probability`` each, one single-fill regular aggregate trades exactly max_qty, one trade min_qty."""
        lo, hi = self._min_qty_steps, self._max_qty_steps
        cap = max(lo, hi // max(1024, int(fills.max())))
        steps = np.rint(rng.lognormal(np.log(self._mean_qty_steps), 1.0, int(fills.sum())))
        steps = np.clip(steps, lo, cap).astype(np.int64)
        extremes = seeded_rng(self.seed, self._key, second, 3)
        p = self.cfg.extreme_probability
        max_roll, min_roll, pick_max, pick_min = extremes.random(4)
        if max_roll < p:
            single = np.flatnonzero(regular & (fills == 1))  # aggregates of one fill, outside a burst
            if len(single):
                steps[starts[single[int(pick_max * len(single))]]] = hi
        if min_roll < p:
            steps[int(pick_min * len(steps))] = lo
        return steps * self.cfg.step_units

    # ---- queries: one walk serves both series (trades and aggregate trades) ------------------------------------
    def _between(self, series: _Series, start_ms: int, end_ms: int, limit: int | None = None):
        start_ms = max(start_ms, self.origin_ms)
        if end_ms <= start_ms:
            return series.empty()
        s0, s1 = start_ms // 1000, (end_ms - 1) // 1000
        self._ensure_indexed(s1)
        counts = getattr(self._index, series.counts)
        parts, got = [], 0
        for s in range(s0, s1 + 1):
            if counts[s - self._index.origin_s] == 0:
                continue
            rows = getattr(self._block(s), series.block)
            if s == s0 or s == s1:
                rows = rows.slice(
                    int(np.searchsorted(rows.time, start_ms, side="left")),
                    int(np.searchsorted(rows.time, end_ms, side="left")),
                )
            if limit is not None:
                rows = rows.slice(0, limit - got)
            parts.append(rows)
            got += len(rows)
            if limit is not None and got >= limit:
                break
        return series.concat(parts)

    def _from_id(self, series: _Series, from_id: int, limit: int, until_ms: int):
        until_s = until_ms // 1000
        if until_s < self._index.origin_s:
            return series.empty()
        self._ensure_indexed(until_s)
        idx = self._index
        counts, starts = getattr(idx, series.counts), getattr(idx, series.starts)
        from_id = max(from_id, getattr(self.cfg, series.first_id))
        s = idx.origin_s + max(int(np.searchsorted(starts[: idx.size], from_id, side="right")) - 1, 0)
        parts, got = [], 0
        while s <= until_s and got < limit:
            if counts[s - idx.origin_s]:
                rows = getattr(self._block(s), series.block)
                lo = int(np.searchsorted(getattr(rows, series.id_field), from_id, side="left"))
                hi = len(rows) if s < until_s else int(np.searchsorted(rows.time, until_ms, side="right"))
                if hi > lo:
                    parts.append(rows.slice(lo, min(hi, lo + limit - got)))
                    got += len(parts[-1])
            s += 1
        return series.concat(parts)

    def _last_id_at(self, series: _Series, ms: int) -> int:
        s = ms // 1000
        if s < self._index.origin_s:
            return getattr(self.cfg, series.first_id) - 1
        self._ensure_indexed(s)
        rows = getattr(self._block(s), series.block)
        start = int(getattr(self._index, series.starts)[s - self._index.origin_s])
        return start + int(np.searchsorted(rows.time, ms, side="right")) - 1

    def _recent(self, series: _Series, limit: int, until_ms: int):
        last = self._last_id_at(series, until_ms)
        first = max(getattr(self.cfg, series.first_id), last - limit + 1)
        return self._from_id(series, first, last - first + 1, until_ms) if last >= first else series.empty()

    def trades_between(self, start_ms: int, end_ms: int) -> Trades:
        """Every trade with start_ms <= time < end_ms (ground truth; ignores the wall clock)."""
        return self._between(TRADE_SERIES, start_ms, end_ms)

    def aggs_between(self, start_ms: int, end_ms: int, limit: int) -> AggTrades:
        """Up to ``limit`` aggregate trades with start_ms <= time < end_ms, oldest first."""
        return self._between(AGG_SERIES, start_ms, end_ms, limit)

    def trades_from_id(self, from_id: int, limit: int, until_ms: int) -> Trades:
        """Up to ``limit`` trades with id >= from_id and time <= until_ms, ascending."""
        return self._from_id(TRADE_SERIES, from_id, limit, until_ms)

    def aggs_from_id(self, from_id: int, limit: int, until_ms: int) -> AggTrades:
        """Up to ``limit`` aggregate trades with aggregate id >= from_id and time <= until_ms, ascending."""
        return self._from_id(AGG_SERIES, from_id, limit, until_ms)

    def last_trade_id_at(self, ms: int) -> int:
        """Id of the last trade with time <= ms (``first_trade_id - 1`` when there is none)."""
        return self._last_id_at(TRADE_SERIES, ms)

    def last_agg_id_at(self, ms: int) -> int:
        """Id of the last aggregate trade with time <= ms (``first_agg_id - 1`` when there is none)."""
        return self._last_id_at(AGG_SERIES, ms)

    def trade_with_id(self, trade_id: int, horizon_s: int = 86_400) -> Trades:
        """The trade with ``trade_id`` (one row), also one still in the future (the market is a pure function of the
        seed), as long as it happens within ``horizon_s`` of the seconds indexed so far."""
        if trade_id < self.cfg.first_trade_id:
            raise ValueError(f"{self.cfg.symbol} has no trade {trade_id}: its first is {self.cfg.first_trade_id}")
        idx = self._index
        give_up = idx.size + horizon_s
        while not idx.size or int(idx.trade_starts[idx.size - 1] + idx.trade_counts[idx.size - 1]) <= trade_id:
            if idx.size >= give_up:
                raise ValueError(f"{self.cfg.symbol} has no trade {trade_id} within {horizon_s} s")
            self._ensure_indexed(idx.origin_s + idx.size + 59)  # a minute at a time
        t = self._block(self._second_of_trade_id(trade_id)).trades
        i = trade_id - int(t.id[0])
        return t.slice(i, i + 1)

    def first_trade_id_from(self, ms: int) -> int:
        """Id of the first trade with time >= ms (it may not have happened yet)."""
        return self.last_trade_id_at(ms - 1) + 1

    def recent_trades(self, limit: int, until_ms: int) -> Trades:
        """The most recent ``limit`` trades with time <= until_ms."""
        return self._recent(TRADE_SERIES, limit, until_ms)

    def recent_aggs(self, limit: int, until_ms: int) -> AggTrades:
        """The most recent ``limit`` aggregate trades with time <= until_ms."""
        return self._recent(AGG_SERIES, limit, until_ms)

    def last_price_before(self, ms: int) -> int:
        """Price of the last trade strictly before ``ms``; the opening mid when there was none."""
        last = self.last_trade_id_at(ms - 1)
        if last < self.cfg.first_trade_id:
            return self._mid0
        t = self._block(self._second_of_trade_id(last)).trades
        return int(t.price[last - int(t.id[0])])

    def kline(self, open_ms: int, interval_ms: int, until_ms: int | None = None, keep_stats: bool = True) -> Kline:
        """The kline of [open_ms, open_ms + interval_ms), computed from the same trades; while it is still open,
        only the trades up to ``until_ms`` (inclusive) count. Whole seconds come from cached per-second
        statistics, so a kline costs the same at 40 or 100,000 trades a second. ``keep_stats`` False: statistics not
        cached yet are computed and not kept (a pass over a whole day that nobody asks for again)."""
        end = open_ms + interval_ms if until_ms is None else min(open_ms + interval_ms, until_ms + 1)
        close_time = open_ms + interval_ms - 1
        start = max(open_ms, self.origin_ms)
        parts: list[_Stats] = []
        if end > start:
            s0, s1 = start // 1000, (end - 1) // 1000
            self._ensure_indexed(s1)
            counts = self._index.trade_counts
            for s in range(s0, s1 + 1):
                if counts[s - self._index.origin_s] == 0:
                    continue
                if start <= s * 1000 and (s + 1) * 1000 <= end:
                    parts.append(self._second_stats(s, keep_stats))
                else:
                    t = self._block(s).trades
                    t = t.slice(
                        int(np.searchsorted(t.time, start, side="left")), int(np.searchsorted(t.time, end, side="left"))
                    )
                    if len(t):
                        parts.append(self._stats_of(t))
        if not parts:
            p = self.last_price_before(open_ms)
            return Kline(open_ms, close_time, -1, -1, p, p, p, p, 0, 0, 0, 0, 0)
        first, last = parts[0], parts[-1]
        return Kline(
            open_time=open_ms,
            close_time=close_time,
            first_id=first.first_id,
            last_id=last.last_id,
            open=first.open,
            high=max(p.high for p in parts),
            low=min(p.low for p in parts),
            close=last.close,
            volume=sum(p.volume for p in parts),
            quote_volume=truncated_quote(sum(p.quote for p in parts)),
            count=sum(p.count for p in parts),
            taker_buy_volume=sum(p.buy_volume for p in parts),
            taker_buy_quote_volume=truncated_quote(sum(p.buy_quote for p in parts)),
        )

    def _second_stats(self, second: int, keep: bool = True) -> _Stats:
        stats = self._stats.get(second)
        if stats is None:
            stats = self._stats_of(self._block(second).trades)
            if keep:
                self._stats[second] = stats
        return stats

    def _stats_of(self, t: Trades) -> _Stats:
        """Exact sums of a run of trades, as Python ints. Quote amounts are price x qty in units of 1e-16, computed
        as ticks x steps (numpy, when no product can wrap int64) or with Python ints (e.g. PEPEUSDT's 1000 ticks x
        92 billion steps), then scaled by tick x step."""
        cfg = self.cfg
        ticks, steps = t.price // cfg.tick_units, t.qty // cfg.step_units
        buy = ~t.is_buyer_maker
        if float(ticks.max()) * float(steps.max()) < 2**62:
            products = ticks * steps
            quote, buy_quote = exact_sum(products), exact_sum(products[buy])
        else:
            products = [a * b for a, b in zip(ticks.tolist(), steps.tolist())]
            quote = sum(products)
            buy_quote = sum(x for x, b in zip(products, buy.tolist()) if b)
        scale = cfg.tick_units * cfg.step_units
        return _Stats(
            count=len(t),
            first_id=int(t.id[0]),
            last_id=int(t.id[-1]),
            open=int(t.price[0]),
            close=int(t.price[-1]),
            high=int(t.price.max()),
            low=int(t.price.min()),
            volume=exact_sum(t.qty),
            quote=quote * scale,
            buy_volume=exact_sum(t.qty[buy]),
            buy_quote=buy_quote * scale,
        )


@dataclass(frozen=True)
class _Stats:
    """What a kline needs from a run of trades, all exact integers: units of 1e-8, quotes in units of 1e-16."""

    count: int
    first_id: int
    last_id: int
    open: int
    close: int
    high: int
    low: int
    volume: int
    quote: int
    buy_volume: int
    buy_quote: int


class Market:
    """All symbols of the simulated exchange."""

    def __init__(self, symbols: list[SymbolConfig], seed: int, origin_ms: int, listings: dict[str, int] | None = None):
        """``origin_ms``: the start of every symbol's history (floored to the minute), except the symbols of
        ``listings`` ({symbol: listing time in ms}), whose history starts at their listing minute with trade and
        aggregate ids 0: nothing of them exists before (no trade, no kline)."""
        if not symbols:
            raise ValueError("the market needs at least one symbol")
        listings = dict(listings or {})
        unknown = set(listings) - {cfg.symbol for cfg in symbols}
        if unknown:
            raise ValueError(f"listed symbols not in the market: {', '.join(sorted(unknown))}")
        self.seed = seed
        self.origin_ms = origin_ms - origin_ms % MINUTE_MS
        self.listings = {s: ms - ms % MINUTE_MS for s, ms in listings.items()}
        self.symbols: dict[str, SymbolMarket] = {}
        for cfg in symbols:
            if cfg.symbol in self.listings:
                cfg = SymbolConfig(**{**cfg.__dict__, "first_trade_id": 0, "first_agg_id": 0})
                self.symbols[cfg.symbol] = SymbolMarket(cfg, seed, self.listings[cfg.symbol])
            else:
                self.symbols[cfg.symbol] = SymbolMarket(cfg, seed, self.origin_ms)

    def set_hostile(self, enabled: bool, now_ms: int, hostile_seed: int = 0, from_origin: bool = False) -> dict:
        """Hostile market behaviour on or off for every symbol (see ``SymbolMarket.set_hostile``); returns
        {symbol: first second concerned}."""
        return {s: m.set_hostile(enabled, now_ms, hostile_seed, from_origin) for s, m in self.symbols.items()}

    def list_symbol(self, cfg: SymbolConfig, now_ms: int) -> SymbolMarket:
        """List ``cfg.symbol`` while the market runs: its history starts at the second after ``now_ms`` with a
        trade, trade and aggregate ids 0 (nothing of it exists before)."""
        if cfg.symbol in self.symbols:
            raise ValueError(f"{cfg.symbol} is listed already (or was, and is delisted)")
        origin = (now_ms // 1000 + 1) * 1000
        m = SymbolMarket(SymbolConfig(**{**cfg.__dict__, "first_trade_id": 0, "first_agg_id": 0}), self.seed, origin)
        self.symbols = {**self.symbols, cfg.symbol: m}  # new dicts: other threads may be iterating the old ones
        self.listings = {**self.listings, cfg.symbol: origin}
        return m

    def listed(self) -> list[str]:
        """The symbols exchangeInfo lists: every one but those removed after their delisting."""
        return [s for s, m in self.symbols.items() if not m.lifecycle.removed]

    def __getitem__(self, symbol: str) -> SymbolMarket:
        return self.symbols[symbol]

    def __contains__(self, symbol: str) -> bool:
        """Whether the exchange knows ``symbol`` (a symbol removed after its delisting answers as unknown; its
        market stays in ``symbols`` for the ground truth)."""
        m = self.symbols.get(symbol)
        return m is not None and not m.lifecycle.removed
