{{ config(unique_key=['symbol', 'minute_start'], window_column='minute_start') }}
-- Silver: every symbol-minute the lake holds (a minute file, even an empty one, is a captured minute).
-- depends_on: {{ source('lake', 'raw_trades') }}

with files as (
    {{ lake_minute_files() }}
),

final as (
    select
        symbol,
        minute_start,
        cast(minute_start as date) as trade_date,
        file
    from files
    where {{ in_window('minute_start') }}
)

select * from final
