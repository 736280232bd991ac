{{ config(unique_key=['symbol', 'minute_start'], window_column='minute_start') }}
-- Gold: one OHLCV candle per captured symbol-minute, exact decimals, equal to the exchange's own 1m kline.
-- A minute without trades (an empty minute file) carries the previous close as open/high/low/close, like Binance.

with minutes as (
    select symbol, minute_start
    from {{ ref('stg_trade_minutes') }}
    where {{ in_window('minute_start') }}
),

trades as (
    select *
    from {{ ref('stg_trades') }}
    where {{ in_window('trade_time') }}
),

traded as (
    select
        symbol,
        date_trunc('minute', trade_time) as minute_start,
        arg_min(price, trade_id) as open,
        max(price) as high,
        min(price) as low,
        arg_max(price, trade_id) as close,
        count(*) as trade_count,
        sum(qty) as volume,
        sum(quote_qty) as quote_volume,
        coalesce(sum(qty) filter (where is_taker_buy), 0) as taker_buy_volume,
        coalesce(sum(quote_qty) filter (where is_taker_buy), 0) as taker_buy_quote_volume,
        min(trade_id) as first_trade_id,
        max(trade_id) as last_trade_id
    from trades
    group by 1, 2
),

-- the last price before the window, for minutes without trades at its start
previous_close as (
    select symbol, arg_max(price, trade_id) as close
    from {{ ref('stg_trades') }}
    where trade_time < {{ window_start() }} and trade_time >= {{ window_start() }} - interval '1 day'
    group by 1
),

keys as (
    select symbol, minute_start from minutes
    union
    select symbol, minute_start from traded
),

joined as (
    select
        keys.symbol,
        keys.minute_start,
        traded.* exclude (symbol, minute_start),
        coalesce(
            last_value(traded.close ignore nulls) over (
                partition by keys.symbol order by keys.minute_start
                rows between unbounded preceding and 1 preceding),
            previous_close.close
        ) as carried_close
    from keys
    left join traded using (symbol, minute_start)
    left join previous_close using (symbol)
),

final as (
    select
        symbol,
        minute_start,
        minute_start + interval '1 minute' as minute_end,
        cast(coalesce(open, carried_close) as {{ price_type() }}) as open,
        cast(coalesce(high, carried_close) as {{ price_type() }}) as high,
        cast(coalesce(low, carried_close) as {{ price_type() }}) as low,
        cast(coalesce(close, carried_close) as {{ price_type() }}) as close,
        coalesce(trade_count, 0) as trade_count,
        cast(coalesce(volume, 0) as {{ volume_type() }}) as volume,
        cast(coalesce(quote_volume, 0) as {{ quote_type() }}) as quote_volume,
        cast(coalesce(taker_buy_volume, 0) as {{ volume_type() }}) as taker_buy_volume,
        cast(coalesce(taker_buy_quote_volume, 0) as {{ quote_type() }}) as taker_buy_quote_volume,
        -- volume-weighted average price, exactly rounded to 8 decimals; null without trades
        {{ vwap('quote_volume', 'volume') }} as vwap,
        first_trade_id,
        last_trade_id
    from joined
)

select * from final
