"""Vectorized wire formatting: Binance's fixed 8-decimal strings, CSV lines and JSON arrays.

Everything is built from integer units (ticks of 0.01, lots of 0.00001, quote units of
1e-7) with Polars string expressions, never with Python's float formatting per row: that
keeps the text byte-exact (`92792.05000000`, not `92792.04999999`) and formats millions of
rows in well under a second.
"""

from __future__ import annotations

from typing import Final

import polars as pl

#: Decimal places of the simulator's grids: price tick 0.01, lot 0.00001, quote 1e-7.
PRICE_DECIMALS: Final = 2
QTY_DECIMALS: Final = 5
QUOTE_DECIMALS: Final = 7
#: Binance writes every price and quantity with 8 decimals, in the archive and over REST.
WIRE_DECIMALS: Final = 8
#: Archive `time` values at or above this are microseconds (16 digits), below it ms (13).
US_THRESHOLD: Final = 10**14


def units(column: str, decimals: int) -> pl.Expr:
    """The Float64 `column` as an Int64 count of 10^-decimals units.

    Exact for the simulator's values: each float is the nearest double to a decimal on the
    grid, so scaling and rounding recovers the integer.
    """
    return (pl.col(column) * 10**decimals).round(0).cast(pl.Int64)


def decimal_text(units_expr: pl.Expr, decimals: int, width: int = WIRE_DECIMALS) -> pl.Expr:
    """Non-negative integer units of 10^-decimals as text with `width` decimals."""
    scale = 10**decimals
    return pl.concat_str(
        (units_expr // scale).cast(pl.String),
        pl.lit("."),
        (units_expr % scale).cast(pl.String).str.zfill(decimals),
        pl.lit("0" * (width - decimals)),
    )


def price_text(column: str = "price") -> pl.Expr:
    return decimal_text(units(column, PRICE_DECIMALS), PRICE_DECIMALS)


def qty_text(column: str = "qty") -> pl.Expr:
    return decimal_text(units(column, QTY_DECIMALS), QTY_DECIMALS)


def quote_text(column: str = "quote_qty") -> pl.Expr:
    return decimal_text(units(column, QUOTE_DECIMALS), QUOTE_DECIMALS)


def bool_text(column: str, true: str = "True", false: str = "False") -> pl.Expr:
    return pl.when(pl.col(column)).then(pl.lit(true)).otherwise(pl.lit(false))


def time_ms(column: str = "time") -> pl.Expr:
    """Archive time (ms before 2025, µs from 2025) as ms, which REST always uses."""
    col = pl.col(column)
    return pl.when(col >= US_THRESHOLD).then(col // 1000).otherwise(col)


def csv_lines(frame: pl.DataFrame) -> pl.Series:
    """Archive trade rows, one string per row, exactly like data.binance.vision writes them.

    `4356587539,92792.05000000,0.00129000,119.70174450,1735603200213,False,True`
    """
    return frame.select(
        pl.concat_str(
            pl.col("trade_id").cast(pl.String),
            price_text(),
            qty_text(),
            quote_text(),
            pl.col("time").cast(pl.String),
            bool_text("is_buyer_maker"),
            bool_text("is_best_match"),
            separator=",",
        )
    ).to_series()


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """Headerless archive CSV for `frame` (trade columns), each line ending in `\\n`."""
    if frame.height == 0:
        return b""
    return (csv_lines(frame).str.join("\n").item() + "\n").encode()


def _json_array(objects: pl.Expr, frame: pl.DataFrame) -> bytes:
    if frame.height == 0:
        return b"[]"
    return ("[" + frame.select(objects).to_series().str.join(",").item() + "]").encode()


def trades_json(frame: pl.DataFrame) -> bytes:
    """`/api/v3/trades` and `/api/v3/historicalTrades` body: compact JSON, times in ms."""
    obj = pl.concat_str(
        pl.lit('{"id":'),
        pl.col("trade_id").cast(pl.String),
        pl.lit(',"price":"'),
        price_text(),
        pl.lit('","qty":"'),
        qty_text(),
        pl.lit('","quoteQty":"'),
        quote_text(),
        pl.lit('","time":'),
        time_ms().cast(pl.String),
        pl.lit(',"isBuyerMaker":'),
        bool_text("is_buyer_maker", "true", "false"),
        pl.lit(',"isBestMatch":'),
        bool_text("is_best_match", "true", "false"),
        pl.lit("}"),
    )
    return _json_array(obj, frame)


def agg_trades_json(frame: pl.DataFrame) -> bytes:
    """`/api/v3/aggTrades` body with one trade per aggregate trade (a = f = l = trade id)."""
    obj = pl.concat_str(
        pl.lit('{"a":'),
        pl.col("trade_id").cast(pl.String),
        pl.lit(',"p":"'),
        price_text(),
        pl.lit('","q":"'),
        qty_text(),
        pl.lit('","f":'),
        pl.col("trade_id").cast(pl.String),
        pl.lit(',"l":'),
        pl.col("trade_id").cast(pl.String),
        pl.lit(',"T":'),
        time_ms().cast(pl.String),
        pl.lit(',"m":'),
        bool_text("is_buyer_maker", "true", "false"),
        pl.lit(',"M":'),
        bool_text("is_best_match", "true", "false"),
        pl.lit("}"),
    )
    return _json_array(obj, frame)


def levels_json(prices: pl.Series, qtys: pl.Series) -> str:
    """Book levels as Binance's `[["price","qty"], ...]` JSON text."""
    frame = pl.DataFrame({"price": prices, "qty": qtys})
    if frame.height == 0:
        return "[]"
    pairs = pl.concat_str(pl.lit('["'), price_text(), pl.lit('","'), qty_text(), pl.lit('"]'))
    return "[" + frame.select(pairs).to_series().str.join(",").item() + "]"
