{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date']) }}
-- Daily bars rolled up from `bars_1m`: one row per symbol-day with trades (same columns;
-- `minute` is the start of the UTC day). VWAP is exact by construction, as in bars_1h:
-- sum(vwap * volume) / sum(volume) is the day's sum(price * qty) / sum(qty) up to float
-- rounding (~1e-15 relative).
WITH day_bars AS (
    SELECT
        *,
        DATE_TRUNC('day', minute) AS bar_start,
        ROW_NUMBER() OVER (PARTITION BY DATE_TRUNC('day', minute) ORDER BY minute) AS first_rank,
        ROW_NUMBER() OVER (
            PARTITION BY DATE_TRUNC('day', minute) ORDER BY minute DESC
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
FROM day_bars
GROUP BY exchange, symbol, date, bar_start
ORDER BY minute
