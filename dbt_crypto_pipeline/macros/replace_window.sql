{#- Incremental strategy `replace_window`: delete the rows of the run's window from the target, then insert the
    freshly built ones. An hour partition is replaced as a whole (rows that vanished from the source vanish here too,
    which delete+insert by unique key would keep). Models set `window_column` (a timestamp column) and optionally
    `window_grain='day'` (the column is a date: every day the window touches is replaced). Their tests read the same
    config (get_where_subquery.sql). -#}
{% macro get_incremental_replace_window_sql(arg_dict) %}
  {%- set target = arg_dict['target_relation'] -%}
  {%- set source = arg_dict['temp_relation'] -%}
  {%- set column = config.get('window_column') -%}
  {%- if not column -%}
    {{ exceptions.raise_compiler_error(model.name ~ ": incremental_strategy replace_window needs config window_column") }}
  {%- endif -%}
  {%- set cols = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
  delete from {{ target }} where
  {%- if config.get('window_grain') == 'day' %} {{ in_window_days(column) }}{% else %} {{ in_window(column) }}{% endif %};
  insert into {{ target }} ({{ cols }}) select {{ cols }} from {{ source }}
{% endmacro %}
