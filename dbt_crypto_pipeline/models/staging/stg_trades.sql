{{ config(unique_key=['symbol', 'trade_id'], window_column='trade_time') }}
-- Silver: typed trades, one row per symbol and trade id, for the minute files of the window.
-- depends_on: {{ source('lake', 'raw_trades') }}
{%- set patterns = lake_hour_patterns(ref('stg_trade_minutes')) %}

with source as (
    {%- if patterns %}
    select * from read_parquet([
        {%- for pattern in patterns %}'{{ pattern }}'{{ ', ' if not loop.last }}{% endfor -%}
    ], hive_partitioning = true, union_by_name = true)  -- not the first file's types: an old-layout file is decimal(18, 8)
    {%- else %}
    -- no minute file in the window
    select
        null::varchar as symbol, null::bigint as trade_id, null::{{ price_type() }} as price,
        null::{{ price_type() }} as qty, null::timestamptz as trade_time,
        null::boolean as is_buyer_maker, null::timestamptz as received_at
    where false
    {%- endif %}
),

renamed as (
    select
        cast(symbol as varchar) as symbol,
        cast(trade_id as bigint) as trade_id,
        cast(price as {{ price_type() }}) as price,
        cast(qty as {{ price_type() }}) as qty,
        -- the quote amount is not stored in the lake: price x qty, exact (up to 16 decimals, 22 integer digits)
        cast(price as {{ price_type() }}) * cast(qty as {{ price_type() }}) as quote_qty,
        cast(trade_time as timestamp) as trade_time,  -- UTC (the profile sets TimeZone=UTC)
        cast(is_buyer_maker as boolean) as is_buyer_maker,
        not cast(is_buyer_maker as boolean) as is_taker_buy,
        cast(received_at as timestamp) as received_at
    from source
),

final as (
    select *
    from renamed
    where {{ in_window('trade_time') }}
    -- a trade seen on the stream keeps its received_at over a REST copy of it
    qualify row_number() over (partition by symbol, trade_id order by received_at nulls last) = 1
)

select * from final
