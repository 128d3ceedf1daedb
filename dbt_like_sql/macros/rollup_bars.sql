{#
  rollup_bars(bars, grain): the bars of `bars` (a relation with bars_1m's columns) rolled
  up to `grain` ('hour', 'day': a DATE_TRUNC unit), with the same columns; `minute` is the
  start of the coarser bar. One macro for every coarser grain, so the bars cannot disagree
  on how they roll up.

  VWAP is exact by construction: each minute's vwap * volume is that minute's
  sum(price * qty), so sum(vwap * volume) / sum(volume) is the coarser bar's trade VWAP
  (up to float rounding, ~1e-15 relative).
#}
{% macro rollup_bars(bars, grain) -%}
WITH rolled AS (
    SELECT
        *,
        DATE_TRUNC('{{ grain }}', minute) AS bar_start,
        ROW_NUMBER() OVER (
            PARTITION BY DATE_TRUNC('{{ grain }}', minute) ORDER BY minute
        ) AS first_rank,
        ROW_NUMBER() OVER (
            PARTITION BY DATE_TRUNC('{{ grain }}', minute) ORDER BY minute DESC
        ) AS last_rank
    FROM {{ bars }}
)

SELECT
    exchange,
    symbol,
    date,
    bar_start AS minute,
    MAX(CASE WHEN first_rank = 1 THEN open END) AS open,
    MAX(high) AS high,
    MIN(low) AS low,
    MAX(CASE WHEN last_rank = 1 THEN close END) AS close,
    SUM(volume) AS volume,
    SUM(quote_volume) AS quote_volume,
    SUM(vwap * volume) / NULLIF(SUM(volume), 0) AS vwap,
    CAST(SUM(trades) AS BIGINT) AS trades,
    SUM(buy_volume) AS buy_volume,
    SUM(sell_volume) AS sell_volume
FROM rolled
GROUP BY exchange, symbol, date, bar_start
ORDER BY minute
{%- endmacro %}
