"""spread_1m against independent Polars computations on synthetic quotes and real depth.

Quotes start from a real BTCUSDT bookTicker; depth snapshots are the real depth20
snapshot's levels, shifted and rescaled per snapshot. The expected time-weighted spread
is computed as interval overlaps (every quote's standing interval cut by every minute),
not with the SQL's lead/lag carry-over, and the moving averages by explicit windows.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dbt_like_sql import load_manifest, run_model
from dbt_like_sql.memory import MemoryStore
from marketlake import schemas

DAY = dt.date(2025, 11, 14)
START = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
PARTITION = {"exchange": "binance", "symbol": "BTCUSDT", "date": DAY}
MINUTE = dt.timedelta(minutes=1)
KEYS = {"exchange": "binance", "symbol": "BTCUSDT", "date": DAY}


def at(seconds: float) -> dt.datetime:
    return START + dt.timedelta(seconds=seconds)


def real_book(samples: Path) -> dict[str, list[list[str]]]:
    return json.loads((samples / "binance_ws" / "andrey_bookDepthSnapshot.json").read_text())[
        "data"
    ]


def quotes_frame() -> pl.DataFrame:
    """Real bid/ask 95794.61/95794.62 then wider and crossed books; minute 3 is quiet,
    and two updates share one timestamp (update_id orders them)."""
    seconds = [0.5, 12.0, 12.0, 40.25, 59.999999, 75.0, 110.0, 245.0, 250.5, 299.0]
    spreads = [0.01, 0.05, 0.02, 0.40, 0.01, 1.25, -0.03, 0.10, 0.07, 0.02]
    bid = [95794.61 + i for i in range(len(seconds))]
    return schemas.conform(
        pl.DataFrame(
            {
                **KEYS,
                "ts": [at(s) for s in seconds],
                "update_id": [80630992451 + i for i in range(len(seconds))],
                "bid_price": bid,
                "bid_qty": 0.41915,
                "ask_price": [b + s for b, s in zip(bid, spreads, strict=True)],
                "ask_qty": 2.20768,
            }
        )
        .with_columns(received_at=pl.col("ts"))
        .sample(fraction=1.0, shuffle=True, seed=3),
        schemas.QUOTES,
    )


def depth_frame(samples: Path) -> pl.DataFrame:
    """Snapshots every few seconds in minutes 0, 1, 3 and 4, one landed twice."""
    book = real_book(samples)
    levels = {
        side: ([float(p) for p, _ in book[side]], [float(q) for _, q in book[side]])
        for side in ("bids", "asks")
    }
    seconds = [1.0, 14.2, 29.9, 30.0, 44.4, 59.9, 61.0, 89.0, 95.5, 200.0, 250.0]
    rows = []
    for k, second in enumerate(seconds):
        shift, rotate = 0.5 * k, k % 7
        rows.append(
            {
                **KEYS,
                "ts": at(second),
                "received_at": at(second),
                "last_update_id": 80089389252 + k,
                **{
                    f"{side[:3]}_prices": [p + shift for p in levels[side][0]]
                    for side in ("bids", "asks")
                },
                **{  # rotate sizes across levels so every snapshot's VWAP differs
                    f"{side[:3]}_qtys": levels[side][1][rotate:] + levels[side][1][:rotate]
                    for side in ("bids", "asks")
                },
            }
        )
    rows.append({**rows[4], "received_at": at(45.0)})  # at-least-once delivery
    return schemas.conform(pl.DataFrame(rows), schemas.DEPTH)


def expected_quote_minutes(quotes: pl.DataFrame) -> pl.DataFrame:
    q = quotes.sort("ts", "update_id").with_columns(
        spread=pl.col("ask_price") - pl.col("bid_price"),
        minute=pl.col("ts").dt.truncate("1m"),
    )
    last_end = q["minute"].max() + MINUTE
    intervals = q.select(
        "spread", start=pl.col("ts"), end=pl.col("ts").shift(-1).fill_null(last_end)
    )
    minutes = q.select(pl.col("minute").unique())
    overlap = (
        minutes.join(intervals, how="cross")
        .with_columns(
            us=(
                pl.min_horizontal("end", pl.col("minute") + MINUTE)
                - pl.max_horizontal("start", "minute")
            ).dt.total_microseconds()
        )
        .filter(pl.col("us") > 0)
        .group_by("minute")
        .agg(
            spread_twa=pl.col("spread").dot("us") / pl.col("us").sum(),
            covered_seconds=pl.col("us").sum() / 1e6,
        )
    )
    stats = q.group_by("minute").agg(
        quotes=pl.len().cast(pl.Int64),
        spread_mean=pl.col("spread").mean(),
        spread_min=pl.col("spread").min(),
        spread_max=pl.col("spread").max(),
        mid_price_mean=((pl.col("ask_price") + pl.col("bid_price")) / 2).mean(),
    )
    return stats.join(overlap, on="minute")


def expected_snapshot_minutes(depth: pl.DataFrame) -> pl.DataFrame:
    snapshots = depth.unique(["ts", "last_update_id"]).with_row_index("snapshot")

    def side_vwap(prices: str, qtys: str) -> pl.DataFrame:
        exploded = snapshots.select("snapshot", prices, qtys).explode(prices, qtys)
        return exploded.group_by("snapshot").agg(
            (pl.col(prices) * pl.col(qtys)).sum() / pl.col(qtys).sum()
        )

    books = (
        snapshots.select("snapshot", "ts")
        .join(side_vwap("bid_prices", "bid_qtys"), on="snapshot")
        .join(side_vwap("ask_prices", "ask_qtys"), on="snapshot")
        .select("ts", book=(pl.col("bid_prices") + pl.col("ask_prices")) / 2)
        .with_columns(minute=pl.col("ts").dt.truncate("1m"))
    )
    windows = (
        books.select(pl.col("minute").unique())
        .join(books.select("ts", "book"), how="cross")
        .with_columns(close=pl.col("minute") + MINUTE)
    )

    def trailing_mean(seconds: int, name: str) -> pl.DataFrame:
        inside = pl.col("ts").is_between(
            pl.col("close") - dt.timedelta(seconds=seconds), pl.col("close"), closed="left"
        )
        return windows.filter(inside).group_by("minute").agg(pl.col("book").mean().alias(name))

    return (
        books.group_by("minute")
        .agg(snapshots=pl.len().cast(pl.Int64), book_vwap_price=pl.col("book").sort_by("ts").last())
        .join(trailing_mean(30, "book_vwap_ma_30s"), on="minute", how="left")
        .join(trailing_mean(60, "book_vwap_ma_1m"), on="minute", how="left")
    )


def test_spread_1m_matches_independent_quote_and_depth_computations(real_samples: Path) -> None:
    quotes, depth = quotes_frame(), depth_frame(real_samples)
    store = MemoryStore({"quotes": quotes, "ticks_depth": depth})
    actual = run_model(load_manifest(), "spread_1m", store, PARTITION)

    expected = (
        expected_quote_minutes(quotes)
        .join(expected_snapshot_minutes(depth), on="minute", how="full", coalesce=True)
        .with_columns(
            pl.col("quotes", "snapshots").fill_null(0),
            pl.col("covered_seconds").fill_null(0.0),
            **{k: pl.lit(v) for k, v in KEYS.items()},
        )
        .select(actual.columns)
        .sort("minute")
    )
    # minutes 0, 1 (quotes + depth), 3 (depth only), 4 (quotes + depth); minute 2 is quiet
    assert actual["minute"].to_list() == [START + MINUTE * m for m in (0, 1, 3, 4)]
    assert actual["snapshots"].to_list() == [6, 3, 1, 1]  # the redelivered one counted once
    assert_frame_equal(actual, expected, rel_tol=1e-12, abs_tol=1e-9)


def test_the_quote_carried_into_a_minute_weighs_until_its_first_update() -> None:
    quotes = quotes_frame()
    actual = run_model(load_manifest(), "spread_1m", MemoryStore({"quotes": quotes}), PARTITION)
    minute_4 = actual.filter(pl.col("minute") == START + 4 * MINUTE).row(0, named=True)
    # 04:00-04:05 the crossed 01:50 quote (-0.03) still stands, through quiet minutes 2
    # and 3; then 0.10 to 04:10.5, 0.07 to 04:59, 0.02 to the minute's end
    assert minute_4["covered_seconds"] == pytest.approx(60.0)
    assert minute_4["spread_twa"] == pytest.approx(
        (-0.03 * 5 + 0.10 * 5.5 + 0.07 * 48.5 + 0.02 * 1) / 60
    )
    first = actual.row(0, named=True)  # nothing stood before the day's first quote
    assert first["covered_seconds"] == pytest.approx(59.5)


def test_book_vwap_of_the_real_depth20_snapshot_is_exact(real_samples: Path) -> None:
    book = real_book(real_samples)

    def side_vwap(levels: list[list[str]]) -> Decimal:
        return sum(Decimal(p) * Decimal(q) for p, q in levels) / sum(Decimal(q) for _, q in levels)

    exact = (side_vwap(book["bids"]) + side_vwap(book["asks"])) / 2
    single = depth_frame(real_samples).head(1)  # snapshot 0: the real levels unchanged
    actual = run_model(
        load_manifest(), "spread_1m", MemoryStore({"ticks_depth": single}), PARTITION
    ).row(0, named=True)
    assert abs(Decimal(actual["book_vwap_price"]) - exact) < Decimal("1e-9")
    assert actual["book_vwap_ma_1m"] == actual["book_vwap_price"]
    assert actual["book_vwap_ma_30s"] is None  # 00:00:01 is not in the last 30 s
    assert actual["quotes"] == 0 and actual["spread_mean"] is None
