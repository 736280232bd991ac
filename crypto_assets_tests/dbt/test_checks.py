"""Every kind of dbt test fails on bad rows inside the run's window, and ignores bad rows outside it: tables with
hand-made rows, then `dbt test` of the models' tests (no build)."""

import duckdb
import pytest

from crypto_assets_tests.analytics_data import run_dbt

pytestmark = pytest.mark.integration

WINDOW = {"window_start": "2026-01-01 10:00:00", "window_end": "2026-01-01 11:00:00", "symbols": "AAAUSDT,BBBUSDT"}

SETUP = """
create table stg_trade_minutes as
    select 'AAAUSDT' as symbol, minute_start, cast(minute_start as date) as trade_date, 'f' as file
    from unnest(range(timestamp '2026-01-01 10:00:00', timestamp '2026-01-01 11:00:00', interval 1 minute))
        t(minute_start)
    union all  -- a duplicate outside the window: not this run's business
    select 'AAAUSDT', timestamp '2026-01-01 08:00:00', date '2026-01-01', 'f'
    union all
    select 'AAAUSDT', timestamp '2026-01-01 08:00:00', date '2026-01-01', 'f';

create table stg_trades as
    select * from (values
        ('AAAUSDT', 1, 10.0::decimal(18,8), 1.0::decimal(18,8), 10.0::decimal(18,8), timestamp '2026-01-01 10:00:01'),
        ('AAAUSDT', 1, 10.0::decimal(18,8), 1.0::decimal(18,8), 10.0::decimal(18,8), timestamp '2026-01-01 10:00:01'),
        ('AAAUSDT', 2, null, -1.0::decimal(18,8), 10.0::decimal(18,8), timestamp '2026-01-01 10:00:02')
    ) t(symbol, trade_id, price, qty, quote_qty, trade_time);

-- AAAUSDT complete except one duplicate and one crossed candle; BBBUSDT has 59 minutes
create table candles_1m as
    select 'AAAUSDT' as symbol, minute_start, 10.0::decimal(18,8) as open, 11.0::decimal(18,8) as high,
           9.0::decimal(18,8) as low, 10.5::decimal(18,8) as close, 3 as trade_count,
           1.0::decimal(38,8) as volume, 10.0::decimal(38,8) as quote_volume, 0.5::decimal(38,8) as taker_buy_volume
    from unnest(range(timestamp '2026-01-01 10:00:00', timestamp '2026-01-01 11:00:00', interval 1 minute))
        t(minute_start)
    union all
    select 'AAAUSDT', timestamp '2026-01-01 10:05:00', 10, 11, 9, 10.5, 3, 1, 10, 0.5
    union all
    select 'BBBUSDT', minute_start, 10, 11, 9, 10.5, 3, 1, 10, 0.5
    from unnest(range(timestamp '2026-01-01 10:00:00', timestamp '2026-01-01 10:59:00', interval 1 minute))
        t(minute_start);
update candles_1m set low = 10.2 where symbol = 'AAAUSDT' and minute_start = timestamp '2026-01-01 10:30:00';
update candles_1m set volume = -1 where symbol = 'AAAUSDT' and minute_start = timestamp '2026-01-01 10:31:00';

create table candles_1h as
    select * from (values
        ('AAAUSDT', timestamp '2026-01-01 10:00:00', 10.0, 11.0, 9.0, 10.5, 180, 60.0, 600.0, 60, true),
        ('BBBUSDT', timestamp '2026-01-01 10:00:00', 10.0, 11.0, 9.0, 10.5, 177, 59.0, 590.0, 59, false)
    ) t(symbol, hour_start, open, high, low, close, trade_count, volume, quote_volume, minute_count, is_complete);
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("checks")
    db = scratch / "bad.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(SETUP)
    run = run_dbt(
        ["test", "--select", "stg_trade_minutes", "stg_trades", "candles_1m", "candles_1h"],
        db,
        scratch / "run",
        {"lake_url": "/nonexistent", **WINDOW},
    )
    assert run.results, run.output
    return {uid.split(".")[2]: r for uid, r in run.results.items()}


@pytest.mark.parametrize(
    "test, failing_rows",
    [
        ("unique_combination_stg_trades_symbol__trade_id", 1),
        ("not_null_stg_trades_price", 1),
        ("non_negative_stg_trades_qty", 1),
        ("unique_combination_candles_1m_symbol__minute_start", 1),
        ("ohlc_consistent_candles_1m_", 1),
        ("non_negative_candles_1m_volume", 1),
        ("complete_minutes_candles_1m_minute_start__60", 1),  # BBBUSDT 10:00 has 59 minutes
        ("accepted_values_candles_1h_is_complete__True", 1),
    ],
)
def test_bad_rows_in_the_window_fail(results, test, failing_rows):
    assert results[test]["status"] == "fail", results[test]
    assert results[test]["failures"] == failing_rows


@pytest.mark.parametrize(
    "test",
    [
        "unique_combination_stg_trade_minutes_symbol__minute_start",  # its duplicate is outside the window
        "non_negative_candles_1m_quote_volume",
        "not_null_stg_trades_trade_id",
    ],
)
def test_clean_or_out_of_window_rows_pass(results, test):
    assert results[test]["status"] == "pass", results[test]
