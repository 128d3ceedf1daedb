"""Small `trades` frames for lake tests, local or on S3."""

from __future__ import annotations

import datetime as dt

import polars as pl

from marketlake import schemas

DAY = dt.date(2024, 3, 1)


def trades(symbol: str, ids: range, date: dt.date = DAY, price: float = 100.0) -> pl.DataFrame:
    n = len(ids)
    ts = dt.datetime.combine(date, dt.time(1), tzinfo=dt.UTC)
    return schemas.conform(
        pl.DataFrame(
            {
                "exchange": ["binance"] * n,
                "symbol": [symbol] * n,
                "date": [date] * n,
                "trade_id": list(ids),
                "price": [price] * n,
                "qty": [1.0] * n,
                "quote_qty": [price] * n,
                "ts": [ts] * n,
                "is_buyer_maker": [False] * n,
                "source": ["archive"] * n,
                "ingested_at": [ts] * n,
            }
        ),
        schemas.TRADES,
    )


def partition(symbol: str, date: dt.date = DAY) -> dict:
    return {"exchange": "binance", "symbol": symbol, "date": date}
