{{ config(materialized='partitioned', partition_by=['exchange', 'symbol', 'date']) }}
-- Hourly bars rolled up from `bars_1m` (same columns; `minute` is the start of the hour).
{{ rollup_bars(ref('bars_1m'), 'hour') }}
