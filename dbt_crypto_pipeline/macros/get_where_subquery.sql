{#- Tests' `where` configs may say __window_start__ and __window_end__: they become the run's window at execution
    (dbt's YAML parser cannot call project macros, and vars in YAML would be frozen at parse time). -#}
{% macro get_where_subquery(relation) -%}
  {%- set where = config.get('where') -%}
  {%- if where -%}
    {%- set where = where | replace('__window_start__', window_start()) | replace('__window_end__', window_end()) -%}
    {%- set filtered -%}
      (select * from {{ relation }} where {{ where }}) dbt_subquery
    {%- endset -%}
    {% do return(filtered) %}
  {%- else -%}
    {% do return(relation) %}
  {%- endif -%}
{%- endmacro %}
