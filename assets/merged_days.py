"""One instrument-day of `trades` merged from its tables and filled from REST, and the
first day of a build merged ahead of its run.

The merge reads the day's `trades_history` and `ticks_trades` and fills the holes left from
the venue's REST history; `assets.daily` checks and writes the result. Plain Python and
Polars (no Dagster), so `marketlake build` can start its first day's merge as soon as the
request is accepted, while Dagster loads (`first_day_merged`, via `assets.ahead`), and the
run's `trades` asset takes it (`take_merged`).

Nothing stale is used: a merge done ahead is taken only if neither table it read has had
a commit since it began reading (their Delta versions); otherwise the run merges again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass

import polars as pl

from assets.ahead import Ahead
from assets.daily_transforms import MergeResult, merge_trades
from assets.partition_key import PartitionKey
from assets.trade_transforms import fill_from, missing_id_ranges, with_lake_keys
from marketlake import schemas
from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.exchanges.binance.rest import BinanceRest
from marketlake.exchanges.histories import RestHistories
from marketlake.exchanges.paced import PagedTradesRest
from marketlake.exchanges.registry import venue
from marketlake.lake import Lake

#: The tables a day's merge reads.
MERGE_INPUTS = ("trades_history", "ticks_trades")


@dataclass
class MergedDay:
    """One instrument-day of `trades` merged and filled, not yet checked or written."""

    key: PartitionKey
    frame: pl.DataFrame
    merged: MergeResult
    gaps: list[tuple[int, int]]
    remaining: list[tuple[int, int]]
    seconds: float


def merge_trades_partition(
    key: PartitionKey,
    lake: Lake,
    binance: BinanceEndpoints | None,
    histories: RestHistories | None = None,
) -> MergedDay:
    """Merge history and live trades for one day and fill its holes from the venue's REST
    history (Binance, OKX, Deribit; Coinbase has none: its holes stay reported)."""
    started = time.perf_counter()
    partition = key.lake_partition()
    merged = merge_trades(
        lake.scan("trades_history", schemas.TRADES, **partition),
        lake.scan("ticks_trades", schemas.TICKS_TRADES, **partition),
    )
    frame = merged.frame
    gaps = missing_id_ranges(frame)
    rest = _gap_filler(key.exchange, binance, histories) if gaps else None
    if rest is not None:
        with contextlib.closing(rest):
            fill = pl.concat([rest.trades_between_ids(key.symbol, a, b) for a, b in gaps])
        fill = with_lake_keys(
            fill,
            exchange=key.exchange,
            symbol=key.symbol,
            date=key.date,
            source="rest",
            ingested_at=frame["ingested_at"].max() if frame.height else _now(),
        )
        frame = fill_from(frame, fill)
    remaining = missing_id_ranges(frame)
    return MergedDay(key, frame, merged, gaps, remaining, time.perf_counter() - started)


def _gap_filler(
    exchange: str, binance: BinanceEndpoints | None, histories: RestHistories | None
) -> BinanceRest | PagedTradesRest | None:
    """A REST client of the venue that fetches trade ids back (closed by the caller)."""
    if exchange == "binance":
        return binance.rest() if binance is not None else None
    if histories is not None and "rest" in venue(exchange).history:
        return histories.client(exchange)
    return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class _MergedAhead:
    """A merge done ahead, and the versions of the tables it read."""

    day: MergedDay
    versions: tuple[int | None, ...]


_merged: Ahead[_MergedAhead] = Ahead()


def first_day_merged(
    key: PartitionKey,
    lake: Lake,
    binance: BinanceEndpoints | None,
    histories: RestHistories | None,
) -> AbstractContextManager[Future[_MergedAhead]]:
    """Merge `key`'s day in a thread, for a run started inside this block to take
    (`take_merged`)."""

    def merge() -> _MergedAhead:
        versions = _versions(lake)
        return _MergedAhead(merge_trades_partition(key, lake, binance, histories), versions)

    return _merged.started((lake.uri, str(key)), merge, f"merge {key}")


def take_merged(key: PartitionKey, lake: Lake) -> MergedDay | None:
    """The day merged ahead for `key` in `lake`, if its tables are as it read them; None
    otherwise (the caller merges the day itself)."""
    ahead = _merged.take((lake.uri, str(key)))
    if ahead is None:
        return None
    try:
        unchanged = ahead.versions == _versions(lake)
    except Exception:  # the tables cannot be asked now: the run's own merge will say why
        return None
    return ahead.day if unchanged else None


def _versions(lake: Lake) -> tuple[int | None, ...]:
    return tuple(lake.version(t) if lake.exists(t) else None for t in MERGE_INPUTS)
