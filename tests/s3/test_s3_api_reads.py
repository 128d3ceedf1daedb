"""`ml.Lake("s3://...")` reads an S3 lake (SeaweedFS on loopback) as it reads a local one.

The endpoint and keys come from the environment, as a deployment sets them; the reads go
through the per-version file index and Parquet scans of the objects, not `pl.scan_delta`.
"""

from __future__ import annotations

import datetime as dt

from api.lakes import build_lake

import marketlake as ml

DAYS = (dt.date(2024, 3, 1), dt.date(2024, 3, 2))


def test_the_api_reads_an_s3_lake_configured_from_the_environment(
    s3_server, s3_lake_uri, monkeypatch
):
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    lake = ml.Lake(s3_lake_uri)
    assert lake.storage_options == s3_server.storage_options
    build_lake(lake, [("binance", "BTCUSDT", DAYS), ("binance", "ETHUSDT", DAYS[:1])])

    trades = ml.trades("BTCUSDT", "2024-03-01", "2024-03-02", lake=lake).collect()
    stored = lake.scan("trades", symbol="BTCUSDT").collect()
    assert trades.height == stored.height > 0
    assert trades.sort("trade_id").equals(stored.sort("trade_id"))

    bars = ml.bars(["ETHUSDT", "BTCUSDT"], "2024-03-01", freq="15m", lake=lake).collect()
    assert bars["symbol"].unique(maintain_order=True).to_list() == ["ETHUSDT", "BTCUSDT"]
    one_minute = lake.scan("bars_1m", date=DAYS[0]).collect()
    assert bars["trades"].sum() == one_minute["trades"].sum()
    assert abs(bars["volume"].sum() - one_minute["volume"].sum()) <= 1e-9 * bars["volume"].sum()
