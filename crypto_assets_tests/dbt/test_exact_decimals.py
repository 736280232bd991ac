"""Silver and gold stay exact for every class of symbol Binance lists: BTC-quoted pairs whose quote amounts need 9+
decimals, a meme coin trading up to 92 billion units at once, 8-decimal prices, and a pair whose products need all
16 decimals. One complete hour of simulator ground truth (extreme quantities frequent), `dbt build` of it, and every
candle compared with a computation in exact integers and with the exchange's own klines."""

import time
from decimal import Context, Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.lake import LocalLake
from crypto_assets.minutes import MINUTE_MS
from crypto_assets_tests.analytics_data import (
    HOUR_MS,
    copy_lake,
    minute_trades,
    run_dbt,
    window_text,
    write_hours,
)
from crypto_assets_tests.dbt.test_models import HOURLY, naive, rows

pytestmark = pytest.mark.integration

CLASSES = ("ETHBTC", "PEPEUSDT", "DOGEBTC", "WBTCBTC")
EXACT = Context(prec=80)
E8, E16 = 10**8, 10**16


def units(text: str, scale: int) -> int:
    """An exact decimal as an integer count of 10^-scale."""
    return int(EXACT.multiply(Decimal(text), Decimal(10) ** scale))


def expected_candle(trades) -> dict:
    """A minute's candle from its trades, in exact integers (quote amounts in 1e-16, volumes in 1e-8)."""
    qty = [units(t.qty, 8) for t in trades]
    quote = [units(t.price, 8) * q for t, q in zip(trades, qty)]
    taker = [not t.is_buyer_maker for t in trades]
    volume, quote_volume = sum(qty), sum(quote)
    return {
        "open": Decimal(trades[0].price),
        "close": Decimal(trades[-1].price),
        "high": max(Decimal(t.price) for t in trades),
        "low": min(Decimal(t.price) for t in trades),
        "trade_count": len(trades),
        "volume": Decimal(volume).scaleb(-8),
        "quote_volume": EXACT.create_decimal(quote_volume).scaleb(-16, EXACT),
        "taker_buy_volume": Decimal(sum(q for q, b in zip(qty, taker) if b)).scaleb(-8),
        "taker_buy_quote_volume": EXACT.create_decimal(sum(q for q, b in zip(quote, taker) if b)).scaleb(-16, EXACT),
        # VWAP rounded half up to 8 decimals: with Q in 1e-16 and V in 1e-8 units, VWAP in 1e-8 units is Q / V
        "vwap": Decimal((quote_volume + volume // 2) // volume).scaleb(-8),
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    now = int(time.time() * 1000)
    hour = now // HOUR_MS * HOUR_MS - HOUR_MS
    config = SimulatorConfig(
        symbols=[symbol_config(s, extreme_probability=0.2) for s in CLASSES], origin_ms=hour - HOUR_MS, seed=11
    )
    with Simulator(config) as sim:
        root = tmp_path_factory.mktemp("exact_lake")
        write_hours(LocalLake(root), sim, [hour], symbols=CLASSES)
        scratch = tmp_path_factory.mktemp("exact_dbt")
        run = run_dbt(
            ["build", *HOURLY],
            scratch / "crypto.duckdb",
            scratch,
            {
                "lake_url": str(root),
                "symbols": ",".join(CLASSES),
                "window_start": window_text(hour),
                "window_end": window_text(hour + HOUR_MS),
            },
        )
        assert run.returncode == 0, run.output
        con = duckdb.connect(str(scratch / "crypto.duckdb"), read_only=True)
        con.execute("set TimeZone = 'UTC'")
        try:
            yield sim, hour, con, run, root
        finally:
            con.close()


def test_every_dbt_test_passes_for_every_class(built):
    _, _, _, run, _ = built
    tests = {uid: r["status"] for uid, r in run.results.items() if uid.startswith("test.")}
    assert tests and set(tests.values()) == {"pass"}, tests


@pytest.mark.parametrize("symbol", CLASSES)
def test_minute_candles_are_exact(built, symbol):
    sim, hour, con, _, _ = built
    got = {
        r[0]: r[1:]
        for r in rows(
            con,
            "select minute_start, open, high, low, close, trade_count, volume, "
            "quote_volume, taker_buy_volume, taker_buy_quote_volume, vwap "
            "from candles_1m where symbol = ?",
            [symbol],
        )
    }
    assert len(got) == 60
    extremes = 0
    for minute in range(hour, hour + HOUR_MS, MINUTE_MS):
        trades = minute_trades(sim, symbol, minute)
        if not trades:
            continue
        e = expected_candle(trades)
        assert got[naive(minute)] == (
            e["open"],
            e["high"],
            e["low"],
            e["close"],
            e["trade_count"],
            e["volume"],
            e["quote_volume"],
            e["taker_buy_volume"],
            e["taker_buy_quote_volume"],
            e["vwap"],
        ), (symbol, minute)
        extremes += any(Decimal(t.qty) == Decimal(symbol_config(symbol).max_qty) for t in trades)
    assert extremes > 0  # the hour holds max_qty trades, so the equality above covers them


@pytest.mark.parametrize("symbol", CLASSES)
def test_candles_agree_with_the_exchange_klines(built, symbol):
    """Count and base volume equal the kline's exactly; the kline's quote volume is the exact one cut to 8
    decimals (how Binance renders it), for minutes and for the hour."""
    sim, hour, con, _, _ = built
    with BinanceRestClient(sim.rest_url) as client:
        for interval, table, key in (("1m", "candles_1m", "minute_start"), ("1h", "candles_1h", "hour_start")):
            klines = client.klines(symbol, interval, start_time=hour, end_time=hour + HOUR_MS - 1)
            candles = rows(
                con,
                f"select {key}, trade_count, volume, quote_volume from {table} where symbol = ? order by 1",
                [symbol],
            )
            assert len(klines) == len(candles) == (60 if interval == "1m" else 1)
            for k, (start, count, volume, quote_volume) in zip(klines, candles):
                assert (start, count, volume) == (naive(k.open_time), k.trade_count, Decimal(k.volume))
                assert quote_volume.quantize(Decimal("1e-8"), rounding="ROUND_DOWN", context=EXACT) == Decimal(
                    k.quote_volume
                )


@pytest.mark.parametrize("symbol", CLASSES)
def test_hour_and_day_volumes_are_exact(built, symbol):
    sim, hour, con, _, _ = built
    trades = [t for m in range(hour, hour + HOUR_MS, MINUTE_MS) for t in minute_trades(sim, symbol, m)]
    e = expected_candle(trades)
    assert rows(con, "select volume, quote_volume, vwap, trade_count from candles_1h where symbol = ?", [symbol]) == [
        (e["volume"], e["quote_volume"], e["vwap"], e["trade_count"])
    ]
    assert rows(
        con, "select sum(volume), sum(quote_volume), sum(trade_count) from daily_stats where symbol = ?", [symbol]
    ) == [(e["volume"], e["quote_volume"], e["trade_count"])]


def test_minute_files_of_the_first_layout_build_the_same_candles(built, tmp_path):
    """A lake written before the representation changed (decimal(18, 8) and a stored quote_qty) mixed with today's
    files: the window's first file is of the old layout, a later one holds a meme coin's 11-digit quantities. Silver
    reads every file by column name at today's types, and the candles are the same."""
    sim, hour, _, _, root = built
    lake = copy_lake(root, tmp_path / "lake")
    first = Path(lake.path_of("DOGEBTC", hour))  # the first file of the window, by path
    table = pq.read_table(first)
    price, qty = (table.column(c).cast(pa.decimal128(18, 8)) for c in ("price", "qty"))
    old = (
        table.set_column(1, "price", price)
        .set_column(2, "qty", qty)
        .add_column(3, "quote_qty", pc.multiply(price, qty).cast(pa.decimal128(18, 8), safe=False))
    )
    pq.write_table(old, first)
    scratch = tmp_path / "dbt"
    run = run_dbt(
        ["run", "--select", "+candles_1m"],
        scratch / "crypto.duckdb",
        scratch,
        {"lake_url": str(lake.url), "window_start": window_text(hour), "window_end": window_text(hour + HOUR_MS)},
    )
    assert run.returncode == 0, run.output
    with duckdb.connect(str(scratch / "crypto.duckdb"), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        for symbol, minute in [("DOGEBTC", hour)] + [("PEPEUSDT", m) for m in range(hour, hour + HOUR_MS, MINUTE_MS)]:
            trades = minute_trades(sim, symbol, minute)
            if trades:
                e = expected_candle(trades)
                assert rows(
                    con,
                    "select volume, quote_volume, vwap, trade_count from candles_1m where symbol = ? "
                    "and minute_start = ?",
                    [symbol, naive(minute)],
                ) == [(e["volume"], e["quote_volume"], e["vwap"], e["trade_count"])], (symbol, minute)


def test_a_table_built_with_other_column_types_is_refused_not_rounded_into(built, tmp_path):
    """A warehouse built before quote amounts became exact has narrower columns; an incremental run must fail
    (rebuild with --full-refresh) instead of rounding today's values into them."""
    sim, hour, _, _, root = built
    scratch = tmp_path / "dbt"
    db = scratch / "crypto.duckdb"
    variables = {"lake_url": str(root), "window_start": window_text(hour), "window_end": window_text(hour + HOUR_MS)}
    assert run_dbt(["run", "--select", "stg_trade_minutes", "stg_trades"], db, scratch, variables).returncode == 0
    with duckdb.connect(str(db)) as con:
        con.execute("alter table stg_trades alter quote_qty type decimal(18, 8)")  # as the first layout built it
    again = run_dbt(["run", "--select", "stg_trades"], db, scratch, variables)
    assert again.returncode != 0
    assert "schemas on this incremental model are out of sync" in again.output, again.output
    with duckdb.connect(str(db), read_only=True) as con:
        assert rows(con, "select typeof(quote_qty) from stg_trades limit 1") == [("DECIMAL(18,8)",)]
