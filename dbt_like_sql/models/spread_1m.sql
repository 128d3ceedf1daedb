{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date']) }}
-- Per minute of the day: best bid/ask spread statistics from `quotes`, and the book VWAP
-- price with its 30 s and 1 min moving averages from the depth20 snapshots in
-- `ticks_depth`. One row per minute that has a quote or a snapshot.
--
-- Time-weighted spread: a quote stands from its ts until the next quote (or the end of its
-- minute, whichever is first). The quote standing when a minute opens, carried over from
-- an earlier minute of the same day, covers the minute from its start to the minute's
-- first quote. Weighted by microseconds; `covered_seconds` is the total weight. Spread
-- columns are null in a minute without quote updates (only snapshots): from quotes alone
-- a quiet book and a stalled stream look the same, so nothing is extrapolated.
--
-- Moving averages are sampled at the bar close (the end of the minute), over the
-- snapshots inside the trailing window: book_vwap_ma_30s averages the snapshots in
-- [minute + 30 s, minute + 60 s), book_vwap_ma_1m those in [minute, minute + 60 s). Polars
-- SQL has no RANGE window frames, but at a one-minute grain both windows lie inside the
-- bar, so conditional aggregates express them exactly.
WITH quote_rows AS (
    SELECT
        ts,
        update_id,
        DATE_TRUNC('minute', ts) AS minute,
        ask_price - bid_price AS spread,
        (ask_price + bid_price) / 2 AS mid_price
    FROM {{ ref('quotes') }}
),

quote_spans AS (
    SELECT
        *,
        LEAD(ts) OVER (ORDER BY ts, update_id) AS next_ts,
        LAG(spread) OVER (ORDER BY ts, update_id) AS carried_spread,
        ROW_NUMBER() OVER (PARTITION BY minute ORDER BY ts, update_id) AS rank_in_minute
    FROM quote_rows
),

quote_weights AS (
    SELECT
        *,
        CAST(
            LEAST(COALESCE(next_ts, minute + INTERVAL '1 minute'), minute + INTERVAL '1 minute')
            AS BIGINT
        ) - CAST(ts AS BIGINT) AS stood_us,
        CASE
            WHEN rank_in_minute = 1 AND carried_spread IS NOT NULL
                THEN CAST(ts AS BIGINT) - CAST(minute AS BIGINT)
            ELSE 0
        END AS carried_us
    FROM quote_spans
),

quote_minutes AS (
    SELECT
        minute,
        CAST(COUNT(*) AS BIGINT) AS quotes,
        AVG(spread) AS spread_mean,
        MIN(spread) AS spread_min,
        MAX(spread) AS spread_max,
        SUM(
            spread * stood_us
            + CASE WHEN carried_us > 0 THEN carried_spread * carried_us ELSE 0 END
        ) / NULLIF(SUM(stood_us + carried_us), 0) AS spread_twa,
        CAST(SUM(stood_us + carried_us) AS DOUBLE) / 1000000 AS covered_seconds,
        AVG(mid_price) AS mid_price_mean
    FROM quote_weights
    GROUP BY minute
),

snapshots AS (
    -- a snapshot landed twice (at-least-once delivery) counts once
    SELECT
        ts,
        last_update_id,
        DATE_TRUNC('minute', ts) AS minute,
        (
            ARRAY_SUM(bid_prices * bid_qtys) / NULLIF(ARRAY_SUM(bid_qtys), 0)
            + ARRAY_SUM(ask_prices * ask_qtys) / NULLIF(ARRAY_SUM(ask_qtys), 0)
        ) / 2 AS book_vwap_price
    FROM {{ ref('ticks_depth') }}
    QUALIFY ROW_NUMBER() OVER (PARTITION BY ts, last_update_id ORDER BY received_at) = 1
),

snapshot_minutes AS (
    SELECT
        minute,
        CAST(COUNT(*) AS BIGINT) AS snapshots,
        MAX(CASE WHEN last_rank = 1 THEN book_vwap_price END) AS book_vwap_price,
        AVG(
            CASE WHEN ts >= minute + INTERVAL '30 seconds' THEN book_vwap_price END
        ) AS book_vwap_ma_30s,
        AVG(book_vwap_price) AS book_vwap_ma_1m
    FROM (
        SELECT
            *,
            ROW_NUMBER() OVER (
                PARTITION BY minute ORDER BY ts DESC, last_update_id DESC
            ) AS last_rank
        FROM snapshots
    )
    GROUP BY minute
),

minutes AS (
    SELECT minute FROM quote_minutes
    UNION
    SELECT minute FROM snapshot_minutes
)

SELECT
    {{ partition.exchange }} AS exchange,
    {{ partition.symbol }} AS symbol,
    {{ partition.date }} AS date,
    minutes.minute,
    COALESCE(quote_minutes.quotes, 0) AS quotes,
    quote_minutes.spread_mean,
    quote_minutes.spread_min,
    quote_minutes.spread_max,
    quote_minutes.spread_twa,
    COALESCE(quote_minutes.covered_seconds, 0) AS covered_seconds,
    quote_minutes.mid_price_mean,
    COALESCE(snapshot_minutes.snapshots, 0) AS snapshots,
    snapshot_minutes.book_vwap_price,
    snapshot_minutes.book_vwap_ma_30s,
    snapshot_minutes.book_vwap_ma_1m
FROM minutes
LEFT JOIN quote_minutes ON minutes.minute = quote_minutes.minute
LEFT JOIN snapshot_minutes ON minutes.minute = snapshot_minutes.minute
ORDER BY minutes.minute
