{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date']) }}
-- Daily bars rolled up from `bars_1m`: one row per symbol-day with trades (same columns;
-- `minute` is the start of the UTC day).
{{ rollup_bars(ref('bars_1m'), 'day') }}
