{{ config(unique_key=['symbol', 'to_minute'], window_column='to_minute') }}
-- Gold: consecutive 1-minute moves (close of one minute to the close of the next) of at least
-- var('price_jump_threshold_pct') percent, up or down.

with candles as (
    select symbol, minute_start, close
    from {{ ref('candles_1m') }}
    where {{ in_window('minute_start', lookback='1 minute') }}
),

moves as (
    select
        symbol,
        lag(minute_start) over by_minute as from_minute,
        minute_start as to_minute,
        lag(close) over by_minute as from_price,
        close as to_price
    from candles
    window by_minute as (partition by symbol order by minute_start)
),

final as (
    select
        symbol,
        from_minute,
        to_minute,
        from_price,
        to_price,
        round(cast((to_price - from_price) * 100 as double) / cast(from_price as double), 6) as pct_change,
        case when to_price > from_price then 'up' else 'down' end as direction
    from moves
    where from_minute = to_minute - interval '1 minute'
      and abs(cast(to_price - from_price as double)) * 100
          >= {{ var('price_jump_threshold_pct') | float }} * cast(from_price as double)
)

select * from final
where {{ in_window('to_minute') }}
