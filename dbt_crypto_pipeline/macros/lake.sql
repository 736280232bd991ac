{#- The trade lake: <lake_url>/raw_trades/symbol=<SYMBOL>/date=<YYYY-MM-DD>/<HH-MM>.parquet, one file per
    symbol-minute (written by crypto_assets.lake; a minute without trades is an empty file). -#}

{% macro lake_root() -%}
  {%- set url = var('lake_url') | string | trim -%}
  {%- if url == '' -%}
    {{ exceptions.raise_compiler_error("var lake_url is empty: set CRYPTO_LAKE_URL or pass --vars '{lake_url: ...}'") }}
  {%- endif -%}
  {%- if "'" in url -%}
    {{ exceptions.raise_compiler_error("var lake_url must not contain a quote: " ~ url) }}
  {%- endif -%}
  {{- url.rstrip('/') -}}
{%- endmacro %}

{% macro lake_date_globs() -%}
  {#- One glob per UTC date of the window (listing only those folders), or every date without a window. -#}
  {%- set start, end = window_bounds() -%}
  {%- set root = lake_root() ~ '/raw_trades/symbol=*/date=' -%}
  {%- if start is none or end is none or (end - start).days > 400 -%}
    {{ return([root ~ '*/*.parquet']) }}
  {%- endif -%}
  {%- set last = (end - modules.datetime.timedelta(microseconds=1)).date() -%}
  {%- set globs = [] -%}
  {%- for offset in range((last - start.date()).days + 1) -%}
    {%- do globs.append(root ~ (start.date() + modules.datetime.timedelta(days=offset)).isoformat() ~ '/*.parquet') -%}
  {%- endfor -%}
  {{ return(globs) }}
{%- endmacro %}

{% macro lake_minute_files() -%}
  {#- SQL: every minute file of the window's dates as (file, symbol, minute_start); filter to the window yourself. -#}
  select file, parts.symbol as symbol,
         strptime(parts.day || ' ' || parts.hh || ':' || parts.mm, '%Y-%m-%d %H:%M') as minute_start
  from (
      select file,
             regexp_extract(file, 'symbol=([A-Z0-9]+)/date=([0-9]{4}-[0-9]{2}-[0-9]{2})/([0-9]{2})-([0-9]{2})[.]parquet$',
                            ['symbol', 'day', 'hh', 'mm']) as parts
      from (
          {%- for pattern in lake_date_globs() %}
          select file from glob('{{ pattern }}'){% if not loop.last %} union all{% endif %}
          {%- endfor %}
      )
  )
  where parts.symbol <> ''
{%- endmacro %}

{% macro lake_hour_patterns(minutes_relation) -%}
  {#- The files of the window as one glob per symbol-hour (a day of three symbols: 72 globs, not 4,320 paths),
      from the minute files already listed in `minutes_relation` (stg_trade_minutes). -#}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set query -%}
    select distinct regexp_replace(file, '/([0-9]{2})-[0-9]{2}[.]parquet$', '/\1-*.parquet') as pattern
    from {{ minutes_relation }} where {{ in_window('minute_start') }} order by 1
  {%- endset -%}
  {{ return(run_query(query).columns[0].values() | list) }}
{%- endmacro %}
