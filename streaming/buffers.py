"""Columnar buffers: records go straight into one Python list per column.

Appending a record is a handful of ``list.append`` calls; a DataFrame is built once per
flush, a whole column at a time (``pl.Series(list, dtype)``), off the event loop. No dict
per row, no DataFrame per message.

`frames` turns the columns of one flush into frames conformed to the table schemas, with
the lake keys (``exchange``, ``date``) and lineage (``source``, ``ingested_at``) added as
whole-column expressions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import polars as pl

from marketlake import schemas
from marketlake.exchanges.feed import Depth, Quote, Trade

EVENT_FIELDS: Final = ("ts_us", "symbol", "kind", "detail")
QUARANTINE_FIELDS: Final = ("ts_us", "symbol", "reason", "payload")


def _adder(lists: Sequence[list[Any]]) -> Callable[[Sequence[Any]], None]:
    """``add(row)`` appending row[i] to lists[i], unrolled (no Python loop per row).

    The hot path appends every record of every frame, so the per-row cost is a tuple
    unpack and one bound ``list.append`` call per column.
    """
    names = [f"a{i}" for i in range(len(lists))]
    values = [f"v{i}" for i in range(len(lists))]
    source = (
        f"def add(row, {', '.join(f'{n}=_{n}' for n in names)}):\n"
        f"    {', '.join(values)}, = row\n"
        + "".join(f"    {n}({v})\n" for n, v in zip(names, values, strict=True))
    )
    scope: dict[str, Any] = {f"_{n}": lst.append for n, lst in zip(names, lists, strict=True)}
    exec(source, scope)
    return scope["add"]


class Columns:
    """Lists of values, one per field, appended to in lockstep."""

    __slots__ = ("add", "fields", "lists")

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        self.lists: tuple[list[Any], ...] = ()
        #: ``add(row)``: append one record (a tuple in field order).
        self.add: Callable[[Sequence[Any]], None]
        self._reset()

    def _reset(self) -> None:
        self.lists = tuple([] for _ in self.fields)
        self.add = _adder(self.lists)

    def __len__(self) -> int:
        return len(self.lists[0])

    def take(self) -> dict[str, list[Any]]:
        """The columns so far, leaving this buffer empty (an O(1) swap, no copy)."""
        taken = dict(zip(self.fields, self.lists, strict=True))
        self._reset()
        return taken


@dataclass
class Taken:
    """Everything one flush writes, still as Python lists (frames are built in the writer)."""

    trades: dict[str, list[Any]]
    rest_trades: list[pl.DataFrame]
    quotes: dict[str, list[Any]]
    depth: dict[str, list[Any]]
    quarantine: dict[str, list[Any]]
    events: dict[str, list[Any]]
    #: The checkpoint to write once every table of this flush is committed.
    checkpoint: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return (
            len(self.trades["trade_id"])
            + sum(f.height for f in self.rest_trades)
            + len(self.quotes["symbol"])
            + len(self.depth["symbol"])
            + len(self.quarantine["reason"])
            + len(self.events["kind"])
        )


class Buffers:
    """The buffers of every table the lander writes."""

    def __init__(self) -> None:
        self.trades = Columns(Trade._fields)
        self.quotes = Columns(Quote._fields)
        self.depth = Columns(Depth._fields)
        self.quarantine = Columns(QUARANTINE_FIELDS)
        self.events = Columns(EVENT_FIELDS)
        self.rest_trades: list[pl.DataFrame] = []

    @property
    def rows(self) -> int:
        return (
            len(self.trades)
            + len(self.quotes)
            + len(self.depth)
            + len(self.quarantine)
            + len(self.events)
            + sum(f.height for f in self.rest_trades)
        )

    def take(self) -> Taken:
        rest, self.rest_trades = self.rest_trades, []
        return Taken(
            self.trades.take(),
            rest,
            self.quotes.take(),
            self.depth.take(),
            self.quarantine.take(),
            self.events.take(),
        )


# --- frames -----------------------------------------------------------------------------------


def _ts(values: list[int]) -> pl.Series:
    return pl.Series(values, dtype=pl.Int64).cast(schemas.UTC_US)


def _date(column: str = "ts") -> pl.Expr:
    return pl.col(column).dt.date().alias("date")


def trades_frame(columns: dict[str, list[Any]], exchange: str, ingested_at_us: int) -> pl.DataFrame:
    """Live trades as `schemas.TICKS_TRADES` (``source='ws'``, quote_qty = round(p*q, 8))."""
    frame = pl.DataFrame(
        [
            pl.Series("symbol", columns["symbol"], dtype=pl.String),
            pl.Series("trade_id", columns["trade_id"], dtype=pl.Int64),
            pl.Series("price", columns["price"], dtype=pl.Float64),
            pl.Series("qty", columns["qty"], dtype=pl.Float64),
            _ts(columns["ts_us"]).alias("ts"),
            pl.Series("is_buyer_maker", columns["is_buyer_maker"], dtype=pl.Boolean),
            _ts(columns["received_at_us"]).alias("received_at"),
        ]
    )
    return schemas.conform(
        frame.lazy().with_columns(
            pl.lit(exchange).alias("exchange"),
            _date(),
            (pl.col("price") * pl.col("qty")).round(8).alias("quote_qty"),
            pl.lit("ws").alias("source"),
            pl.lit(ingested_at_us).cast(pl.Int64).cast(schemas.UTC_US).alias("ingested_at"),
        ),
        schemas.TICKS_TRADES,
    )


def rest_trades_frame(
    raw: pl.DataFrame, symbol: str, exchange: str, fetched_at_us: int
) -> pl.DataFrame:
    """REST gap-fill trades (`schemas.RAW_TRADES`) as `TICKS_TRADES` with ``source='rest'``.

    ``received_at`` is when the REST answer arrived: the row was not received live.
    """
    fetched = pl.lit(fetched_at_us).cast(pl.Int64).cast(schemas.UTC_US)
    return schemas.conform(
        raw.lazy().with_columns(
            pl.lit(exchange).alias("exchange"),
            pl.lit(symbol).alias("symbol"),
            _date(),
            pl.lit("rest").alias("source"),
            fetched.alias("ingested_at"),
            fetched.alias("received_at"),
        ),
        schemas.TICKS_TRADES,
    )


def quotes_frame(columns: dict[str, list[Any]], exchange: str) -> pl.DataFrame:
    frame = pl.DataFrame(
        [
            pl.Series("symbol", columns["symbol"], dtype=pl.String),
            _ts(columns["ts_us"]).alias("ts"),
            _ts(columns["received_at_us"]).alias("received_at"),
            pl.Series("update_id", columns["update_id"], dtype=pl.Int64),
            pl.Series("bid_price", columns["bid_price"], dtype=pl.Float64),
            pl.Series("bid_qty", columns["bid_qty"], dtype=pl.Float64),
            pl.Series("ask_price", columns["ask_price"], dtype=pl.Float64),
            pl.Series("ask_qty", columns["ask_qty"], dtype=pl.Float64),
        ]
    )
    return schemas.conform(
        frame.lazy().with_columns(pl.lit(exchange).alias("exchange"), _date()), schemas.QUOTES
    )


def depth_frame(columns: dict[str, list[Any]], exchange: str) -> pl.DataFrame:
    levels = pl.List(pl.Float64)
    frame = pl.DataFrame(
        [
            pl.Series("symbol", columns["symbol"], dtype=pl.String),
            _ts(columns["ts_us"]).alias("ts"),
            _ts(columns["received_at_us"]).alias("received_at"),
            pl.Series("last_update_id", columns["last_update_id"], dtype=pl.Int64),
            pl.Series("bid_prices", columns["bid_prices"], dtype=levels),
            pl.Series("bid_qtys", columns["bid_qtys"], dtype=levels),
            pl.Series("ask_prices", columns["ask_prices"], dtype=levels),
            pl.Series("ask_qtys", columns["ask_qtys"], dtype=levels),
        ]
    )
    return schemas.conform(
        frame.lazy().with_columns(pl.lit(exchange).alias("exchange"), _date()), schemas.DEPTH
    )


def quarantine_frame(columns: dict[str, list[Any]], exchange: str) -> pl.DataFrame:
    frame = pl.DataFrame(
        [
            _ts(columns["ts_us"]).alias("ts"),
            pl.Series("symbol", columns["symbol"], dtype=pl.String),
            pl.Series("reason", columns["reason"], dtype=pl.String),
            pl.Series("payload", columns["payload"], dtype=pl.String),
        ]
    )
    return schemas.conform(
        frame.lazy().with_columns(
            pl.lit(exchange).alias("exchange"), pl.lit("ws").alias("source"), _date()
        ),
        schemas.QUARANTINE,
    )


def events_frame(columns: dict[str, list[Any]], exchange: str) -> pl.DataFrame:
    frame = pl.DataFrame(
        [
            _ts(columns["ts_us"]).alias("ts"),
            pl.Series("symbol", columns["symbol"], dtype=pl.String),
            pl.Series("kind", columns["kind"], dtype=pl.String),
            pl.Series("detail", columns["detail"], dtype=pl.String),
        ]
    )
    return schemas.conform(
        frame.lazy().with_columns(pl.lit(exchange).alias("exchange"), _date()),
        schemas.STREAM_EVENTS,
    )


#: table -> (partition columns)
PARTITIONS: Final = {
    "ticks_trades": schemas.MARKET_PARTITION_COLUMNS,
    "ticks_quotes": schemas.MARKET_PARTITION_COLUMNS,
    "ticks_depth": schemas.MARKET_PARTITION_COLUMNS,
    "quarantine": schemas.EVENT_PARTITION_COLUMNS,
    "stream_events": schemas.EVENT_PARTITION_COLUMNS,
}


def frames(taken: Taken, exchange: str, ingested_at_us: int) -> dict[str, pl.DataFrame]:
    """The non-empty tables of one flush, each conformed to its schema."""
    out: dict[str, pl.DataFrame] = {}
    trades = []
    if taken.trades["trade_id"]:
        trades.append(trades_frame(taken.trades, exchange, ingested_at_us))
    trades.extend(taken.rest_trades)
    if trades:
        out["ticks_trades"] = pl.concat(trades) if len(trades) > 1 else trades[0]
    if taken.quotes["symbol"]:
        out["ticks_quotes"] = quotes_frame(taken.quotes, exchange)
    if taken.depth["symbol"]:
        out["ticks_depth"] = depth_frame(taken.depth, exchange)
    if taken.quarantine["reason"]:
        out["quarantine"] = quarantine_frame(taken.quarantine, exchange)
    if taken.events["kind"]:
        out["stream_events"] = events_frame(taken.events, exchange)
    return out
