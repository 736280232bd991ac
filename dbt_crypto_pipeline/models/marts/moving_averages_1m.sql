{{ config(unique_key=['symbol', 'minute_start'], window_column='minute_start') }}
-- Gold: 20- and 60-minute simple moving averages of the 1m close (over the minutes present in each span; the
-- *_minutes columns say how many there were, fewer at the start of the history or around missing minutes).

with candles as (
    select symbol, minute_start, close
    from {{ ref('candles_1m') }}
    where {{ in_window('minute_start', lookback='59 minutes') }}
),

averaged as (
    select
        symbol,
        minute_start,
        close,
        cast(avg(close) over last_20m as {{ price_type() }}) as ma_20m,
        count(*) over last_20m as ma_20m_minutes,
        cast(avg(close) over last_60m as {{ price_type() }}) as ma_60m,
        count(*) over last_60m as ma_60m_minutes
    from candles
    window
        last_20m as (partition by symbol order by minute_start
                     range between interval '19 minutes' preceding and current row),
        last_60m as (partition by symbol order by minute_start
                     range between interval '59 minutes' preceding and current row)
)

select * from averaged
where {{ in_window('minute_start') }}
