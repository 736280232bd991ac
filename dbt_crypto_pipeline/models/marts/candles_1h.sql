{{ config(unique_key=['symbol', 'hour_start'], window_column='hour_start') }}
-- Gold: one OHLCV candle per symbol-hour from the 1m candles. minute_count says how many minutes were captured;
-- an hour is only complete with 60 (the tests refuse anything else).

with candles as (
    select *
    from {{ ref('candles_1m') }}
    where {{ in_window('minute_start') }}
),

final as (
    select
        symbol,
        date_trunc('hour', minute_start) as hour_start,
        date_trunc('hour', minute_start) + interval '1 hour' as hour_end,
        coalesce(arg_min(open, minute_start) filter (where trade_count > 0), arg_min(open, minute_start)) as open,
        coalesce(max(high) filter (where trade_count > 0), max(high)) as high,
        coalesce(min(low) filter (where trade_count > 0), min(low)) as low,
        coalesce(arg_max(close, minute_start) filter (where trade_count > 0), arg_max(close, minute_start)) as close,
        sum(trade_count) as trade_count,
        cast(sum(volume) as {{ volume_type() }}) as volume,
        cast(sum(quote_volume) as {{ quote_type() }}) as quote_volume,
        cast(sum(taker_buy_volume) as {{ volume_type() }}) as taker_buy_volume,
        cast(sum(taker_buy_quote_volume) as {{ quote_type() }}) as taker_buy_quote_volume,
        {{ vwap('sum(quote_volume)', 'sum(volume)') }} as vwap,
        min(first_trade_id) as first_trade_id,
        max(last_trade_id) as last_trade_id,
        count(*) as minute_count,
        count(*) = 60 as is_complete
    from candles
    group by 1, 2
)

select * from final
