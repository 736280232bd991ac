"""A deterministic, live market per symbol: the single source of every trade the simulator reports.

Every trade is a pure function of ``(seed, symbol, second)``: the stream, ``historicalTrades``, ``aggTrades``,
klines and the tests' ground truth all read the same arrays, so they agree by construction.

The model, one second at a time (absolute epoch seconds, nothing before ``origin_ms``):
- a mid price follows a geometric random walk, one step per second, rounded to the symbol's tick;
- taker orders arrive as a Poisson process; each taker order is one aggregate trade (one time, one price, one
  side) made of a geometric number of fills (trades); Binance aggregates exactly such groups;
- a burst is one taker order sweeping several price levels in a single millisecond: hundreds of trades;
- a quiet minute has no trades at all (the mid price still walks);
- prices and quantities are integers in units of 1e-8 (Binance's 8 decimals), so every sum is exact.

Trade ids are dense per symbol: the first trade of second ``s`` has id ``first_trade_id + trades before s``.
The per-second counts are computed once, in order, into a growing index; a second's full trade arrays are
regenerated from the seed on demand and kept in a small LRU cache.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

UNITS = 100_000_000  # 1e8: prices and quantities are integers in units of 1e-8
MS_PER_MINUTE = 60_000


@dataclass(frozen=True)
class SymbolConfig:
    """How one symbol trades. Rates are averages; bursts and quiet minutes come on top."""

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

    @property
    def tick_units(self) -> int:
        return decimal_to_units(self.tick_size)

    @property
    def step_units(self) -> int:
        return decimal_to_units(self.step_size)

    def validate(self) -> None:
        if not (self.symbol.isalnum() and self.symbol.isupper() and 5 <= len(self.symbol) <= 20):
            raise ValueError(f"symbol {self.symbol!r} must be 5-20 upper-case letters or digits")
        if (self.tick_units * self.step_units) % UNITS:
            raise ValueError(
                f"{self.symbol}: tick_size x step_size must be a multiple of 1e-8 so that quoteQty is exact"
            )
        if self.trades_per_second < 0 or self.base_price <= 0:
            raise ValueError(f"{self.symbol}: trades_per_second must be >= 0 and base_price > 0")


# Realistic defaults for the project's default symbols (tick and step sizes as on Binance spot).
DEFAULT_SYMBOLS: dict[str, SymbolConfig] = {
    "BTCUSDT": SymbolConfig("BTCUSDT", 95_000.0, 40.0, "0.01", "0.00001", 0.01, first_trade_id=5_100_000_000,
                            first_agg_id=3_600_000_000, quiet_minute_probability=0.0, base_asset="BTC"),
    "ETHUSDT": SymbolConfig("ETHUSDT", 3_500.0, 20.0, "0.01", "0.0001", 0.5, first_trade_id=2_900_000_000,
                            first_agg_id=2_100_000_000, quiet_minute_probability=0.01, base_asset="ETH"),
    "SOLUSDT": SymbolConfig("SOLUSDT", 200.0, 5.0, "0.01", "0.001", 5.0, first_trade_id=1_300_000_000,
                            first_agg_id=900_000_000, quiet_minute_probability=0.05, base_asset="SOL"),
}


def symbol_config(symbol: str, **overrides) -> SymbolConfig:
    """The default configuration for ``symbol`` (a generic one for symbols we have no defaults for)."""
    base = DEFAULT_SYMBOLS.get(symbol)
    if base is None:
        base = SymbolConfig(symbol, 100.0, 5.0, "0.01", "0.001", 1.0,
                            first_trade_id=100_000_000 + zlib.crc32(symbol.encode()) % 100_000_000,
                            base_asset=symbol.removesuffix("USDT"))
    cfg = SymbolConfig(**{**base.__dict__, "symbol": symbol, **overrides})
    cfg.validate()
    return cfg


def decimal_to_units(text: str) -> int:
    """'0.01' -> 1_000_000 (units of 1e-8), exactly."""
    whole, _, frac = text.partition(".")
    if len(frac) > 8:
        raise ValueError(f"{text!r} has more than 8 decimals")
    return int(whole or 0) * UNITS + int((frac + "00000000")[:8])


def units_to_decimal(units: int) -> str:
    """1_000_000 -> '0.01000000': Binance's 8-decimal strings."""
    return "%d.%08d" % divmod(units, UNITS)


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

    def slice(self, start: int, stop: int | None = None) -> "Trades":
        return Trades(self.id[start:stop], self.time[start:stop], self.price[start:stop], self.qty[start:stop],
                      self.is_buyer_maker[start:stop])

    def quote_qty(self) -> list[int]:
        """Exact quote quantities in units (Python ints: price x qty can exceed int64 before scaling)."""
        return [p * q // UNITS for p, q in zip(self.price.tolist(), self.qty.tolist())]

    @staticmethod
    def concat(parts: list["Trades"]) -> "Trades":
        if not parts:
            return EMPTY_TRADES
        if len(parts) == 1:
            return parts[0]
        return Trades(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                        ("id", "time", "price", "qty", "is_buyer_maker")))


