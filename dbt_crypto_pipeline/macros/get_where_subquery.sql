{#- What a test looks at (dbt calls this macro for the relation of every generic test). A model declares its time
    column once, as config `window_column` (which `replace_window` rebuilds by): every test of that model then looks at
    the run's window only (`in_window(window_column)`), so an hourly run tests its hour, not the whole history. A
    model with `window_grain='day'` (daily_stats: one row per symbol and day) is tested whole. A test's own `where`
    config (e.g. `trade_count > 0`) narrows it further. The tested model is found in `graph` when the test runs (a
    test's `where` in YAML is rendered at parse time, without project macros or the run's vars). -#}
{% macro get_where_subquery(relation) -%}
  {%- set filters = [] -%}
  {%- set column = tested_window_column() -%}
  {%- if column -%}
    {%- do filters.append(in_window(column)) -%}
  {%- endif -%}
  {%- if config.get('where') -%}
    {%- do filters.append('(' ~ config.get('where') ~ ')') -%}
  {%- endif -%}
  {%- if filters -%}
    {%- set filtered -%}
      (select * from {{ relation }} where {{ filters | join(' and ') }}) dbt_subquery
    {%- endset -%}
    {% do return(filtered) %}
  {%- else -%}
    {% do return(relation) %}
  {%- endif -%}
{%- endmacro %}

{% macro tested_window_column() -%}
  {#- The `window_column` config of the model the current test is attached to; none for a day-grain model, a model
      without one, or while parsing. -#}
  {%- if not execute or not model.attached_node -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set tested = graph.nodes.get(model.attached_node) -%}
  {%- if tested is none or tested.config.get('window_grain') == 'day' -%}
    {{ return(none) }}
  {%- endif -%}
  {{ return(tested.config.get('window_column')) }}
{%- endmacro %}
