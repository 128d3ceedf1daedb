"""Market-microstructure figures as pure functions over LazyFrames of lake tables.

What analysts otherwise write by hand on every project, with the conventions fixed once:

- a trade's sign is the exchange's aggressor flag (+1 the taker bought, -1 the taker
  sold; `is_buyer_maker` is true when the taker sold), never inferred from prices;
- the prevailing quote of a trade is the latest quote of its exchange and symbol at or
  before the trade's `ts` (quotes sharing a timestamp: the highest `update_id`);
- effective spread = 2 * |price - mid|, in price units and in basis points of the mid;
- realized volatility of a bar = sqrt(sum of squared log returns between consecutive
  trades inside the bar), trades ordered by (ts, trade_id), bars aligned to the UTC day.

Every function takes and returns a LazyFrame, so it composes with `ml.trades`/`ml.quotes`
reads and with each other, and nothing runs until `.collect()`.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from marketlake.resampling import bar_start, parse_every

#: Columns of the prevailing quote that `trades_with_quotes` adds to each trade.
QUOTE_COLUMNS = ("quote_ts", "bid_price", "bid_qty", "ask_price", "ask_qty", "mid_price")
_INSTRUMENT = ["exchange", "symbol"]


def sign() -> pl.Expr:
    """+1 when the taker bought, -1 when the taker sold (Int8)."""
    return pl.when(pl.col("is_buyer_maker")).then(-1).otherwise(1).cast(pl.Int8)


def trades_with_quotes(
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame,
    *,
    max_quote_age: dt.timedelta | None = None,
) -> pl.LazyFrame:
    """Each trade, signed, beside the quote prevailing when it printed.

    Adds `sign` and QUOTE_COLUMNS; trades with no quote before them (or none younger than
    `max_quote_age`) keep null quote columns rather than being dropped, so counts still
    match the trades read. Rows come out ordered by ts (then trade_id).
    """
    book = (
        quotes.select(
            *_INSTRUMENT,
            quote_ts=pl.col("ts"),
            update_id=pl.col("update_id"),
            bid_price=pl.col("bid_price"),
            bid_qty=pl.col("bid_qty"),
            ask_price=pl.col("ask_price"),
            ask_qty=pl.col("ask_qty"),
        )
        .sort("quote_ts", "update_id", nulls_last=False)
        .unique(subset=[*_INSTRUMENT, "quote_ts"], keep="last", maintain_order=True)
        .with_columns(mid_price=(pl.col("bid_price") + pl.col("ask_price")) / 2)
        .drop("update_id")
    )
    return (
        trades.sort("ts", "trade_id")
        .with_columns(sign=sign())
        .join_asof(
            book,
            left_on="ts",
            right_on="quote_ts",
            by=_INSTRUMENT,
            strategy="backward",
            tolerance=max_quote_age,
            check_sortedness=False,
        )
    )


def effective_spread(trades_and_quotes: pl.LazyFrame) -> pl.LazyFrame:
    """Adds `effective_spread` = 2 * |price - mid| and `effective_spread_bps` (of the mid).

    Takes the output of `trades_with_quotes`; null where a trade had no quote.
    """
    spread = 2 * (pl.col("price") - pl.col("mid_price")).abs()
    return trades_and_quotes.with_columns(effective_spread=spread).with_columns(
        effective_spread_bps=pl.col("effective_spread") / pl.col("mid_price") * 10_000
    )


def realized_volatility(trades: pl.LazyFrame, freq: str | dt.timedelta = "1m") -> pl.LazyFrame:
    """Per instrument and bar: `trades`, `returns` and `realized_volatility`.

    `freq` may be finer than a minute (`"10s"`). Returns are taken between consecutive
    trades of the same bar only, so a bar's figure depends on nothing outside it; a bar
    with one trade has no return and a volatility of 0. Columns: exchange, symbol, date,
    minute (the bar start, as in the bars tables), trades, returns, realized_volatility.
    """
    every = parse_every(freq)
    keys = [*_INSTRUMENT, "date", "minute"]
    log_return = pl.col("price").log().diff().over(keys)
    return (
        trades.with_columns(minute=bar_start("ts", every))
        .sort(*keys, "ts", "trade_id")
        .with_columns(log_return=log_return)
        .group_by(keys, maintain_order=True)
        .agg(
            trades=pl.len().cast(pl.Int64),
            returns=pl.col("log_return").count().cast(pl.Int64),
            realized_volatility=(pl.col("log_return") ** 2).sum().sqrt(),
        )
    )
