"""merge_trades, missing_id_ranges and compact_quotes on inline frames and real samples."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from assets.daily_transforms import compact_quotes, merge_trades, missing_id_ranges
from marketlake import schemas
from marketlake.exchanges.binance.parsing import TRADES_CSV_SCHEMA

DAY = dt.date(2025, 1, 1)
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def trade_rows(ids: list[int], source: str, **overrides: object) -> pl.DataFrame:
    """Trades whose values derive from the id, so copies of one id agree by default."""
    frame = (
        pl.DataFrame({"trade_id": ids}, schema={"trade_id": pl.Int64})
        .with_columns(
            exchange=pl.lit("binance"),
            symbol=pl.lit("BTCUSDT"),
            date=pl.lit(DAY),
            price=100.0 + pl.col("trade_id") / 100,
            qty=pl.lit(0.5),
            quote_qty=(100.0 + pl.col("trade_id") / 100) * 0.5,
            ts=pl.lit(T0) + pl.duration(milliseconds=pl.col("trade_id")),
            is_buyer_maker=pl.col("trade_id") % 2 == 0,
            source=pl.lit(source),
            ingested_at=pl.lit(T0 + dt.timedelta(days=1)),
        )
        .with_columns(**{k: pl.lit(v) for k, v in overrides.items()})
    )
    if source == "ws":
        frame = frame.with_columns(received_at=pl.col("ts") + dt.timedelta(milliseconds=40))
        return schemas.conform(frame, schemas.TICKS_TRADES)
    return schemas.conform(frame, schemas.TRADES)


def test_merging_keeps_one_row_per_trade_id_sorted_in_the_trades_schema() -> None:
    history = trade_rows([1, 2, 3, 4], "archive")
    ticks = trade_rows([3, 4, 5, 6, 6], "ws")  # id 6 landed twice
    result = merge_trades(history.lazy(), ticks.lazy())
    assert result.frame.schema == schemas.TRADES
    assert result.frame["trade_id"].to_list() == [1, 2, 3, 4, 5, 6]
    assert (result.rows, result.duplicates_removed, result.conflicts) == (6, 3, 0)
    assert result.rows_by_source == {"archive": 4, "ws": 2}
    assert result.input_rows_by_source == {"archive": 4, "ws": 5}


@pytest.mark.parametrize(
    ("better", "worse"), [("archive", "ws"), ("rest", "ws"), ("archive", "rest")]
)
def test_on_a_conflict_the_better_source_wins_and_the_conflict_is_counted(
    better: str, worse: str
) -> None:
    good = trade_rows([7, 8, 9], better)
    bad = trade_rows([8], worse, price=1.0)
    if worse == "ws":
        history, ticks = good, bad
    else:  # archive and REST rows both live in trades_history
        history, ticks = pl.concat([bad, good]), trade_rows([], "ws")
    result = merge_trades(history.lazy(), ticks.lazy())
    kept = result.frame.filter(pl.col("trade_id") == 8).row(0, named=True)
    assert (kept["source"], kept["price"]) == (better, 100.08)
    assert (result.conflicts, result.conflict_sample) == (1, (8,))


@pytest.mark.parametrize("column", ["qty", "quote_qty", "ts", "is_buyer_maker"])
def test_any_differing_value_is_a_conflict(column: str) -> None:
    archive = trade_rows([1, 2], "archive")
    ws = trade_rows([2], "ws")
    changed = {
        "qty": pl.col("qty") * 2,
        "quote_qty": pl.col("quote_qty") + 0.01,
        "ts": pl.col("ts") + dt.timedelta(microseconds=1),
        "is_buyer_maker": ~pl.col("is_buyer_maker"),
    }[column]
    result = merge_trades(archive.lazy(), ws.with_columns(changed.alias(column)).lazy())
    assert result.conflicts == 1
    assert result.frame.equals(archive)


def test_the_merge_does_not_depend_on_input_order() -> None:
    history = pl.concat([trade_rows([1, 2, 3], "archive"), trade_rows([3, 4], "rest", qty=9.0)])
    ticks = trade_rows([2, 4, 5, 5], "ws")
    first = merge_trades(history.lazy(), ticks.lazy())
    shuffled = merge_trades(
        history.sample(fraction=1, shuffle=True, seed=1).lazy(),
        ticks.sample(fraction=1, shuffle=True, seed=2).lazy(),
    )
    assert first.frame.equals(shuffled.frame)
    assert first.frame["source"].to_list() == ["archive", "archive", "archive", "rest", "ws"]
    # ids 3 and 4: REST's qty 9.0 against the archive's (3) and the stream's (4) 0.5
    assert first.conflict_sample == (3, 4)


def test_more_than_one_partition_is_refused() -> None:
    other_day = trade_rows([1], "archive").with_columns(date=pl.lit(DAY + dt.timedelta(days=1)))
    with pytest.raises(ValueError, match="one \\(exchange, symbol, date\\), got 2"):
        merge_trades(
            pl.concat([trade_rows([1], "archive"), other_day]).lazy(),
            trade_rows([], "ws").lazy(),
        )


def real_day(samples: Path) -> pl.DataFrame:
    raw = pl.read_csv(
        samples / "binance_vision" / "BTCUSDT-trades-2025-01-01.head.csv",
        has_header=False,
        schema=TRADES_CSV_SCHEMA,
    )
    return schemas.conform(
        raw.with_columns(
            ts=pl.from_epoch("time", "us").dt.replace_time_zone("UTC"),
            exchange=pl.lit("binance"),
            symbol=pl.lit("BTCUSDT"),
            date=pl.lit(DAY),
            source=pl.lit("archive"),
            ingested_at=pl.lit(T0 + dt.timedelta(days=1)),
        ),
        schemas.TRADES,
    )


def test_real_archive_with_a_hole_is_completed_by_the_stream(real_samples: Path) -> None:
    day = real_day(real_samples)
    first = day["trade_id"][0]
    hole = pl.col("trade_id").is_between(first + 50, first + 59)
    archive = day.filter(~hole)
    assert missing_id_ranges(archive) == [(first + 50, first + 59)]

    stream = day.filter(pl.col("trade_id") >= first + 40).with_columns(
        source=pl.lit("ws"), received_at=pl.col("ts")
    )
    stream = pl.concat([stream, stream.head(5)])  # redelivered after a reconnect
    result = merge_trades(archive.lazy(), stream.lazy())

    assert result.frame.drop("source").equals(day.drop("source"))
    assert missing_id_ranges(result.frame) == []
    assert result.rows_by_source == {"archive": day.height - 10, "ws": 10}
    assert result.duplicates_removed == archive.height + stream.height - day.height
    assert result.conflicts == 0


def test_missing_id_ranges_are_inclusive_and_ignore_duplicates() -> None:
    frame = pl.DataFrame({"trade_id": [10, 1, 2, 5, 9, 9, 2]})
    assert missing_id_ranges(frame) == [(3, 4), (6, 8)]
    assert missing_id_ranges(frame.lazy()) == [(3, 4), (6, 8)]
    assert missing_id_ranges(pl.DataFrame({"trade_id": [4]})) == []
    assert missing_id_ranges(pl.DataFrame({"trade_id": []}, schema={"trade_id": pl.Int64})) == []


def real_quotes(samples: Path) -> pl.DataFrame:
    """NKNUSDT bookTicker messages from the real cryptofeed recording, stamped with the
    recorder's receive time (spot bookTicker carries no event time)."""
    log = samples / "binance_ws" / "cryptofeed_BINANCE.ws.1.0.log"
    rows = []
    for line in log.read_text().splitlines():
        if '"stream":"nknusdt@bookTicker"' in line:
            stamp, payload = line.split(": ", 1)
            data = json.loads(payload)["data"]
            received = dt.datetime.fromtimestamp(float(stamp), dt.UTC)
            rows.append(
                {
                    "ts": received,
                    "received_at": received,
                    "update_id": data["u"],
                    "bid_price": float(data["b"]),
                    "bid_qty": float(data["B"]),
                    "ask_price": float(data["a"]),
                    "ask_qty": float(data["A"]),
                }
            )
    frame = pl.DataFrame(rows).with_columns(
        exchange=pl.lit("binance"),
        symbol=pl.lit("NKNUSDT"),
        date=pl.col("ts").dt.date(),
    )
    return schemas.conform(frame, schemas.QUOTES)


