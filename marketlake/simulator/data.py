"""The simulator's deterministic universe: one pure function from time to trades per symbol.

Every trade that ever happens on the simulated exchange is fixed by `(seed, symbol,
trades_per_day)`. Any slice of it is computable on its own, without generating anything
earlier, which is what lets the HTTP side answer "trade ids 4_000_123..4_000_622" or "the
latest trade at now" in milliseconds, and lets tests compare a backfill against the truth.

How it is laid out:

- Each UTC day since `ORIGIN` (2017-07-01) holds exactly `trades_per_day` = N trades, split
  into 24 hourly blocks; block h holds `N // 24 + (1 if h < N % 24 else 0)` of them. Trade
  ids are contiguous and increase with time: day d starts at `base_id(symbol) + d * N`.
- Each block draws from its own RNG seeded by (seed, symbol, day, hour), so blocks are
  independent and cacheable.
- The log mid-price is anchored at every hour boundary by a mean-reverting cumulative sum
  of seeded normals (computed once per symbol over all hours until `HORIZON`), and follows
  a Brownian bridge between the two anchors of a block: continuous across blocks and days,
  never drifting to absurd levels.
- A trade prints at the bid when the buyer is the maker and at the ask otherwise, with a
  spread of a few ticks, so the book model (`simulator.book`) is consistent with the
  trades by construction.
- `time` is in milliseconds for days before 2025-01-01 and in microseconds from then on,
  exactly like Binance's spot archive (before 2025 the µs draw is floored to the ms).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
import polars as pl

from marketlake.schemas import RAW_TRADES, conform
from marketlake.simulator import formats

ORIGIN: Final = dt.date(2017, 7, 1)
"""The first day of the universe: trade ids of a symbol start at its base id here."""
HORIZON: Final = dt.date(2040, 1, 1)
"""The first day after the universe (the anchor path is computed up to here)."""
US_TIMESTAMPS_FROM: Final = dt.date(2025, 1, 1)
"""From this day on archive times are microseconds; before it milliseconds."""

TICK: Final = 0.01
LOT: Final = 0.00001
HOUR_US: Final = 3_600_000_000
DAY_US: Final = 24 * HOUR_US

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ORIGIN_US: Final = (ORIGIN - _EPOCH.date()).days * DAY_US
"""ORIGIN's midnight in epoch µs: hour number k starts at ORIGIN_US + k * HOUR_US."""
_DAYS: Final = (HORIZON - ORIGIN).days
HOURS: Final = _DAYS * 24
"""Hourly blocks in the universe (hour numbers 0..HOURS-1)."""
_US_FROM_DAY: Final = (US_TIMESTAMPS_FROM - ORIGIN).days

#: Long-run standard deviation of the log price around the symbol's base price.
_STATIONARY_LOG_STD: Final = 0.35
#: Log-normal spread of trade notionals (sizes): a few % of trades are 100x the median.
_SIZE_SIGMA: Final = 1.6
#: The largest quantity, in lots, of a trade or a book level.
MAX_LOTS: Final = 10**10
_BLOCK_CACHE_SIZE: Final = 32

_KNOWN: Final = {
    # symbol: (base price, hourly volatility of the log price, median trade notional)
    "BTCUSDT": (60_000.0, 0.006, 60.0),
    "ETHUSDT": (3_000.0, 0.008, 40.0),
    "SOLUSDT": (150.0, 0.012, 25.0),
    "BNBUSDT": (600.0, 0.008, 25.0),
}


class OutOfUniverseError(ValueError):
    """A day, hour or trade id outside [ORIGIN, HORIZON): the simulator has no data there."""


@dataclass(frozen=True)
class SimConfig:
    """What fixes the universe: the same config always yields byte-identical data."""

    seed: int = 7
    trades_per_day: int = 20_000
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.trades_per_day < 1:
            raise ValueError(f"trades_per_day must be >= 1, got {self.trades_per_day}")
        object.__setattr__(self, "symbols", tuple(self.symbols))


DEFAULT_CONFIG: Final = SimConfig()
"""The universe when none is given (seed 7, 20k trades a day): the default of every function."""


