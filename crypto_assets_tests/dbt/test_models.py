"""Silver and gold built by the dbt CLI from simulator ground truth on a local lake, hour by hour (the second hour is
an incremental run), compared with the trades themselves and the exchange's own klines."""

from datetime import UTC, datetime
from decimal import Decimal

import duckdb
import pytest

from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.minutes import MINUTE_MS
from crypto_assets_tests.analytics_data import HOUR_MS, SYMBOLS, minute_trades, run_dbt, window_text

pytestmark = pytest.mark.integration

HOURLY = ["--select", "tag:hourly", "--exclude", "tag:unpartitioned"]  # what Dagster's dbt_hourly builds


@pytest.fixture(scope="module")
def warehouse(hours, local_lake, tmp_path_factory):
    """The DuckDB file after `dbt build` of H1, then of H2 (incremental) with latest prices."""
    scratch = tmp_path_factory.mktemp("dbt_local")
    db = scratch / "crypto.duckdb"
    runs = []
    for hour, select in ((hours.h1, HOURLY), (hours.h2, ["--select", "fqn:*"])):
        runs.append(
            run_dbt(
                ["build", *select],
                db,
                scratch / f"run{len(runs)}",
                {
                    "lake_url": str(local_lake),
                    "symbols": ",".join(SYMBOLS),
                    "window_start": window_text(hour),
                    "window_end": window_text(hour + HOUR_MS),
                },
            )
        )
    for run in runs:
        assert run.returncode == 0, run.output
    con = duckdb.connect(str(db), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    yield con, runs
    con.close()


def rows(con, sql, params=()):
    return con.execute(sql, list(params)).fetchall()


def naive(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def test_every_test_of_both_runs_passed(warehouse):
    _, runs = warehouse
    for run in runs:
        tests = {uid: r["status"] for uid, r in run.results.items() if uid.startswith("test.")}
        assert len(tests) >= 30
        assert set(tests.values()) == {"pass"}, tests
    assert any("complete_minutes" in uid for uid in runs[0].results)


def test_silver_holds_every_trade_once(warehouse, hours):
    con, _ = warehouse
    for symbol in SYMBOLS:
        expected = [
            t.trade_id
            for m in range(hours.h1, hours.h2 + HOUR_MS, MINUTE_MS)
            for t in minute_trades(hours.sim, symbol, m)
        ]
        got = [r[0] for r in rows(con, "select trade_id from stg_trades where symbol = ? order by trade_id", [symbol])]
        assert got == expected
    assert rows(con, "select count(*) from stg_trade_minutes") == [(2 * 60 * len(SYMBOLS),)]
    first = minute_trades(hours.sim, "BTCUSDT", hours.h1)[0]
    assert rows(
        con,
        "select price, qty, quote_qty, trade_time, is_taker_buy from stg_trades where trade_id = ?",
        [first.trade_id],
    ) == [
        (
            Decimal(first.price),
            Decimal(first.qty),
            Decimal(first.price) * Decimal(first.qty),
            naive(first.trade_time),
            not first.is_buyer_maker,
        )
    ]


@pytest.mark.parametrize(
    "interval, table, key", [("1m", "candles_1m", "minute_start"), ("1h", "candles_1h", "hour_start")]
)
def test_candles_equal_the_exchange_klines(warehouse, hours, interval, table, key):
    """Open, high, low, close, volumes and trade count of every candle equal the simulator's own klines, exactly
    (including minutes without trades, which carry the previous close)."""
    con, _ = warehouse
    with BinanceRestClient(hours.sim.rest_url) as client:
        for symbol in SYMBOLS:
            klines = client.klines(symbol, interval, start_time=hours.h1, end_time=hours.h2 + HOUR_MS - 1)
            candles = rows(
                con,
                f"select {key}, open, high, low, close, volume, quote_volume, taker_buy_volume, "
                f"taker_buy_quote_volume, trade_count from {table} where symbol = ? order by 1",
                [symbol],
            )
            assert len(klines) == len(candles) == (120 if interval == "1m" else 2)
            traded = False
            for k, c in zip(klines, candles):
                traded = traded or k.trade_count > 0
                # before the lake's first trade there is no close to carry: a leading quiet minute has no prices
                prices = (Decimal(k.open), Decimal(k.high), Decimal(k.low), Decimal(k.close)) if traded else (None,) * 4
                expected = (
                    naive(k.open_time),
                    *prices,
                    Decimal(k.volume),
                    Decimal(k.quote_volume),
                    Decimal(k.taker_buy_volume),
                    Decimal(k.taker_buy_quote_volume),
                    k.trade_count,
                )
                assert c == expected, (symbol, interval)


def test_hour_candles_are_complete(warehouse):
    con, _ = warehouse
    assert rows(con, "select distinct minute_count, is_complete from candles_1h") == [(60, True)]


def test_moving_averages_match_a_direct_computation(warehouse, hours):
    con, _ = warehouse
    closes = [r[0] for r in rows(con, "select close from candles_1m where symbol = 'BTCUSDT' order by minute_start")]
    got = rows(
        con,
        "select ma_20m, ma_20m_minutes, ma_60m, ma_60m_minutes from moving_averages_1m "
        "where symbol = 'BTCUSDT' order by minute_start",
    )
    assert len(got) == 120
    for i in (0, 19, 59, 60, 119):  # across the H1/H2 boundary: H2's run looked back into H1
        window20, window60 = closes[max(0, i - 19) : i + 1], closes[max(0, i - 59) : i + 1]
        assert got[i][1] == len(window20) and got[i][3] == len(window60)
        assert abs(got[i][0] - sum(window20) / len(window20)) <= Decimal("0.00000001")
        assert abs(got[i][2] - sum(window60) / len(window60)) <= Decimal("0.00000001")


def test_volatility_is_the_stddev_of_log_returns(warehouse):
    import math
    import statistics

    con, _ = warehouse
    closes = [
        float(r[0]) for r in rows(con, "select close from candles_1m where symbol = 'ETHUSDT' order by minute_start")
    ]
    returns = [math.log(b / a) for a, b in zip(closes, closes[1:])]
    got = rows(
        con,
        "select log_return, volatility_20m, volatility_60m from volatility_1m where symbol = 'ETHUSDT' "
        "order by minute_start",
    )
    assert got[0][0] is None  # no minute before H1 was built
    assert got[60][0] == pytest.approx(returns[59])  # H2's first return uses H1's last close
    assert got[119][1] == pytest.approx(statistics.stdev(returns[-20:]))
    assert got[119][2] == pytest.approx(statistics.stdev(returns[-60:]))


def test_price_jumps_follow_the_threshold(hours, local_lake, tmp_path):
    """With a threshold of 0.1 % there are jumps; each is a consecutive-minute close move of at least 0.1 %."""
    db = tmp_path / "jumps.duckdb"
    run = run_dbt(
        ["build", "--select", "+price_jumps", "--exclude", "test_type:data"],
        db,
        tmp_path / "scratch",
        {
            "lake_url": str(local_lake),
            "window_start": window_text(hours.h1),
            "window_end": window_text(hours.h1 + HOUR_MS),
            "price_jump_threshold_pct": 0.1,
        },
    )
    assert run.returncode == 0, run.output
    with duckdb.connect(str(db), read_only=True) as con:
        jumps = rows(
            con, "select symbol, from_minute, to_minute, from_price, to_price, pct_change, direction from price_jumps"
        )
        closes = dict(((s, m), c) for s, m, c in rows(con, "select symbol, minute_start, close from candles_1m"))
    assert jumps
    expected = []
    for (symbol, minute), close in closes.items():
        before = closes.get((symbol, minute - (naive(MINUTE_MS) - naive(0))))
        if before is not None and abs(close - before) * 100 >= Decimal("0.1") * before:
            expected.append((symbol, minute))
    assert sorted((j[0], j[2]) for j in jumps) == sorted(expected)
    for symbol, from_minute, to_minute, from_price, to_price, pct, direction in jumps:
        assert (from_price, to_price) == (closes[(symbol, from_minute)], closes[(symbol, to_minute)])
        assert pct == pytest.approx(float((to_price - from_price) * 100 / from_price), abs=1e-6)  # rounded to 6
        assert direction == ("up" if to_price > from_price else "down")


def test_daily_stats_and_latest_prices(warehouse, hours):
    con, _ = warehouse
    for symbol in SYMBOLS:
        trades = [
            t for m in range(hours.h1, hours.h2 + HOUR_MS, MINUTE_MS) for t in minute_trades(hours.sim, symbol, m)
        ]
        day = naive(hours.h1).date()
        if naive(hours.h2).date() != day:  # the two hours straddle midnight: only H2's day holds both
            trades = [t for t in trades if naive(t.trade_time).date() == naive(hours.h2).date()]
            day = naive(hours.h2).date()
        prices = [Decimal(t.price) for t in trades]
        (got,) = rows(
            con,
            "select min_price, max_price, mean_price, trade_count from daily_stats where symbol = ? and trade_date = ?",
            [symbol, day],
        )
        assert got == (min(prices), max(prices), (sum(prices) / len(prices)).quantize(Decimal("1e-8")), len(prices))
        last = trades[-1]
        assert rows(con, "select price, last_trade_id from latest_prices where symbol = ?", [symbol]) == [
            (Decimal(last.price), last.trade_id)
        ]
