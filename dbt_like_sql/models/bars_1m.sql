{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date']) }}
-- One-minute OHLCV bars from the clean `trades` table, one row per minute that has trades.
-- open/close are the first/last trade of the minute ordered by (ts, trade_id): many fills
-- share one timestamp, and the trade id is the exchange's own order of them.
WITH minute_trades AS (
    SELECT
        exchange,
        symbol,
        date,
        DATE_TRUNC('minute', ts) AS minute,
        price,
        qty,
        quote_qty,
        is_buyer_maker,
        ROW_NUMBER() OVER (
            PARTITION BY DATE_TRUNC('minute', ts) ORDER BY ts, trade_id
        ) AS first_rank,
        ROW_NUMBER() OVER (
            PARTITION BY DATE_TRUNC('minute', ts) ORDER BY ts DESC, trade_id DESC
        ) AS last_rank
    FROM {{ ref('trades') }}
)

SELECT
    exchange,
    symbol,
    date,
    minute,
    MAX(CASE WHEN first_rank = 1 THEN price END) AS open,
    MAX(price) AS high,
    MIN(price) AS low,
    MAX(CASE WHEN last_rank = 1 THEN price END) AS close,
    SUM(qty) AS volume,
    SUM(quote_qty) AS quote_volume,
    SUM(price * qty) / NULLIF(SUM(qty), 0) AS vwap,
    CAST(COUNT(*) AS BIGINT) AS trades,
    -- the taker bought when the buyer was not the maker
    SUM(CASE WHEN is_buyer_maker THEN 0.0 ELSE qty END) AS buy_volume,
    SUM(CASE WHEN is_buyer_maker THEN qty ELSE 0.0 END) AS sell_volume
FROM minute_trades
GROUP BY exchange, symbol, date, minute
ORDER BY minute