@dataclass(frozen=True)
class SymbolParams:
    """Per-symbol constants, derived from the name alone so any symbol has a universe."""

    key: int
    base_id: int
    base_price: float
    hourly_vol: float
    median_notional: float
    update_id_base: int


#: Quote currencies priced as one market: a coin costs about the same in each of them.
_USD_QUOTES: Final = ("USDT", "USDC", "USD")


def price_market(symbol: str) -> str:
    """The market whose hourly price path `symbol` follows, in Binance's spelling.

    Venues spell one coin's dollar markets differently (``BTCUSDT``, ``BTC-USDT``,
    ``BTC-USD``, ``BTC-USDT-SWAP``, ``BTC-PERPETUAL``, ``BTC_USDC``); they share the hourly
    anchors of ``BTCUSDT`` and differ only inside the hour, so prices put side by side
    (`venue_prices_1m`) differ the way venues do, by a few basis points, not by a factor.
    """
    head, *rest = symbol.replace("_", "-").split("-")
    if not rest:  # Binance: BASEQUOTE
        for quote in _USD_QUOTES:
            if symbol.endswith(quote) and len(symbol) > len(quote):
                return symbol[: -len(quote)] + "USDT"
        return symbol
    if rest[0] in _USD_QUOTES or rest[0] == "PERPETUAL":
        return head + "USDT"
    return symbol


@functools.lru_cache(maxsize=256)
def symbol_params(symbol: str) -> SymbolParams:
    key = _stable_key(symbol)
    market = price_market(symbol)
    u = (_stable_key(market) % 1_000_003) / 1_000_003
    price, vol, notional = _KNOWN.get(market, (5.0 * 10 ** (2.5 * u), 0.010, 20.0))
    return SymbolParams(
        key=key,
        base_id=(100 + key % 900) * 1_000_000,
        base_price=price,
        hourly_vol=vol,
        median_notional=notional,
        update_id_base=10**10 + (key >> 24) % 10**10,
    )


def _stable_key(text: str) -> int:
    """A stable hash (Python's own `hash` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


# --- ids and days ----------------------------------------------------------------------------


def as_date(value: dt.date | str) -> dt.date:
    """Accept a date or an ISO `YYYY-MM-DD` string (a datetime is reduced to its UTC day)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date() if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def day_index(date: dt.date | str) -> int:
    """Days since ORIGIN; refuses days outside the universe."""
    day = (as_date(date) - ORIGIN).days
    if not 0 <= day < _DAYS:
        raise OutOfUniverseError(f"{date} is outside the simulated range {ORIGIN}..{HORIZON}")
    return day


def block_count(trades_per_day: int, hour: int) -> int:
    """Trades in hourly block `hour` of any day."""
    return trades_per_day // 24 + (1 if hour < trades_per_day % 24 else 0)


