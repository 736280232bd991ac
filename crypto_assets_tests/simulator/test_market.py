"""The market model on its own (no server): determinism, dense ids, bursts, quiet minutes, aggregates, klines."""

from __future__ import annotations

import numpy as np
import pytest

from binance_simulator.market import (
    DEFAULT_SYMBOLS,
    UNITS,
    Market,
    SymbolConfig,
    SymbolMarket,
    seeded_rng,
    symbol_config,
    units_to_decimal,
)
from crypto_assets_tests.simulator._support import truncated_product

ORIGIN = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC
MINUTE = 60_000


def btc(**overrides) -> SymbolConfig:
    return symbol_config("BTCUSDT", **overrides)


def market(seed: int = 7, **overrides) -> Market:
    return Market([btc(**overrides), symbol_config("SOLUSDT")], seed, ORIGIN)


def as_rows(t) -> list[tuple]:
    return list(zip(t.id.tolist(), t.time.tolist(), t.price.tolist(), t.qty.tolist(), t.is_buyer_maker.tolist()))


@pytest.fixture(scope="module")
def bursty() -> SymbolMarket:
    """BTCUSDT with a sweeping burst in most seconds: many multi-trade aggregates and same-millisecond trades."""
    return Market([btc(burst_probability=0.3)], 11, ORIGIN)["BTCUSDT"]


# ---- determinism -----------------------------------------------------------------------------------------------
def test_same_seed_and_origin_give_identical_trades():
    a, b = market(seed=7)["BTCUSDT"], market(seed=7)["BTCUSDT"]
    b.trades_between(ORIGIN + 9 * MINUTE, ORIGIN + 10 * MINUTE)  # a different query order must not matter
    window = (ORIGIN + 2 * MINUTE + 123, ORIGIN + 5 * MINUTE + 456)
    ta, tb = a.trades_between(*window), b.trades_between(*window)
    assert len(ta) > 1000
    assert as_rows(ta) == as_rows(tb)


def test_seeded_rng_is_default_rng():
    """The market's cheaper seeding gives numpy's default_rng of the same words, whatever their size."""
    rng = np.random.default_rng(3)
    edges = [0, 1, 2**32 - 1, 2**32, 2**40, 2**63]
    for _ in range(500):
        words = [int(w) for w in rng.integers(0, 2**32, int(rng.integers(1, 6)))]
        words[int(rng.integers(0, len(words)))] = edges[int(rng.integers(0, len(edges)))]
        ours, numpy_s = seeded_rng(*words), np.random.default_rng(words)
        assert ours.bit_generator.state == numpy_s.bit_generator.state, words
        assert ours.random(4).tolist() == numpy_s.random(4).tolist()


def test_regenerated_seconds_are_identical_to_cached_ones():
    cfg = btc()
    cached = SymbolMarket(cfg, 7, ORIGIN)
    tiny_cache = SymbolMarket(cfg, 7, ORIGIN, cache_trades=1)  # evicts and regenerates nearly every second
    window = (ORIGIN + MINUTE, ORIGIN + 3 * MINUTE)
    first = as_rows(tiny_cache.trades_between(*window))
    tiny_cache.trades_between(ORIGIN + 5 * MINUTE, ORIGIN + 6 * MINUTE)
    assert as_rows(tiny_cache.trades_between(*window)) == first == as_rows(cached.trades_between(*window))


def test_different_seed_gives_different_trades():
    window = (ORIGIN, ORIGIN + 2 * MINUTE)
    ta = market(seed=7)["BTCUSDT"].trades_between(*window)
    tb = market(seed=8)["BTCUSDT"].trades_between(*window)
    assert as_rows(ta) != as_rows(tb)
    assert not np.array_equal(ta.price[:100], tb.price[:100]) or not np.array_equal(ta.time[:100], tb.time[:100])