EMPTY_TRADES = Trades(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64),
                      np.empty(0, bool))


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

    def slice(self, start: int, stop: int | None = None) -> "AggTrades":
        return AggTrades(*(getattr(self, f)[start:stop] for f in self._fields()))

    @staticmethod
    def _fields() -> tuple[str, ...]:
        return ("agg_id", "first_id", "last_id", "time", "price", "qty", "is_buyer_maker")

    @staticmethod
    def concat(parts: list["AggTrades"]) -> "AggTrades":
        if len(parts) == 1:
            return parts[0]
        return AggTrades(*(np.concatenate([getattr(p, f) for p in parts]) if parts else np.empty(0, np.int64)
                           for f in AggTrades._fields()))


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


@dataclass
class _Index:
    """Per-second counts from the origin on, extended in order as the wall clock advances."""

    origin_s: int
    trade_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    agg_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    mids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    trade_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # first id of each second
    agg_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    size: int = 0  # seconds indexed


class SymbolMarket:
    """The market of one symbol."""

    def __init__(self, cfg: SymbolConfig, seed: int, origin_ms: int, cache_trades: int = 2_000_000):
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
        tick = cfg.tick_units
        self._tick = tick
        self._mid0 = max(tick, int(round(cfg.base_price * UNITS / tick)) * tick)
        self._agg_rate = cfg.trades_per_second / cfg.mean_fills_per_order
        self._fill_p = 1.0 / cfg.mean_fills_per_order
        self._mean_qty_steps = max(1.0, cfg.mean_qty * UNITS / cfg.step_units)

    # ---- the random shape of one second ------------------------------------------------------------------------
    def _quiet_minute(self, minute: int) -> bool:
        if self.cfg.quiet_minute_probability <= 0:
            return False
        rng = np.random.default_rng([self.seed, self._key, minute, 2])
        return bool(rng.random() < self.cfg.quiet_minute_probability)

    def _shape(self, second: int) -> tuple[float, np.ndarray, int]:
        """(price step z, fills per aggregate, number of trailing aggregates that form a burst)."""
        rng = np.random.default_rng([self.seed, self._key, second, 0])
        z = float(rng.standard_normal())
        if self._quiet_minute(second // 60):
            return z, np.empty(0, np.int64), 0
        n_orders = int(rng.poisson(self._agg_rate))
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
                cap = max(need, 2 * len(idx.trade_counts), 3600)
                for name in ("trade_counts", "agg_counts", "mids", "trade_starts", "agg_starts"):
                    grown = np.zeros(cap, np.int64)
                    grown[: idx.size] = getattr(idx, name)[: idx.size]
                    setattr(idx, name, grown)
            i = idx.size
            if i == 0:
                mid, t_start, a_start = self._mid0, self.cfg.first_trade_id, self.cfg.first_agg_id
            else:
                mid = idx.mids[i - 1]
                t_start = idx.trade_starts[i - 1] + idx.trade_counts[i - 1]
                a_start = idx.agg_starts[i - 1] + idx.agg_counts[i - 1]
            vol = self.cfg.volatility_per_second
            tick = self._tick
            for i in range(idx.size, need):
                z, fills, _ = self._shape(idx.origin_s + i)
                if i > 0:
                    mid = max(tick, int(round(mid * float(np.exp(vol * z)) / tick)) * tick)
                idx.mids[i] = mid
                idx.trade_starts[i] = t_start
                idx.agg_starts[i] = a_start
                n_trades = int(fills.sum())
                idx.trade_counts[i] = n_trades
                idx.agg_counts[i] = len(fills)
                t_start += n_trades
                a_start += len(fills)
            idx.size = need

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
            while self._cached_trades > self._cache_budget and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached_trades -= len(old.trades)
        return block

    def _generate(self, second: int) -> _SecondBlock:
        i = second - self._index.origin_s
        z, fills, burst_aggs = self._shape(second)
        n_aggs = len(fills)
        if n_aggs == 0:
            return _SecondBlock(EMPTY_TRADES, AggTrades.concat([]))
        mid = int(self._index.mids[i])
        tick = self._tick
        rng = np.random.default_rng([self.seed, self._key, second, 1])
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
        price = np.maximum(price, tick)
        order = np.argsort(ms, kind="stable")
        ms, price, maker, fills = ms[order], price[order], maker[order], fills[order]
        agg_time = second * 1000 + ms.astype(np.int64)

        n_trades = int(fills.sum())
        first = int(self._index.trade_starts[i])
        qty_steps = np.maximum(1, np.rint(rng.lognormal(np.log(self._mean_qty_steps), 1.0, n_trades)))
        qty = np.minimum(qty_steps, 10_000_000).astype(np.int64) * self.cfg.step_units
        trades = Trades(
            id=np.arange(first, first + n_trades, dtype=np.int64),
            time=np.repeat(agg_time, fills),
            price=np.repeat(price, fills),
            qty=qty,
            is_buyer_maker=np.repeat(maker, fills),
        )
        ends = np.cumsum(fills)
        starts = ends - fills
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

    # ---- queries: one walk serves both series (trades and aggregate trades) ------------------------------------
    def _between(self, series: "_Series", start_ms: int, end_ms: int, limit: int | None = None):
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
                rows = rows.slice(int(np.searchsorted(rows.time, start_ms, side="left")),
                                  int(np.searchsorted(rows.time, end_ms, side="left")))
            if limit is not None:
                rows = rows.slice(0, limit - got)
            parts.append(rows)
            got += len(rows)
            if limit is not None and got >= limit:
                break
        return series.concat(parts)

    def _from_id(self, series: "_Series", from_id: int, limit: int, until_ms: int):
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

    def _last_id_at(self, series: "_Series", ms: int) -> int:
        s = ms // 1000
        if s < self._index.origin_s:
            return getattr(self.cfg, series.first_id) - 1
        self._ensure_indexed(s)
        rows = getattr(self._block(s), series.block)
        start = int(getattr(self._index, series.starts)[s - self._index.origin_s])
        return start + int(np.searchsorted(rows.time, ms, side="right")) - 1

    def _recent(self, series: "_Series", limit: int, until_ms: int):
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

    def kline(self, open_ms: int, interval_ms: int, until_ms: int | None = None) -> Kline:
        """The kline of [open_ms, open_ms + interval_ms), computed from the same trades; while it is still open,
        only the trades up to ``until_ms`` (inclusive) count. Whole seconds come from cached per-second
        statistics, so a kline costs the same at 40 or 100,000 trades a second."""
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
                    parts.append(self._second_stats(s))
                else:
                    t = self._block(s).trades
                    t = t.slice(int(np.searchsorted(t.time, start, side="left")),
                                int(np.searchsorted(t.time, end, side="left")))
                    if len(t):
                        parts.append(self._stats_of(t))
        if not parts:
            p = self.last_price_before(open_ms)
            return Kline(open_ms, close_time, -1, -1, p, p, p, p, 0, 0, 0, 0, 0)
        first, last = parts[0], parts[-1]
        return Kline(
            open_time=open_ms, close_time=close_time, first_id=first.first_id, last_id=last.last_id,
            open=first.open, high=max(p.high for p in parts), low=min(p.low for p in parts), close=last.close,
            volume=sum(p.volume for p in parts), quote_volume=sum(p.quote for p in parts),
            count=sum(p.count for p in parts), taker_buy_volume=sum(p.buy_volume for p in parts),
            taker_buy_quote_volume=sum(p.buy_quote for p in parts),
        )

    def _second_stats(self, second: int) -> "_Stats":
        stats = self._stats.get(second)
        if stats is None:
            stats = self._stats[second] = self._stats_of(self._block(second).trades)
        return stats

    def _stats_of(self, t: Trades) -> "_Stats":
        """Exact sums of a run of trades. Quote quantities are computed in ticks x steps so that they stay
        integers; the sums fall back to Python integers where int64 could overflow."""
        cfg = self.cfg
        factor = cfg.tick_units * cfg.step_units // UNITS
        quote = (t.price // cfg.tick_units) * (t.qty // cfg.step_units) * factor
        buy = ~t.is_buyer_maker
        exact_sum = (lambda a: int(a.sum())) if int(quote.max()) * len(quote) < 2**62 else \
            (lambda a: sum(a.tolist()))
        return _Stats(
            count=len(t), first_id=int(t.id[0]), last_id=int(t.id[-1]), open=int(t.price[0]),
            close=int(t.price[-1]), high=int(t.price.max()), low=int(t.price.min()), volume=int(t.qty.sum()),
            quote=exact_sum(quote), buy_volume=int(t.qty[buy].sum()), buy_quote=exact_sum(quote[buy]),
        )


@dataclass(frozen=True)
class _Stats:
    """What a kline needs from a run of trades, all exact integers (units of 1e-8)."""

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

    def __init__(self, symbols: list[SymbolConfig], seed: int, origin_ms: int):
        if not symbols:
            raise ValueError("the market needs at least one symbol")
        self.seed = seed
        self.origin_ms = origin_ms - origin_ms % MS_PER_MINUTE
        self.symbols: dict[str, SymbolMarket] = {
            cfg.symbol: SymbolMarket(cfg, seed, self.origin_ms) for cfg in symbols
        }

    def __getitem__(self, symbol: str) -> SymbolMarket:
        return self.symbols[symbol]

    def __contains__(self, symbol: str) -> bool:
        return symbol in self.symbols
