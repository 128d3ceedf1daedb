"""The analytics against independent computations (plain loops, numpy) on real captures.

Trades are the real BTCUSDT archive rows of tests/data/real (2024-12-31, ms times, and
2025-01-01, µs times), parsed by the project's archive parser. tests/data/real holds no
quotes of the same instrument at the same time, so the quotes are the real NKNUSDT
bookTicker frames of the cryptofeed recording, parsed by the project's websocket parser,
with their real update rhythm (receive times), update ids and relative spreads, moved onto
each trade day (the first quote 50 ms after the day's first trade, so the first trades
have no quote yet) and rescaled to the trades' price level. Both are written to a lake
with the platform's writers and read back through `ml.trades` / `ml.quotes`.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.samples import TRADES_CSV_2024, TRADES_CSV_2025

import marketlake as ml
from marketlake import schemas
from marketlake.exchanges.binance.parsing import parse_trades_csv
from marketlake.exchanges.binance.websocket import BinanceParser
from marketlake.exchanges.feed import Quote
from marketlake.lake import Lake
from marketlake.resampling import parse_every

KEYS = schemas.MARKET_PARTITION_COLUMNS
DAYS = (dt.date(2024, 12, 31), dt.date(2025, 1, 1))
RECORDING = Path("binance_ws") / "cryptofeed_BINANCE.ws.1.0.log"


def real_trades(day: dt.date) -> pl.DataFrame:
    raw = parse_trades_csv(TRADES_CSV_2024 if day == DAYS[0] else TRADES_CSV_2025)
    return schemas.conform(
        raw.with_columns(
            exchange=pl.lit("binance"),
            symbol=pl.lit("BTCUSDT"),
            date=pl.lit(day),
            source=pl.lit("archive"),
            ingested_at=pl.col("ts"),
        ),
        schemas.TRADES,
    )


def recorded_quotes(samples: Path) -> list[Quote]:
    """The NKNUSDT bookTicker frames, stamped with the recorder's receive time."""
    parser = BinanceParser(["NKNUSDT"])
    quotes: list[Quote] = []
    for line in (samples / RECORDING).read_text().splitlines()[1:]:
        if '"stream":"nknusdt@bookTicker"' in line:
            stamp, payload = line.split(": ", 1)
            quotes += parser.parse(payload, round(float(stamp) * 1e6))
    assert len(quotes) == 74 and all(isinstance(q, Quote) for q in quotes)
    return quotes


