{% test ohlc_consistent(model) %}
-- Fails with every candle whose low/high do not bound its open and close (low <= open, close <= high).
select *
from {{ model }}
where not (low <= open and open <= high and low <= close and close <= high)
   or open is null or high is null or low is null or close is null
{% endtest %}