def test_compacting_real_quotes_orders_them_and_drops_only_exact_duplicates(
    real_samples: Path,
) -> None:
    quotes = real_quotes(real_samples)
    assert quotes.height > 10
    redelivered = quotes.head(3)
    seen_again = quotes.slice(5, 1).with_columns(
        received_at=pl.col("received_at") + dt.timedelta(seconds=1)
    )
    landed = pl.concat([quotes, redelivered, seen_again]).sample(
        fraction=1.0, shuffle=True, seed=11
    )
    compact = compact_quotes(landed.with_columns(extra=pl.lit(1)).lazy())
    assert compact.schema == schemas.QUOTES
    assert compact.height == quotes.height + 1  # the re-received update is kept
    assert compact.select("ts", "update_id").equals(
        compact.select("ts", "update_id").sort("ts", "update_id")
    )
    assert compact.unique().height == compact.height


def test_quotes_sharing_a_timestamp_are_ordered_by_update_id() -> None:
    ts = dt.datetime(2025, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    frame = pl.DataFrame(
        {
            "exchange": "binance",
            "symbol": "BTCUSDT",
            "date": DAY,
            "ts": [ts, ts, ts - dt.timedelta(milliseconds=1)],
            "received_at": ts,
            "update_id": [12, 11, 13],
            "bid_price": 1.0,
            "bid_qty": 1.0,
            "ask_price": 2.0,
            "ask_qty": 1.0,
        }
    )
    assert compact_quotes(frame.lazy())["update_id"].to_list() == [13, 11, 12]
