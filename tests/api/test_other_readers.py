"""pandas and DuckDB read the same tables and get the same rows as `ml`.

DuckDB reads through Arrow (`DeltaTable.to_pyarrow_dataset()`): its own delta extension
is downloaded on first use, which these machines cannot do.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl
from deltalake import DeltaTable

import marketlake as ml


def test_pandas_through_deltalake_reads_the_rows_ml_reads(sim_lake):
    table = DeltaTable(sim_lake.table_uri("bars_1m"))
    frame = table.to_pandas(
        filters=[("symbol", "=", "BTCUSDT"), ("date", "=", dt.date(2024, 3, 2))]
    )
    ours = ml.bars("BTCUSDT", "2024-03-02", lake=sim_lake).collect().sort("minute")
    theirs = pl.from_pandas(frame).select(ours.columns).sort("minute")
    assert theirs.height == ours.height > 0
    assert theirs.equals(ours)


def test_duckdb_over_arrow_reads_the_rows_ml_reads(sim_lake):
    trades = DeltaTable(sim_lake.table_uri("trades")).to_pyarrow_dataset()
    connection = duckdb.connect()
    connection.register("trades", trades)
    vwap, count = connection.execute(
        "SELECT sum(price * qty) / sum(qty), count(*) FROM trades "
        "WHERE symbol = 'ETHUSDT' AND date = DATE '2024-03-03'"
    ).fetchone()
    ours = ml.trades("ETHUSDT", "2024-03-03", lake=sim_lake).select(
        vwap=(pl.col("price") * pl.col("qty")).sum() / pl.col("qty").sum(), count=pl.len()
    )
    expected = ours.collect().row(0)
    assert count == expected[1] > 0
    assert abs(vwap - expected[0]) <= 1e-12 * expected[0]
