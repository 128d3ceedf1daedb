"""The analytics' conventions on frames small enough to read: ties, instruments, one trade."""

from __future__ import annotations

import datetime as dt

import polars as pl

import marketlake as ml
from marketlake import schemas

T0 = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)


def at(ms: int) -> dt.datetime:
    return T0 + dt.timedelta(milliseconds=ms)


def trades(rows: list[tuple[str, int, int, float, bool]]) -> pl.LazyFrame:
    """(symbol, ms, trade_id, price, is_buyer_maker) rows as `trades`."""
    return schemas.conform(
        pl.DataFrame(
            {
                "exchange": "binance",
                "symbol": [r[0] for r in rows],
                "date": T0.date(),
                "trade_id": [r[2] for r in rows],
                "price": [r[3] for r in rows],
                "qty": 1.0,
                "quote_qty": [r[3] for r in rows],
                "ts": [at(r[1]) for r in rows],
                "is_buyer_maker": [r[4] for r in rows],
                "source": "ws",
                "ingested_at": T0,
            }
        ),
        schemas.TRADES,
    ).lazy()


def quotes(rows: list[tuple[str, int, int, float, float]]) -> pl.LazyFrame:
    """(symbol, ms, update_id, bid, ask) rows as `quotes`."""
    return schemas.conform(
        pl.DataFrame(
            {
                "exchange": "binance",
                "symbol": [r[0] for r in rows],
                "date": T0.date(),
                "ts": [at(r[1]) for r in rows],
                "received_at": [at(r[1]) for r in rows],
                "update_id": [r[2] for r in rows],
                "bid_price": [r[3] for r in rows],
                "bid_qty": 1.0,
                "ask_price": [r[4] for r in rows],
                "ask_qty": 1.0,
            }
        ),
        schemas.QUOTES,
    ).lazy()


def test_quotes_sharing_a_timestamp_prevail_by_update_id_and_never_cross_instruments():
    book = quotes(
        [
            ("BTCUSDT", 0, 11, 100.0, 102.0),
            ("BTCUSDT", 10, 13, 100.0, 101.0),  # same ts, later update: prevails
            ("BTCUSDT", 10, 12, 90.0, 110.0),
            ("ETHUSDT", 15, 1, 1.0, 2.0),  # newer, but another symbol
        ]
    )
    prints = trades([("BTCUSDT", 20, 7, 101.0, False), ("BTCUSDT", 10, 6, 99.0, True)])
    got = ml.effective_spread(ml.trades_with_quotes(prints, book)).collect()
    assert got["trade_id"].to_list() == [6, 7]  # ordered by ts
    assert got["sign"].to_list() == [-1, 1]
    assert got["mid_price"].to_list() == [100.5, 100.5]  # a quote at the trade's ts counts
    assert got["effective_spread"].to_list() == [3.0, 1.0]
    assert got["effective_spread_bps"].to_list() == [3.0 / 100.5 * 1e4, 1.0 / 100.5 * 1e4]


def test_a_trade_before_any_quote_is_kept_with_no_quote():
    got = ml.trades_with_quotes(
        trades([("BTCUSDT", 0, 1, 100.0, False)]), quotes([("BTCUSDT", 5, 1, 99.0, 101.0)])
    ).collect()
    assert got.height == 1 and got["mid_price"].to_list() == [None]


def test_a_bar_with_one_trade_has_no_return_and_zero_volatility():
    got = ml.realized_volatility(
        trades([("BTCUSDT", 0, 1, 100.0, False), ("BTCUSDT", 61_000, 2, 101.0, False)]), "1m"
    ).collect()
    assert got["minute"].to_list() == [T0, T0 + dt.timedelta(minutes=1)]
    assert got["returns"].to_list() == [0, 0]
    assert got["realized_volatility"].to_list() == [0.0, 0.0]
