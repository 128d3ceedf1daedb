{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date']) }}
-- Hourly bars rolled up from `bars_1m` (same columns; `minute` is the start of the hour).
-- VWAP is exact by construction: each minute's vwap * volume is that minute's sum of
-- price * qty, so sum(vwap * volume) / sum(volume) is the hour's trade VWAP (up to float
-- rounding, ~1e-15 relative).
WITH hour_bars AS (
    SELECT
        *,
        DATE_TRUNC('hour', minute) AS bar_start,
        ROW_NUMBER() OVER (PARTITION BY DATE_TRUNC('hour', minute) ORDER BY minute) AS first_rank,
        ROW_NUMBER() OVER (
            PARTITION BY DATE_TRUNC('hour', minute) ORDER BY minute DESC
        ) AS last_rank
    FROM {{ ref('bars_1m') }}
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
FROM hour_bars
GROUP BY exchange, symbol, date, bar_start
ORDER BY minute