# ---- ids and times ---------------------------------------------------------------------------------------------
def test_trade_ids_are_dense_across_second_and_minute_boundaries():
    m = market()["BTCUSDT"]
    t = m.trades_between(ORIGIN, ORIGIN + 4 * MINUTE)
    assert int(t.id[0]) == m.cfg.first_trade_id  # the very first trade of the market's history
    assert np.array_equal(t.id, np.arange(t.id[0], t.id[0] + len(t)))
    seconds = np.unique(t.time // 1000)
    assert len(seconds) > 200  # the window really spans many second boundaries
    # Windows that split seconds and minutes anywhere join up without a gap or an overlap.
    cuts = [ORIGIN, ORIGIN + 777, ORIGIN + MINUTE - 1, ORIGIN + MINUTE, ORIGIN + 2 * MINUTE + 501, ORIGIN + 4 * MINUTE]
    parts = [m.trades_between(lo, hi) for lo, hi in zip(cuts, cuts[1:])]
    assert np.array_equal(np.concatenate([p.id for p in parts]), t.id)


def test_trade_times_ascend_and_stay_inside_the_window():
    m = market()["BTCUSDT"]
    start, end = ORIGIN + MINUTE + 250, ORIGIN + 3 * MINUTE + 750
    t = m.trades_between(start, end)
    assert len(t) > 0
    assert np.all(np.diff(t.time) >= 0)
    assert int(t.time.min()) >= start and int(t.time.max()) < end
    # And nothing inside the window is missing: the enclosing whole seconds hold exactly these plus the edges.
    whole = m.trades_between(start - 250, end + 250)
    inside = (whole.time >= start) & (whole.time < end)
    assert np.array_equal(whole.id[inside], t.id)


def test_trades_from_id_agree_with_trades_between():
    m = market()["BTCUSDT"]
    t = m.trades_between(ORIGIN, ORIGIN + 2 * MINUTE)
    k = len(t) // 3
    page = m.trades_from_id(int(t.id[k]), 700, until_ms=ORIGIN + 2 * MINUTE - 1)
    assert as_rows(page) == as_rows(t.slice(k, k + 700))
    # until_ms is inclusive and cuts the page.
    last_time = int(t.time[k + 10])
    cut = m.trades_from_id(int(t.id[k]), 10_000, until_ms=last_time)
    assert int(cut.time.max()) == last_time and as_rows(cut) == as_rows(t.slice(k, int(np.sum(t.time <= last_time))))
    assert m.last_trade_id_at(last_time) == int(cut.id[-1])


def test_nothing_trades_before_origin():
    mk = Market([btc()], 7, ORIGIN + 12_345)  # the origin is rounded down to its minute
    m = mk["BTCUSDT"]
    assert mk.origin_ms == ORIGIN and m.origin_ms == ORIGIN
    assert len(m.trades_between(ORIGIN - 3_600_000, ORIGIN)) == 0
    straddling = m.trades_between(ORIGIN - MINUTE, ORIGIN + MINUTE)
    assert as_rows(straddling) == as_rows(m.trades_between(ORIGIN, ORIGIN + MINUTE))
    assert len(m.trades_from_id(0, 1000, until_ms=ORIGIN - 1)) == 0
    assert m.last_trade_id_at(ORIGIN - 1) == m.cfg.first_trade_id - 1
    assert int(m.trades_from_id(0, 1, until_ms=ORIGIN + MINUTE).id[0]) == m.cfg.first_trade_id
    k = m.kline(ORIGIN - MINUTE, MINUTE)
    assert (k.count, k.first_id, k.last_id, k.volume) == (0, -1, -1, 0)


# ---- bursts and quiet minutes ------------------------------------------------------------------------------------
def test_bursts_put_hundreds_of_trades_in_one_millisecond():
    m = market(burst_probability=1.0)["BTCUSDT"]
    t = m.trades_between(ORIGIN, ORIGIN + 30_000)
    times, counts = np.unique(t.time, return_counts=True)
    assert counts.max() >= 100
    assert np.sum(counts >= 100) >= 25  # nearly every second carries one
    busiest = int(times[counts.argmax()])
    aggs = m.aggs_between(busiest, busiest + 1, 10_000)
    assert len(set(aggs.price.tolist())) >= 2  # the sweep walks through several price levels


def test_default_btc_rate_is_realistic():
    t = market()["BTCUSDT"].trades_between(ORIGIN, ORIGIN + 5 * MINUTE)
    assert 20 <= len(t) / 300 <= 100  # 30 to 70 a second on average (docs), bursts on top


def test_quiet_minutes_have_no_trades_and_an_empty_kline_at_the_opening_price():
    m = Market([symbol_config("QUIETUSDT", quiet_minute_probability=1.0, base_price=123.45)], 3, ORIGIN)["QUIETUSDT"]
    assert len(m.trades_between(ORIGIN, ORIGIN + 5 * MINUTE)) == 0
    for i in range(5):
        k = m.kline(ORIGIN + i * MINUTE, MINUTE)
        assert (k.count, k.first_id, k.last_id) == (0, -1, -1)
        assert (k.volume, k.quote_volume, k.taker_buy_volume, k.taker_buy_quote_volume) == (0, 0, 0, 0)
        assert k.open == k.high == k.low == k.close == 12_345_000_000
        assert (k.open_time, k.close_time) == (ORIGIN + i * MINUTE, ORIGIN + (i + 1) * MINUTE - 1)


def test_a_quiet_minute_after_trading_carries_the_previous_close():
    m = Market([symbol_config("ETHUSDT", quiet_minute_probability=0.3)], 5, ORIGIN)["ETHUSDT"]
    found = 0
    for i in range(1, 40):
        open_ms = ORIGIN + i * MINUTE
        if len(m.trades_between(open_ms, open_ms + MINUTE)):
            continue
        before = m.trades_between(ORIGIN, open_ms)
        if not len(before):
            continue
        k = m.kline(open_ms, MINUTE)
        prev_close = int(before.price[-1])
        assert (k.count, k.first_id, k.last_id, k.volume) == (0, -1, -1, 0)
        assert k.open == k.high == k.low == k.close == prev_close
        # The next trade continues the id sequence right after the quiet stretch.
        after = m.trades_from_id(int(before.id[-1]) + 1, 1, until_ms=ORIGIN + 60 * MINUTE)
        assert int(after.time[0]) >= open_ms + MINUTE
        found += 1
    assert found >= 3


# ---- aggregates --------------------------------------------------------------------------------------------------
def test_each_aggregate_covers_trades_of_one_time_price_and_side(bursty):
    start, end = ORIGIN + MINUTE, ORIGIN + 3 * MINUTE
    t = bursty.trades_between(start, end)
    aggs = bursty.aggs_between(start, end, 10**9)
    first_id = int(t.id[0])
    multi = 0
    for _a, f, last, ts, p, q, m in zip(
        aggs.agg_id.tolist(),
        aggs.first_id.tolist(),
        aggs.last_id.tolist(),
        aggs.time.tolist(),
        aggs.price.tolist(),
        aggs.qty.tolist(),
        aggs.is_buyer_maker.tolist(),
    ):
        assert f <= last
        part = t.slice(f - first_id, last - first_id + 1)
        assert part.id.tolist() == list(range(f, last + 1))
        assert set(part.time.tolist()) == {ts}
        assert set(part.price.tolist()) == {p}
        assert set(part.is_buyer_maker.tolist()) == {m}
        assert int(part.qty.sum()) == q
        multi += last > f
    assert multi > 100  # plenty of aggregates with several fills


def test_aggregates_partition_the_trades_exactly(bursty):
    start, end = ORIGIN + MINUTE + 333, ORIGIN + 4 * MINUTE + 667
    t = bursty.trades_between(start, end)
    aggs = bursty.aggs_between(start, end, 10**9)
    assert int(aggs.first_id[0]) == int(t.id[0]) and int(aggs.last_id[-1]) == int(t.id[-1])
    assert np.array_equal(aggs.first_id[1:], aggs.last_id[:-1] + 1)  # contiguous, no overlap
    assert int(np.sum(aggs.last_id - aggs.first_id + 1)) == len(t)
    assert np.array_equal(aggs.agg_id, np.arange(aggs.agg_id[0], aggs.agg_id[0] + len(aggs)))  # dense agg ids
    # The same aggregates again, paged by id.
    paged, next_id = [], int(aggs.agg_id[0])
    while True:
        page = bursty.aggs_from_id(next_id, 1000, until_ms=end - 1)
        if not len(page):
            break
        paged += page.agg_id.tolist()
        next_id = int(page.agg_id[-1]) + 1
    assert paged == aggs.agg_id.tolist()
    # A limit stops the window early, oldest first.
    assert bursty.aggs_between(start, end, 37).agg_id.tolist() == aggs.agg_id[:37].tolist()


# ---- klines and exact arithmetic ---------------------------------------------------------------------------------
@pytest.mark.parametrize("minute", [0, 1, 2, 7])
def test_kline_equals_aggregates_computed_by_hand(bursty, minute):
    open_ms = ORIGIN + minute * MINUTE
    t = bursty.trades_between(open_ms, open_ms + MINUTE)
    prices, qtys, makers = t.price.tolist(), t.qty.tolist(), t.is_buyer_maker.tolist()
    exact = [p * q for p, q in zip(prices, qtys)]  # units of 1e-16
    k = bursty.kline(open_ms, MINUTE)
    assert (k.open_time, k.close_time) == (open_ms, open_ms + MINUTE - 1)
    assert (k.first_id, k.last_id, k.count) == (t.id.tolist()[0], t.id.tolist()[-1], len(prices))
    assert (k.open, k.high, k.low, k.close) == (prices[0], max(prices), min(prices), prices[-1])
    assert k.volume == sum(qtys)
    assert k.quote_volume == sum(exact) // UNITS  # the exact sum, truncated to 8 decimals
    assert k.taker_buy_volume == sum(q for q, m in zip(qtys, makers) if not m)
    assert k.taker_buy_quote_volume == sum(e for e, m in zip(exact, makers) if not m) // UNITS
    assert 0 < k.taker_buy_volume < k.volume
    # An open kline counts only what has happened so far (until_ms inclusive).
    cut = int(t.time[len(t) // 2])
    partial = bursty.kline(open_ms, MINUTE, until_ms=cut)
    assert partial.count == int(np.sum(t.time <= cut)) and partial.last_id == int(t.id[t.time <= cut][-1])


@pytest.mark.parametrize("symbol", [*DEFAULT_SYMBOLS, "XRPUSDT", "SHIBBTC"])
def test_quote_quantity_is_the_exact_product_truncated_to_8_decimals(symbol):
    m = Market([symbol_config(symbol)], 2, ORIGIN)[symbol]
    t = m.trades_between(ORIGIN, ORIGIN + 2 * MINUTE)
    assert len(t)
    for p, q, qq in zip(t.price.tolist(), t.qty.tolist(), t.quote_qty()):
        assert units_to_decimal(qq) == truncated_product(units_to_decimal(p), units_to_decimal(q))


def test_binance_has_no_rule_on_tick_times_step_but_bounds_must_be_on_the_grid_and_ordered():
    fine = symbol_config("BTCUSDT", tick_size="0.00000001", step_size="0.00000001")  # products need 16 decimals
    assert (fine.tick_units, fine.step_units) == (1, 1)
    assert fine.max_qty_units == 9000 * UNITS and fine.min_price_units == UNITS // 100
    bad = [
        ({"min_price": "0.015"}, "multiples of tick_size"),
        ({"max_qty": "9000.000001"}, "multiples of step_size"),
        ({"min_qty": "10", "max_qty": "9"}, "min_qty <= max_qty"),
        ({"step_size": "1", "min_qty": "1", "max_qty": "92233720369"}, "92233720368.54775807"),
        ({"tick_size": "0.000000001"}, "more than 8 decimals"),
        ({"tick_size": "0"}, "tick_size must be > 0"),
    ]
    for overrides, message in bad:
        with pytest.raises(ValueError, match=message):
            symbol_config("BTCUSDT", **overrides)
    # Left out, a minimum is one tick (step) and a maximum 1,000,000 (9,000) rounded down to the grid.
    generic = SymbolConfig("ODDUSDT", 100.0, 1.0, tick_size="0.03", step_size="7")
    generic.validate()
    assert (generic.min_price_units, generic.max_price_units) == (3_000_000, 99_999_999_000_000)
    assert (generic.min_qty_units, generic.max_qty_units) == (7 * UNITS, 8995 * UNITS)
