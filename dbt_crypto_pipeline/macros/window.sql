{#- The time window a run (re)builds: vars window_start / window_end ('YYYY-MM-DD HH:MM:SS', UTC, end exclusive).
    Dagster passes an hour partition's (or a backfill range's) window; without them a run covers the whole lake. -#}

{% macro _window_var(name) -%}
  {%- set value = var(name, none) -%}
  {%- if value is none or value | string | trim == '' -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set text = value | string | trim -%}
  {%- if modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}', text) is none -%}
    {{ exceptions.raise_compiler_error("var " ~ name ~ "=" ~ text ~ " is not a UTC time 'YYYY-MM-DD HH:MM:SS'") }}
  {%- endif -%}
  {{ return(modules.datetime.datetime.strptime(text.replace('T', ' '), '%Y-%m-%d %H:%M:%S')) }}
{%- endmacro %}

{% macro window_bounds() -%}
  {#- (start, end) as datetimes, None when unset; raises when the window is empty or reversed. -#}
  {%- set start = _window_var('window_start') -%}
  {%- set end = _window_var('window_end') -%}
  {%- if start is not none and end is not none and end <= start -%}
    {{ exceptions.raise_compiler_error("empty window: window_end " ~ end ~ " is not after window_start " ~ start) }}
  {%- endif -%}
  {{ return((start, end)) }}
{%- endmacro %}

{% macro window_start() -%}
  {%- set start = window_bounds()[0] -%}
  timestamp '{{ start if start is not none else "1970-01-01 00:00:00" }}'
{%- endmacro %}

{% macro window_end() -%}
  {%- set end = window_bounds()[1] -%}
  timestamp '{{ end if end is not none else "9999-12-31 00:00:00" }}'
{%- endmacro %}

{% macro in_window(column, lookback=none) -%}
  {#- `column` falls in the window; `lookback` (e.g. '59 minutes') extends it backwards for rolling windows. -#}
  ({{ column }} >= {{ window_start() }}{% if lookback %} - interval '{{ lookback }}'{% endif %} and {{ column }} < {{ window_end() }})
{%- endmacro %}

{% macro in_window_days(column) -%}
  {#- `column` (a date) is a UTC day that the window touches. -#}
  ({{ column }} >= cast({{ window_start() }} as date)
   and {{ column }} <= cast({{ window_end() }} - interval '1 microsecond' as date))
{%- endmacro %}