def quotes_on(day_trades: pl.DataFrame, recorded: list[Quote]) -> pl.DataFrame:
    first_ts = day_trades["ts"].min()
    shift_us = (
        (first_ts - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
        + 50_000
        - recorded[0].ts_us
    )
    first_mid = (recorded[0].bid_price + recorded[0].ask_price) / 2
    scale = day_trades["price"][0] / first_mid
    frame = pl.DataFrame(
        {
            "ts_us": [q.ts_us + shift_us for q in recorded],
            "update_id": [q.update_id for q in recorded],
            "bid_price": [q.bid_price * scale for q in recorded],
            "bid_qty": [q.bid_qty for q in recorded],
            "ask_price": [q.ask_price * scale for q in recorded],
            "ask_qty": [q.ask_qty for q in recorded],
        }
    )
    ts = pl.from_epoch("ts_us", time_unit="us").dt.replace_time_zone("UTC")
    return schemas.conform(
        frame.with_columns(
            exchange=pl.lit("binance"),
            symbol=pl.lit("BTCUSDT"),
            date=ts.dt.date(),
            ts=ts,
            received_at=ts,
        ),
        schemas.QUOTES,
    )


@pytest.fixture(scope="module")
def real_lake(tmp_path_factory, real_samples) -> Lake:
    lake = Lake(str(tmp_path_factory.mktemp("real-lake")), {})
    recorded = recorded_quotes(real_samples)
    for day in DAYS:
        partition = {"exchange": "binance", "symbol": "BTCUSDT", "date": day}
        trades = real_trades(day)
        lake.replace_partition("trades", trades, partition, KEYS)
        lake.replace_partition("quotes", quotes_on(trades, recorded), partition, KEYS)
    return lake


def prevailing_by_loop(trade: dict, quotes: list[dict], max_age: dt.timedelta | None):
    """The latest quote at or before the trade (highest update id on a tie), or None."""
    best = None
    for quote in quotes:
        if quote["ts"] <= trade["ts"] and (
            best is None or (quote["ts"], quote["update_id"]) > (best["ts"], best["update_id"])
        ):
            best = quote
    if best is not None and max_age is not None and trade["ts"] - best["ts"] > max_age:
        return None
    return best


@pytest.mark.parametrize("max_age", [None, dt.timedelta(milliseconds=400)])
def test_trades_are_signed_and_joined_to_the_prevailing_quote_with_their_effective_spread(
    real_lake, max_age
):
    trades = ml.trades("BTCUSDT", DAYS[0], DAYS[1], lake=real_lake)
    quotes = ml.quotes("BTCUSDT", DAYS[0], DAYS[1], lake=real_lake)
    got = ml.effective_spread(ml.trades_with_quotes(trades, quotes, max_quote_age=max_age))
    got = got.collect()

    trade_rows = sorted(trades.collect().to_dicts(), key=lambda t: (t["ts"], t["trade_id"]))
    quote_rows = quotes.collect().to_dicts()
    assert got.height == len(trade_rows) == 217 + 210
    assert got.columns[: len(schemas.TRADES)] == list(schemas.TRADES)
    missing = 0
    for row, trade in zip(got.to_dicts(), trade_rows, strict=True):
        assert row["trade_id"] == trade["trade_id"]
        assert row["sign"] == (-1 if trade["is_buyer_maker"] else 1)
        quote = prevailing_by_loop(trade, quote_rows, max_age)
        if quote is None:
            missing += 1
            assert row["quote_ts"] is None and row["effective_spread"] is None
            continue
        mid = (quote["bid_price"] + quote["ask_price"]) / 2
        assert (row["quote_ts"], row["bid_price"], row["ask_price"]) == (
            quote["ts"],
            quote["bid_price"],
            quote["ask_price"],
        )
        assert row["mid_price"] == pytest.approx(mid, rel=1e-15)
        assert row["effective_spread"] == pytest.approx(2 * abs(trade["price"] - mid), rel=1e-12)
        expected_bps = 2 * abs(trade["price"] - mid) / mid * 1e4
        assert row["effective_spread_bps"] == pytest.approx(expected_bps, rel=1e-12)
    assert 0 < missing < got.height  # the first trades of each day print before any quote
    assert got["sign"].n_unique() == 2  # the real days have both buyers and sellers


def realized_by_numpy(trades: pl.DataFrame, every: dt.timedelta) -> dict[tuple, tuple]:
    """{(date, bar start): (trades, returns, volatility)} from sorted numpy arrays."""
    out = {}
    step = every.total_seconds()
    for day in trades["date"].unique().to_list():
        rows = trades.filter(pl.col("date") == day).sort("ts", "trade_id")
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        seconds = np.array([(t - midnight).total_seconds() for t in rows["ts"].to_list()])
        bucket = np.floor(seconds / step).astype(np.int64)
        prices = rows["price"].to_numpy()
        for b in np.unique(bucket):
            inside = np.log(prices[bucket == b])
            returns = np.diff(inside)
            start = midnight + dt.timedelta(seconds=float(b) * step)
            out[(day, start)] = (len(inside), len(returns), math.sqrt(np.sum(returns**2)))
    return out


@pytest.mark.parametrize("freq", ["2s", "1m"])
def test_realized_volatility_per_bar_is_the_root_of_summed_squared_log_returns(real_lake, freq):
    trades = ml.trades("BTCUSDT", DAYS[0], DAYS[1], lake=real_lake)
    got = ml.realized_volatility(trades, freq).collect()
    expected = realized_by_numpy(trades.collect(), parse_every(freq))
    assert got.columns == [
        "exchange", "symbol", "date", "minute", "trades", "returns", "realized_volatility",
    ]  # fmt: skip
    assert {(r["date"], r["minute"]) for r in got.to_dicts()} == set(expected)
    for row in got.to_dicts():
        n, returns, volatility = expected[(row["date"], row["minute"])]
        assert (row["trades"], row["returns"]) == (n, returns)
        assert row["realized_volatility"] == pytest.approx(volatility, rel=1e-12, abs=1e-18)
    assert got["realized_volatility"].max() > 0
    assert got["trades"].sum() == 217 + 210
