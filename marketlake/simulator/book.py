"""The book: best bid/ask and top-N depth, consistent with the trades of `simulator.data`.

The best bid and ask at any instant are those of the latest trade before it (a trade prints
at the bid or the ask, see `data`), so quotes never contradict trade prices. Quantities and
the gaps between deeper levels are stateless hashes of (seed, symbol, 100 ms bucket, level):
any instant's book is computable on its own, in microseconds, like the trades.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final, NamedTuple

import numpy as np
import polars as pl

from marketlake.simulator import formats
from marketlake.simulator.data import (
    DEFAULT_CONFIG,
    HOUR_US,
    HOURS,
    LOT,
    MAX_LOTS,
    ORIGIN_US,
    TICK,
    OutOfUniverseError,
    SimConfig,
    block,
    symbol_params,
    to_us,
)

#: Depth and quantities change per 100 ms bucket, like depth20@100ms.
BOOK_BUCKET_US: Final = 100_000


class Quote(NamedTuple):
    ts_us: int
    update_id: int
    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float


class Depth(NamedTuple):
    """A top-N book snapshot, best level first."""

    update_id: int
    bid_prices: np.ndarray
    bid_qtys: np.ndarray
    ask_prices: np.ndarray
    ask_qtys: np.ndarray


def update_id_at(symbol: str, t_us: int | np.ndarray) -> int | np.ndarray:
    """The book's update id at t: +1 per millisecond, so it only grows and 100 ms depth
    diffs chain exactly (U = previous u + 1)."""
    ids = symbol_params(symbol).update_id_base + (np.asarray(t_us) - ORIGIN_US) // 1000
    return int(ids) if np.ndim(ids) == 0 else ids


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on uint64 arrays: a fast stateless hash for book quantities."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(symbol: str, cfg: SimConfig, bucket: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """Deterministic uniforms in (0, 1) keyed by (seed, symbol, 100 ms bucket, salt)."""
    head = np.uint64((symbol_params(symbol).key ^ (cfg.seed * 0x9E3779B1)) & (2**64 - 1))
    h = _mix(_mix(np.asarray(bucket, dtype=np.int64).astype(np.uint64) ^ head))
    h = _mix(h ^ np.asarray(salt, dtype=np.uint64))
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def _book_lots(
    symbol: str, cfg: SimConfig, bucket: np.ndarray, salt: np.ndarray, price_ticks: np.ndarray
) -> np.ndarray:
    notional = -np.log(_uniform(symbol, cfg, bucket, salt)) * symbol_params(symbol).median_notional
    notional *= 30.0
    return np.clip(np.rint(notional / (price_ticks * TICK) / LOT), 1, MAX_LOTS).astype(np.int64)


def _best_ticks(symbol: str, times_us: np.ndarray, cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """Best bid and ask (ticks) in force at each time: those of the latest trade at or before
    it in the same hour, or the hour's opening quote."""
    hours = (times_us - ORIGIN_US) // HOUR_US
    if len(hours) and (hours.min() < 0 or hours.max() >= HOURS):
        raise OutOfUniverseError("quote time outside the simulated range")
    bid = np.empty(len(times_us), dtype=np.int64)
    ask = np.empty(len(times_us), dtype=np.int64)
    for k in np.unique(hours):
        sel = hours == k
        b = block(symbol, *divmod(int(k), 24), cfg)
        idx = np.searchsorted(b.ts_us, times_us[sel], side="right") - 1
        before = idx < 0
        safe = np.maximum(idx, 0)
        if len(b.time):
            bid[sel] = np.where(before, b.open_bid, b.bid_ticks[safe])
            ask[sel] = np.where(before, b.open_ask, b.ask_ticks[safe])
        else:
            bid[sel], ask[sel] = b.open_bid, b.open_ask
    return bid, ask


def quotes_at(
    symbol: str, times: Sequence[int] | np.ndarray, cfg: SimConfig = DEFAULT_CONFIG
) -> pl.DataFrame:
    """Best bid/ask at each time (epoch µs), consistent with the trade prints.

    Columns: ts_us, update_id (Int64), bid_price, bid_qty, ask_price, ask_qty (Float64).
    Quantities are fixed per 100 ms bucket and equal the top level of `depth_at`.
    """
    t = np.asarray(times, dtype=np.int64)
    bid, ask = _best_ticks(symbol, t, cfg)
    bucket = t // BOOK_BUCKET_US
    bid_lots = _book_lots(symbol, cfg, bucket, np.zeros_like(t, dtype=np.uint64), bid)
    ask_lots = _book_lots(symbol, cfg, bucket, np.ones_like(t, dtype=np.uint64), ask)
    return pl.DataFrame(
        {
            "ts_us": t,
            "update_id": update_id_at(symbol, t),
            "bid_price": bid / 10**formats.PRICE_DECIMALS,
            "bid_qty": bid_lots / 10**formats.QTY_DECIMALS,
            "ask_price": ask / 10**formats.PRICE_DECIMALS,
            "ask_qty": ask_lots / 10**formats.QTY_DECIMALS,
        },
        schema={
            "ts_us": pl.Int64,
            "update_id": pl.Int64,
            "bid_price": pl.Float64,
            "bid_qty": pl.Float64,
            "ask_price": pl.Float64,
            "ask_qty": pl.Float64,
        },
    )


def quote_at(symbol: str, t: dt.datetime | int, cfg: SimConfig = DEFAULT_CONFIG) -> Quote:
    """The best bid/ask at one instant (see `quotes_at`)."""
    row = quotes_at(symbol, [to_us(t)], cfg).row(0)
    return Quote(*row)


def depth_at(
    symbol: str, t: dt.datetime | int, cfg: SimConfig = DEFAULT_CONFIG, levels: int = 20
) -> Depth:
    """A `levels`-deep book at t: best level = `quote_at`, then gaps of 1+ ticks outward.

    Deterministic per 100 ms bucket, like Binance's depth20@100ms snapshots.
    """
    t_us = to_us(t)
    bid, ask = _best_ticks(symbol, np.array([t_us], dtype=np.int64), cfg)
    bucket = np.full(levels, t_us // BOOK_BUCKET_US, dtype=np.int64)
    level = np.arange(levels, dtype=np.uint64)
    sides = {}
    for side, best, sign in ((0, bid[0], -1), (1, ask[0], 1)):
        gap_u = _uniform(symbol, cfg, bucket, level * np.uint64(2) + np.uint64(side + 1000))
        gaps = 1 + np.floor(-np.log(gap_u) * 2.0).astype(np.int64)
        gaps[0] = 0
        ticks = best + sign * np.cumsum(gaps)
        ticks = ticks[ticks > 0]
        salt = level[: len(ticks)] * np.uint64(2) + np.uint64(side)
        lots = _book_lots(symbol, cfg, bucket[: len(ticks)], salt, ticks)
        sides[side] = (ticks / 10**formats.PRICE_DECIMALS, lots / 10**formats.QTY_DECIMALS)
    return Depth(int(update_id_at(symbol, t_us)), *sides[0], *sides[1])
