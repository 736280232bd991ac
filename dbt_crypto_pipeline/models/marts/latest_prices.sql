{{ config(materialized='table', tags=['unpartitioned']) }}
-- Gold, not partitioned: the latest price of every symbol (close of its last minute with a trade) and its change
-- against the close 24 hours earlier.

with traded as (
    select symbol, minute_start, close, last_trade_id
    from {{ ref('candles_1m') }}
    where trade_count > 0
),

latest as (
    select
        symbol,
        arg_max(close, minute_start) as price,
        max(last_trade_id) as last_trade_id,
        max(minute_start) as minute_start
    from traded
    group by 1
),

day_before as (
    select latest.symbol, arg_max(traded.close, traded.minute_start) as price_24h_ago
    from latest
    join traded
      on traded.symbol = latest.symbol
     and traded.minute_start <= latest.minute_start - interval '24 hours'
    group by 1
),

final as (
    select
        latest.symbol,
        latest.price,
        latest.last_trade_id,
        latest.minute_start + interval '1 minute' as as_of,
        day_before.price_24h_ago,
        round(cast((latest.price - day_before.price_24h_ago) * 100 as double)
              / cast(day_before.price_24h_ago as double), 4) as change_24h_pct
    from latest
    left join day_before using (symbol)
)

select * from final
