{{ config(unique_key=['symbol', 'minute_start'], window_column='minute_start') }}
-- Gold: 1-minute log returns ln(close / previous minute's close) and their rolling sample standard deviation over
-- 20 and 60 minutes (not annualised). A return needs the previous minute: after a missing minute it is null.

with candles as (
    select symbol, minute_start, close
    from {{ ref('candles_1m') }}
    where {{ in_window('minute_start', lookback='60 minutes') }}
),

returns as (
    select
        symbol,
        minute_start,
        close,
        case
            when lag(minute_start) over by_minute = minute_start - interval '1 minute'
            then ln(cast(close as double) / cast(lag(close) over by_minute as double))
        end as log_return
    from candles
    window by_minute as (partition by symbol order by minute_start)
),

final as (
    select
        symbol,
        minute_start,
        log_return,
        stddev_samp(log_return) over last_20m as volatility_20m,
        count(log_return) over last_20m as volatility_20m_returns,
        stddev_samp(log_return) over last_60m as volatility_60m,
        count(log_return) over last_60m as volatility_60m_returns
    from returns
    window
        last_20m as (partition by symbol order by minute_start
                     range between interval '19 minutes' preceding and current row),
        last_60m as (partition by symbol order by minute_start
                     range between interval '59 minutes' preceding and current row)
)

select * from final
where {{ in_window('minute_start') }}
