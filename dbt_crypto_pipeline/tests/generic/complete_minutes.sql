{% test complete_minutes(model, column_name, minutes_per_hour=60) %}
-- Fails with every (symbol, hour) of the window that does not have one row per minute for each symbol of
-- var('symbols'): an hour must never be published with missing minutes. Without a window it checks every hour
-- from the first row to the last completed hour.
{%- set start, end = window_bounds() %}
with symbols as (
    select distinct trim(symbol) as symbol
    from (select unnest(string_split(upper('{{ var("symbols") }}'), ',')) as symbol)
    where trim(symbol) <> ''
),

bounds as (
    select
        {% if start is not none %}{{ window_start() }}{% else %}(select date_trunc('hour', min({{ column_name }})) from {{ model }}){% endif %} as first_hour,
        {% if end is not none %}{{ window_end() }}{% else %}date_trunc('hour', cast(now() as timestamp)){% endif %} as end_hour
),

hours as (
    select unnest(range(first_hour, end_hour, interval '1 hour')) as hour_start
    from bounds
    where first_hour is not null
),

present as (
    select symbol, date_trunc('hour', {{ column_name }}) as hour_start, count(distinct {{ column_name }}) as minutes
    from {{ model }}
    where {{ column_name }} >= (select first_hour from bounds) and {{ column_name }} < (select end_hour from bounds)
    group by 1, 2
)

select symbols.symbol, hours.hour_start, coalesce(present.minutes, 0) as minutes,
       {{ minutes_per_hour }} - coalesce(present.minutes, 0) as missing_minutes
from symbols
cross join hours
left join present using (symbol, hour_start)
where coalesce(present.minutes, 0) <> {{ minutes_per_hour }}
{% endtest %}