def _block_offset(trades_per_day: int, hour: int) -> int:
    return hour * (trades_per_day // 24) + min(hour, trades_per_day % 24)


def first_trade_id(symbol: str, date: dt.date | str, cfg: SimConfig = DEFAULT_CONFIG) -> int:
    """The id of the first trade of `date` (UTC); the day's ids are this + 0..N-1."""
    return symbol_params(symbol).base_id + day_index(date) * cfg.trades_per_day


def last_trade_id(symbol: str, date: dt.date | str, cfg: SimConfig = DEFAULT_CONFIG) -> int:
    """The id of the last trade of `date`."""
    return first_trade_id(symbol, date, cfg) + cfg.trades_per_day - 1


def block_first_id(
    symbol: str, date: dt.date | str, hour: int, cfg: SimConfig = DEFAULT_CONFIG
) -> int:
    return first_trade_id(symbol, date, cfg) + _block_offset(cfg.trades_per_day, hour)


def _block_index(symbol: str, trade_id: int, cfg: SimConfig) -> tuple[int, int]:
    offset = trade_id - symbol_params(symbol).base_id
    n = cfg.trades_per_day
    if not 0 <= offset < _DAYS * n:
        raise OutOfUniverseError(f"trade id {trade_id} does not exist for {symbol}")
    day, within = divmod(offset, n)
    q, r = divmod(n, 24)
    if within < r * (q + 1):
        return day, within // (q + 1)
    return day, r + (within - r * (q + 1)) // q


def trade_block_of(
    symbol: str, trade_id: int, cfg: SimConfig = DEFAULT_CONFIG
) -> tuple[dt.date, int]:
    """The (UTC day, hour) whose block holds `trade_id`."""
    day, hour = _block_index(symbol, trade_id, cfg)
    return ORIGIN + dt.timedelta(days=day), hour


# --- the price path ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _anchors(symbol: str, seed: int) -> np.ndarray:
    """Log mid-price at every hour boundary since ORIGIN (length HOURS + 1).

    An AR(1) (discrete Ornstein-Uhlenbeck) cumulative sum: x_k = (1 - θ) x_(k-1) + σ ε_k,
    computed with Polars' exponentially weighted mean in one vectorized pass. θ is chosen so
    the long-run spread is `_STATIONARY_LOG_STD`, i.e. a few months' half-life: a random walk
    locally, but BTC stays in the tens of thousands over the whole range.
    """
    p = symbol_params(symbol)
    rng = np.random.default_rng([seed, _stable_key(price_market(symbol)), 0xA4C402])
    eps = rng.standard_normal(HOURS)
    theta = p.hourly_vol**2 / (2 * _STATIONARY_LOG_STD**2)
    # ewm (adjust=False) is y_k = (1-θ) y_(k-1) + θ v_k with y_0 = v_0 = 0; x = y σ / θ.
    y = pl.Series(np.concatenate(([0.0], eps))).ewm_mean(alpha=theta, adjust=False)
    anchors = math.log(p.base_price) + y.to_numpy() * (p.hourly_vol / theta)
    anchors.setflags(write=False)
    return anchors


class Block(NamedTuple):
    """One hour of one symbol's trades as integer-unit arrays (read-only, cacheable)."""

    first_id: int
    time: np.ndarray  # archive units: ms before 2025, µs from 2025
    ts_us: np.ndarray  # always µs (ms-floored before 2025)
    price_ticks: np.ndarray
    qty_lots: np.ndarray
    is_buyer_maker: np.ndarray
    bid_ticks: np.ndarray
    ask_ticks: np.ndarray
    open_bid: int  # the quote before the block's first trade
    open_ask: int


def _generate_block(symbol: str, day: int, hour: int, cfg: SimConfig) -> Block:
    p = symbol_params(symbol)
    n = block_count(cfg.trades_per_day, hour)
    k = day * 24 + hour
    anchors = _anchors(symbol, cfg.seed)
    a0, a1 = anchors[k], anchors[k + 1]
    rng = np.random.default_rng([cfg.seed, p.key, day, hour])

    offsets = np.sort(rng.integers(0, HOUR_US, n, dtype=np.int64))
    ts_us = ORIGIN_US + k * HOUR_US + offsets
    if day < _US_FROM_DAY:
        time = ts_us // 1000
        ts_us = time * 1000
    else:
        time = ts_us

    # Brownian bridge from a0 to a1 sampled at the trade times.
    frac = offsets / HOUR_US
    steps = np.diff(frac, prepend=0.0, append=1.0)
    walk = np.cumsum(rng.standard_normal(n + 1) * np.sqrt(steps))
    log_mid = a0 + frac * (a1 - a0) + p.hourly_vol * (walk[:n] - frac * walk[n])
    mid_ticks = np.exp(log_mid) / TICK

    spread = np.minimum(rng.geometric(0.55, n), 6).astype(np.int64)
    bid = np.maximum(np.floor(mid_ticks - spread / 2).astype(np.int64), 1)
    ask = bid + spread
    is_buyer_maker = rng.random(n) < 0.5
    price = np.where(is_buyer_maker, bid, ask)
    notional = p.median_notional * np.exp(_SIZE_SIGMA * rng.standard_normal(n))
    lots = np.clip(np.rint(notional / (price * TICK) / LOT), 1, MAX_LOTS).astype(np.int64)

    open_bid = max(math.floor(math.exp(a0) / TICK - 0.5), 1)
    arrays = (time, ts_us, price, lots, is_buyer_maker, bid, ask)
    for array in arrays:
        array.setflags(write=False)
    return Block(block_first_id_at(symbol, day, hour, cfg), *arrays, open_bid, open_bid + 1)


def block_first_id_at(symbol: str, day: int, hour: int, cfg: SimConfig) -> int:
    return (
        symbol_params(symbol).base_id
        + day * cfg.trades_per_day
        + _block_offset(cfg.trades_per_day, hour)
    )


_cached_block = functools.lru_cache(maxsize=_BLOCK_CACHE_SIZE)(_generate_block)


def block(
    symbol: str, day: int, hour: int, cfg: SimConfig = DEFAULT_CONFIG, *, cache: bool = True
) -> Block:
    """Block `hour` of day index `day` (days since ORIGIN) as arrays.

    `cache=False` is for bulk passes (a whole day for an archive) that would otherwise evict
    the few blocks the REST side keeps answering from.
    """
    if not (0 <= day < _DAYS and 0 <= hour < 24):
        raise OutOfUniverseError(f"no block for day index {day}, hour {hour}")
    return (_cached_block if cache else _generate_block)(symbol, day, hour, cfg)


# --- trade frames ------------------------------------------------------------------------------

TRADE_SCHEMA: Final = pl.Schema(
    {
        "trade_id": pl.Int64,
        "price": pl.Float64,
        "qty": pl.Float64,
        "quote_qty": pl.Float64,
        "time": pl.Int64,
        "is_buyer_maker": pl.Boolean,
        "is_best_match": pl.Boolean,
    }
)
"""The archive's columns; `time` in ms before 2025 and µs from 2025, as in the archive."""


def _frame(blocks: Sequence[tuple[Block, int, int]]) -> pl.DataFrame:
    """Rows lo..hi-1 of each block, concatenated, as a TRADE_SCHEMA frame."""
    parts = [(b, lo, hi) for b, lo, hi in blocks if hi > lo]
    if not parts:
        return pl.DataFrame(schema=TRADE_SCHEMA)

    def cat(field: str) -> np.ndarray:
        return np.concatenate([getattr(b, field)[lo:hi] for b, lo, hi in parts])

    ids = np.concatenate(
        [np.arange(b.first_id + lo, b.first_id + hi, dtype=np.int64) for b, lo, hi in parts]
    )
    ticks, lots = cat("price_ticks"), cat("qty_lots")
    # Dividing exact integers gives the double nearest to the decimal, as a parser would.
    return pl.DataFrame(
        {
            "trade_id": ids,
            "price": ticks / 10**formats.PRICE_DECIMALS,
            "qty": lots / 10**formats.QTY_DECIMALS,
            "quote_qty": (ticks * lots) / 10**formats.QUOTE_DECIMALS,
            "time": cat("time"),
            "is_buyer_maker": cat("is_buyer_maker"),
            "is_best_match": np.ones(len(ids), dtype=bool),
        },
        schema=TRADE_SCHEMA,
    )


def block_trades(
    symbol: str,
    date: dt.date | str,
    hour: int,
    cfg: SimConfig = DEFAULT_CONFIG,
    *,
    cache: bool = True,
) -> pl.DataFrame:
    """The trades of one hourly block (`cache` as for `block`)."""
    b = block(symbol, day_index(date), hour, cfg, cache=cache)
    return _frame([(b, 0, len(b.time))])


def day_trades(symbol: str, date: dt.date | str, cfg: SimConfig = DEFAULT_CONFIG) -> pl.DataFrame:
    """All N trades of a UTC day (the content of that day's archive file, without faults)."""
    day = day_index(date)
    blocks = [block(symbol, day, h, cfg, cache=False) for h in range(24)]
    return _frame([(b, 0, len(b.time)) for b in blocks])


def trades_between_ids(
    symbol: str, first_id: int, last_id: int, cfg: SimConfig = DEFAULT_CONFIG
) -> pl.DataFrame:
    """Trades with first_id <= trade_id <= last_id (clipped to the universe)."""
    p = symbol_params(symbol)
    first = max(first_id, p.base_id)
    last = min(last_id, p.base_id + _DAYS * cfg.trades_per_day - 1)
    if last < first:
        return pl.DataFrame(schema=TRADE_SCHEMA)
    k0 = _hour_number(*_block_index(symbol, first, cfg))
    k1 = _hour_number(*_block_index(symbol, last, cfg))
    cache = k1 - k0 < 4
    parts = []
    for k in range(k0, k1 + 1):
        day, hour = divmod(k, 24)
        if block_count(cfg.trades_per_day, hour) == 0:
            continue
        b = block(symbol, day, hour, cfg, cache=cache)
        lo = max(first - b.first_id, 0)
        hi = min(last - b.first_id + 1, len(b.time))
        parts.append((b, lo, hi))
    return _frame(parts)


def _hour_number(day: int, hour: int) -> int:
    return day * 24 + hour


# --- time lookups ------------------------------------------------------------------------------


def to_us(t: dt.datetime | int) -> int:
    """Epoch microseconds of an aware datetime (or an int already in µs)."""
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return (t - _EPOCH) // dt.timedelta(microseconds=1)
    return int(t)


def _block_at(symbol: str, t_us: int, cfg: SimConfig) -> tuple[int, Block | None]:
    """(hour number, block) holding time t_us; block None outside the universe."""
    k = (t_us - ORIGIN_US) // HOUR_US
    if not 0 <= k < HOURS:
        return k, None
    return k, block(symbol, *divmod(k, 24), cfg)


def first_trade_id_at_or_after(
    symbol: str, t: dt.datetime | int, cfg: SimConfig = DEFAULT_CONFIG
) -> int:
    """The id of the first trade with ts >= t (one past the universe's end if none)."""
    p = symbol_params(symbol)
    k, b = _block_at(symbol, to_us(t), cfg)
    if b is None:
        return p.base_id if k < 0 else p.base_id + _DAYS * cfg.trades_per_day
    return b.first_id + int(np.searchsorted(b.ts_us, to_us(t), side="left"))


def last_trade_id_at(symbol: str, t: dt.datetime | int, cfg: SimConfig = DEFAULT_CONFIG) -> int:
    """The id of the latest trade with ts <= t (base id - 1 when none has happened yet).

    This is "the exchange's latest trade at wall-clock now": ids above it don't exist yet.
    """
    return first_trade_id_at_or_after(symbol, to_us(t) + 1, cfg) - 1


def trades_until(
    symbol: str, t: dt.datetime | int, cfg: SimConfig = DEFAULT_CONFIG, limit: int = 500
) -> pl.DataFrame:
    """The most recent `limit` trades with ts <= t, oldest first (`/api/v3/trades`)."""
    last = last_trade_id_at(symbol, t, cfg)
    return trades_between_ids(symbol, last - limit + 1, last, cfg)


def trades_between_times(
    symbol: str, start: dt.datetime | int, end: dt.datetime | int, cfg: SimConfig = DEFAULT_CONFIG
) -> pl.DataFrame:
    """Trades with start <= ts < end: what a live trade stream emits for that interval."""
    first = first_trade_id_at_or_after(symbol, start, cfg)
    last = first_trade_id_at_or_after(symbol, end, cfg) - 1
    return trades_between_ids(symbol, first, last, cfg)


# --- conversions -------------------------------------------------------------------------------


def to_raw_trades(frame: pl.DataFrame) -> pl.DataFrame:
    """A TRADE_SCHEMA frame as marketlake.schemas.RAW_TRADES (`ts` Datetime(us, UTC)).

    The unit is detected per row by magnitude, so frames spanning 2024-12-31/2025-01-01
    convert correctly too.
    """
    time = pl.col("time")
    ts_us = pl.when(time >= formats.US_THRESHOLD).then(time).otherwise(time * 1000)
    return conform(
        frame.with_columns(ts=pl.from_epoch(ts_us, time_unit="us").dt.replace_time_zone("UTC")),
        RAW_TRADES,
    )


def day_raw_trades(
    symbol: str, date: dt.date | str, cfg: SimConfig = DEFAULT_CONFIG
) -> pl.DataFrame:
    """Ground truth: what a perfect backfill of (symbol, date) holds, as RAW_TRADES."""
    return to_raw_trades(day_trades(symbol, date, cfg))
