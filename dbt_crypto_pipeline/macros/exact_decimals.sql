{#- Exact decimal arithmetic for Binance amounts. The lake stores price and qty as decimal(19, 8) (Binance's int64
    counts of 1e-8); price x qty is then exact as decimal(38, 16). DuckDB divides decimals in floating point, so the
    VWAP below is an integer division of exact unit counts instead. -#}

{#- The column types, in one place: every model casts to these. -#}
{% macro price_type() %}decimal(19, 8){% endmacro %}
{% macro volume_type() %}decimal(38, 8){% endmacro %}
{% macro quote_type() %}decimal(38, 16){% endmacro %}

{% macro units(amount, scale) -%}
  {#- an exact decimal of at most `scale` decimals as a hugeint count of 10^-scale (no rounding, no overflow up to
      10^22 whole units) -#}
  (cast(trunc({{ amount }}) as hugeint) * cast(1e{{ scale }} as hugeint)
   + cast(({{ amount }} - trunc({{ amount }})) * cast(1e{{ scale }} as hugeint) as hugeint))
{%- endmacro %}

{% macro vwap(quote_volume, volume) -%}
  {#- quote_volume / volume rounded half up to 8 decimals, exactly: with Q in 1e-16 and V in 1e-8 units,
      VWAP in 1e-8 units is Q / V. Null without volume. -#}
  case when {{ volume }} > 0 then
    cast(({{ units(quote_volume, 16) }} + {{ units(volume, 8) }} // 2) // {{ units(volume, 8) }} as decimal(38, 0))
      * cast(0.00000001 as decimal(9, 8))
  end
{%- endmacro %}
