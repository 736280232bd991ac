{{ config(unique_key=['symbol', 'trade_date'], window_column='trade_date', window_grain='day') }}
-- Gold: per symbol and UTC day, the trade price range, mean and count. Every day the window touches is rebuilt
-- from silver, so a day reflects all of its hours built so far.
-- Built after candles_1m so that an hour failing the 60-candles test blocks this model too:
-- depends_on: {{ ref('candles_1m') }}

with trades as (
    select *
    from {{ ref('stg_trades') }}
    where trade_time >= cast(cast({{ window_start() }} as date) as timestamp)
      and trade_time < cast(cast({{ window_end() }} - interval '1 microsecond' as date) as timestamp) + interval '1 day'
),

final as (
    select
        symbol,
        cast(trade_time as date) as trade_date,
        min(price) as min_price,
        max(price) as max_price,
        cast(avg(price) as {{ price_type() }}) as mean_price,
        {{ vwap('sum(quote_qty)', 'sum(qty)') }} as vwap,
        count(*) as trade_count,
        cast(sum(qty) as {{ volume_type() }}) as volume,
        cast(sum(quote_qty) as {{ quote_type() }}) as quote_volume,
        min(trade_time) as first_trade_time,
        max(trade_time) as last_trade_time
    from trades
    group by 1, 2
)

select * from final
