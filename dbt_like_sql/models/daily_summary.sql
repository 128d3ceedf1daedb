{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date']) }}
-- One row per symbol-day, always, even for a day with no trades or quotes (counts 0,
-- prices null): the row itself says the day was built. Trade figures come from bars_1d,
-- the mean spread from spread_1m, the time-weighted spread from quotes, `sources` from
-- the clean trades, gap counts from the streaming lander's `stream_events`.
--
-- Every input is reduced to one row by an aggregate without GROUP BY (bars_1d holds at
-- most one row per partition), then the one-row inputs are cross-joined.
WITH day_bars AS (
    SELECT
        CAST(COALESCE(SUM(trades), 0) AS BIGINT) AS trades,
        COALESCE(SUM(volume), 0.0) AS volume,
        COALESCE(SUM(quote_volume), 0.0) AS quote_volume,
        MAX(vwap) AS vwap,
        MAX(open) AS open,
        MAX(high) AS high,
        MIN(low) AS low,
        MAX(close) AS close
    FROM {{ ref('bars_1d') }}
),

day_spreads AS (
    -- quote-weighted: the mean spread over every quote of the day
    SELECT
        SUM(spread_mean * quotes) / NULLIF(SUM(quotes), 0) AS spread_mean,
        CAST(COALESCE(SUM(quotes), 0) AS BIGINT) AS quotes
    FROM {{ ref('spread_1m') }}
),

quote_spans AS (
    -- The day's time-weighted spread comes from the quotes themselves: spread_1m has no
    -- row for a minute without quote updates, so summing its minutes would drop the time
    -- a quote stood through quiet minutes. Each quote stands until the next one; the
    -- last until the end of its minute, as in spread_1m.
    SELECT
        ask_price - bid_price AS spread,
        CAST(
            COALESCE(
                LEAD(ts) OVER (ORDER BY ts, update_id),
                DATE_TRUNC('minute', ts) + INTERVAL '1 minute'
            ) AS BIGINT
        ) - CAST(ts AS BIGINT) AS stood_us
    FROM {{ ref('quotes') }}
),

day_twa AS (
    SELECT SUM(spread * stood_us) / NULLIF(SUM(stood_us), 0) AS spread_twa
    FROM quote_spans
),

day_sources AS (
    SELECT STRING_AGG(DISTINCT source, ',' ORDER BY source) AS sources
    FROM {{ ref('trades') }}
),

day_events AS (
    -- kinds written by the streaming lander: a gap it found, and a gap it filled from REST
    SELECT
        CAST(COUNT(*) FILTER (WHERE kind = 'gap') AS BIGINT) AS gaps_found,
        CAST(COUNT(*) FILTER (WHERE kind = 'gap_filled') AS BIGINT) AS gaps_filled
    FROM {{ ref('stream_events') }}
)

SELECT
    {{ partition.exchange }} AS exchange,
    {{ partition.symbol }} AS symbol,
    {{ partition.date }} AS date,
    day_bars.trades,
    day_bars.volume,
    day_bars.quote_volume,
    day_bars.vwap,
    day_bars.open,
    day_bars.high,
    day_bars.low,
    day_bars.close,
    day_spreads.quotes,
    day_spreads.spread_mean,
    day_twa.spread_twa,
    day_sources.sources,
    day_events.gaps_found,
    day_events.gaps_filled
FROM day_bars
CROSS JOIN day_spreads
CROSS JOIN day_twa
CROSS JOIN day_sources
CROSS JOIN day_events
