"""bars_1m / bars_1h / bars_1d / daily_summary against independent Polars computations.

The inputs are the real Binance archive rows (ms timestamps on 2024-12-31, µs from
2025-01-01), spread out in time so ten seconds of trading cover a few hours of bars,
and shuffled so nothing can lean on input order. The expected frames are computed with
the expression API straight from the trades (never from bars_1m), so a roll-up error in
the SQL cannot cancel out.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dbt_like_sql import build, load_manifest, run_model
from dbt_like_sql.memory import MemoryStore
from marketlake import schemas
from marketlake.exchanges.binance.parsing import TRADES_CSV_SCHEMA

DAYS = {
    dt.date(2024, 12, 31): "BTCUSDT-trades-2024-12-31.head.csv",  # ms
    dt.date(2025, 1, 1): "BTCUSDT-trades-2025-01-01.head.csv",  # µs
}
#: 10 s of real trades x 1000 = ~2.8 h of bars; equal timestamps stay equal.
STRETCH = 1000
BAR_COLUMNS = [
    "exchange", "symbol", "date", "minute", "open", "high", "low", "close", "volume",
    "quote_volume", "vwap", "trades", "buy_volume", "sell_volume",
]  # fmt: skip


def real_trades(samples: Path, day: dt.date, source: str = "archive") -> pl.DataFrame:
    raw = pl.read_csv(
        samples / "binance_vision" / DAYS[day], has_header=False, schema=TRADES_CSV_SCHEMA
    )
    unit = "us" if raw["time"].max() > 10**15 else "ms"
    ts = pl.from_epoch("time", unit).dt.cast_time_unit("us").dt.replace_time_zone("UTC")
    return schemas.conform(
        raw.with_columns(ts=ts.first() + (ts - ts.first()) * STRETCH).with_columns(
            exchange=pl.lit("binance"),
            symbol=pl.lit("BTCUSDT"),
            date=pl.lit(day),
            source=pl.lit(source),
            ingested_at=pl.lit(dt.datetime(2025, 2, 1, tzinfo=dt.UTC)),
        ),
        schemas.TRADES,
    ).sample(fraction=1.0, shuffle=True, seed=7)


def expected_bars(trades: pl.DataFrame, every: str) -> pl.DataFrame:
    in_order = ["ts", "trade_id"]
    return (
        trades.with_columns(minute=pl.col("ts").dt.truncate(every))
        .group_by("exchange", "symbol", "date", "minute")
        .agg(
            open=pl.col("price").sort_by(in_order).first(),
            high=pl.col("price").max(),
            low=pl.col("price").min(),
            close=pl.col("price").sort_by(in_order).last(),
            volume=pl.col("qty").sum(),
            quote_volume=pl.col("quote_qty").sum(),
            vwap=pl.col("price").dot(pl.col("qty")) / pl.col("qty").sum(),
            trades=pl.len().cast(pl.Int64),
            buy_volume=pl.col("qty").filter(~pl.col("is_buyer_maker")).sum(),
            sell_volume=pl.col("qty").filter(pl.col("is_buyer_maker")).sum(),
        )
        .sort("minute")
    )


def partition(day: dt.date) -> dict[str, object]:
    return {"exchange": "binance", "symbol": "BTCUSDT", "date": day}


@pytest.fixture(scope="module")
def store(real_samples: Path) -> MemoryStore:
    """Both real days in one `trades` table, every model built for each day."""
    trades = pl.concat([real_trades(real_samples, day) for day in DAYS])
    built = MemoryStore({"trades": trades})
    for day in DAYS:
        build(load_manifest(), built, partition(day))
    return built


def model_rows(store: MemoryStore, model: str, day: dt.date) -> pl.DataFrame:
    frame = store.tables[model]
    return frame.filter(pl.col("date") == day)


@pytest.mark.parametrize("day", list(DAYS))
def test_bars_1m_match_an_independent_computation_on_real_trades(
    store: MemoryStore, day: dt.date
) -> None:
    trades = store.tables["trades"].filter(pl.col("date") == day)
    bars = model_rows(store, "bars_1m", day)
    assert bars.columns == BAR_COLUMNS
    assert bars["trades"].sum() == trades.height
    assert bars.height > 30  # bursty trading: minutes without trades have no bar
    assert_frame_equal(bars, expected_bars(trades, "1m"), rel_tol=1e-12, abs_tol=0)


@pytest.mark.parametrize(("model", "every"), [("bars_1h", "1h"), ("bars_1d", "1d")])
@pytest.mark.parametrize("day", list(DAYS))
def test_hour_and_day_bars_equal_bars_computed_straight_from_trades(
    store: MemoryStore, day: dt.date, model: str, every: str
) -> None:
    trades = store.tables["trades"].filter(pl.col("date") == day)
    bars = model_rows(store, model, day)
    assert bars.height >= 2 if every == "1h" else bars.height == 1
    assert_frame_equal(bars, expected_bars(trades, every), rel_tol=1e-12, abs_tol=0)


def test_open_and_close_break_equal_timestamps_by_trade_id() -> None:
    at = dt.datetime(2025, 1, 1, 0, 0, 5, tzinfo=dt.UTC)
    trades = schemas.conform(
        pl.DataFrame(
            {
                "exchange": "binance",
                "symbol": "BTCUSDT",
                "date": at.date(),
                "trade_id": [12, 10, 11],  # landed out of order, one timestamp
                "price": [3.0, 1.0, 2.0],
                "qty": 1.0,
                "quote_qty": [3.0, 1.0, 2.0],
                "ts": at,
                "is_buyer_maker": False,
                "source": "ws",
                "ingested_at": at,
            }
        ),
        schemas.TRADES,
    )
    bar = run_model(
        load_manifest(), "bars_1m", MemoryStore({"trades": trades}), partition(at.date())
    )
    assert bar.select("open", "close", "trades").row(0) == (1.0, 3.0, 3)


@pytest.mark.parametrize("day", list(DAYS))
def test_daily_summary_matches_the_trades_quotes_and_stream_events(
    real_samples: Path, day: dt.date
) -> None:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    archive = real_trades(real_samples, day)
    trades = pl.concat(  # a few trades the stream filled in
        [archive.head(-3), archive.tail(3).with_columns(source=pl.lit("ws"))]
    )
    quotes = schemas.conform(
        pl.DataFrame(
            {
                "exchange": "binance",
                "symbol": "BTCUSDT",
                "date": day,
                "ts": [start + dt.timedelta(seconds=s) for s in (1, 30, 75, 200)],
                "update_id": [1, 2, 3, 4],
                "bid_price": [100.0, 100.0, 101.0, 99.0],
                "bid_qty": 1.0,
                "ask_price": [100.5, 100.1, 101.2, 99.4],
                "ask_qty": 1.0,
            }
        ).with_columns(received_at=pl.col("ts")),
        schemas.QUOTES,
    )
    events = pl.DataFrame(
        {
            "date": day,
            "ts": start,
            "exchange": "binance",
            "symbol": ["BTCUSDT", "BTCUSDT", "BTCUSDT", "BTCUSDT", "ETHUSDT"],
            "kind": ["gap", "gap_filled", "gap", "reconnect", "gap"],
            "detail": "",
        },
        schema=schemas.STREAM_EVENTS,
    )
    store = MemoryStore({"trades": trades, "quotes": quotes, "stream_events": events})
    build(load_manifest(), store, partition(day))
    summary = store.tables["daily_summary"].row(0, named=True)

    in_order = trades.sort("ts", "trade_id")
    # each quote stands until the next, the last until its minute ends (03:20 -> 04:00):
    # spreads 0.5, 0.1, 0.2, 0.4 for 29, 45, 125 and 40 s
    twa = (0.5 * 29 + 0.1 * 45 + 0.2 * 125 + 0.4 * 40) / (29 + 45 + 125 + 40)
    texts = {k: v for k, v in summary.items() if not isinstance(v, int | float)}
    assert texts == {
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "date": day,
        "sources": "archive,ws",
    }
    numbers = {k: v for k, v in summary.items() if isinstance(v, int | float)}
    assert numbers == pytest.approx(
        {
            "trades": trades.height,
            "volume": trades["qty"].sum(),
            "quote_volume": trades["quote_qty"].sum(),
            "vwap": (trades["price"] * trades["qty"]).sum() / trades["qty"].sum(),
            "open": in_order["price"][0],
            "high": trades["price"].max(),
            "low": trades["price"].min(),
            "close": in_order["price"][-1],
            "quotes": 4,
            "spread_mean": (0.5 + 0.1 + 0.2 + 0.4) / 4,
            "spread_twa": twa,
            "gaps_found": 2,
            "gaps_filled": 1,
        },
        rel=1e-9,
    )


def test_model_outputs_keep_their_types_whether_or_not_the_day_has_data(
    store: MemoryStore,
) -> None:
    """Delta refuses a partition whose types differ from the table's: an empty day (all
    aggregates over nothing) must produce exactly the types of a busy one."""
    manifest = load_manifest()
    empty = MemoryStore()
    build(manifest, empty, partition(dt.date(2024, 6, 1)))
    for name in manifest.order:
        assert empty.tables[name].schema == store.tables[name].schema, name
