"""`venue_prices_1m`: every venue's price of one instrument, minute by minute, side by side.

For each normalized instrument (`marketlake.instrument_specs`: ``BTC-USD spot``), minute and
venue (``exchange:symbol``) a row holds the venue's trade VWAP, last trade price and last
mid quote in that minute, and, repeated on each of the minute's rows, the largest
cross-venue gap with the two venues that make it.

Choices a reader of the table should know:

- A *venue* is an exchange's symbol (``binance:BTCUSDT``), not the exchange: one exchange
  can list two symbols under one key (BTCUSDT and BTCUSDC are both ``BTC-USD spot``), and
  the gap between them is worth seeing too.
- The gap is taken between VWAPs: what was actually paid in that minute. Mids are beside
  them for a venue that quoted but did not trade; they are not in the gap, because a
  minute's last mid and a minute's VWAP are prices of different moments.
- The gap in basis points is relative to the midpoint of the two prices,
  ``(high - low) / ((high + low) / 2) * 10_000``: symmetric, so it doesn't depend on which
  venue is called the reference (100 and 101 give 99.50 bps). It is null when fewer than
  two venues traded in the minute.
- VWAPs weigh trades by base quantity (`InstrumentSpec.base_quantity`), so an inverse
  contract's USD amounts and a spot market's coins are weighed alike. ``base_volume`` is
  null where a contract's size is unknown (instrument list not fetched); the VWAP does not
  need it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Final

import polars as pl

from marketlake.instrument_specs import InstrumentListError, InstrumentSpec, resolve
from marketlake.quality import Check, CheckOutcome
from marketlake.schemas import UTC_US

TABLE: Final = "venue_prices_1m"
PARTITION_COLUMNS: Final = ("date",)

VENUE_PRICES_1M: Final = pl.Schema(
    {
        "date": pl.Date,
        "minute": UTC_US,
        "instrument": pl.String,
        "base": pl.String,
        "kind": pl.String,
        "exchange": pl.String,
        "symbol": pl.String,
        "quote": pl.String,
        "trades": pl.Int64,
        "base_volume": pl.Float64,
        "vwap": pl.Float64,
        "last_price": pl.Float64,
        "mid": pl.Float64,
        "gap_bps": pl.Float64,
        "gap_low_venue": pl.String,
        "gap_high_venue": pl.String,
    }
)

INSTRUMENTS: Final = pl.Schema(
    {
        "exchange": pl.String,
        "symbol": pl.String,
        "instrument": pl.String,
        "base": pl.String,
        "kind": pl.String,
        "quote": pl.String,
        "qty_unit": pl.String,
        "inverse": pl.Boolean,
        "contract_size": pl.Float64,
    }
)

_ROW: Final = ["instrument", "minute", "exchange", "symbol"]
_MINUTE: Final = ["instrument", "minute"]


def instruments_frame(
    pairs: Iterable[tuple[str, str]],
    known: Mapping[tuple[str, str], InstrumentSpec] | None = None,
) -> tuple[pl.DataFrame, dict[str, str]]:
    """The instruments of (exchange, symbol) pairs, and the pairs left out with why.

    A pair is left out when it is not placed side by side (an option) or its symbol says
    nothing the fallback can read; a day is not refused for one odd symbol.
    """
    rows, skipped = [], {}
    for exchange, symbol in sorted(set(pairs)):
        try:
            found = resolve(exchange, symbol, known)
        except InstrumentListError as error:
            skipped[f"{exchange}:{symbol}"] = str(error)
            continue
        if found is None:
            skipped[f"{exchange}:{symbol}"] = "not a spot, perpetual or future instrument"
            continue
        rows.append(
            (exchange, symbol, found.key, found.base, found.kind, found.quote, found.qty_unit,
             found.inverse, found.contract_size)
        )  # fmt: skip
    return pl.DataFrame(rows, schema=INSTRUMENTS, orient="row"), skipped


def venue_prices(
    trades: pl.LazyFrame | pl.DataFrame,
    quotes: pl.LazyFrame | pl.DataFrame,
    instruments: pl.DataFrame,
    date: dt.date,
) -> pl.DataFrame:
    """One day's `VENUE_PRICES_1M` rows from that day's trades and quotes of every venue.

    ``trades`` needs exchange, symbol, ts, trade_id, price, qty; ``quotes`` needs exchange,
    symbol, ts, bid_price, ask_price. Rows of symbols absent from ``instruments`` are left
    out (see `instruments_frame`).
    """
    known = instruments.lazy()
    weight = (
        pl.when(pl.col("qty_unit") == "quote")
        .then(pl.col("qty") / pl.col("price"))
        .when((pl.col("qty_unit") == "contracts") & pl.col("inverse"))
        .then(pl.col("qty") / pl.col("price"))
        .otherwise(pl.col("qty"))
    )  # base quantity up to the contract size, constant per symbol: enough for a VWAP
    per_unit = pl.when(pl.col("qty_unit") == "contracts").then(pl.col("contract_size"))
    traded = (
        trades.lazy()
        .join(known, on=["exchange", "symbol"], how="inner")
        .with_columns(minute=pl.col("ts").dt.truncate("1m"), weight=weight)
        .group_by(_ROW)
        .agg(
            trades=pl.len().cast(pl.Int64),
            base_volume=pl.when(per_unit.otherwise(1.0).first().is_not_null()).then(
                (pl.col("weight") * per_unit.otherwise(1.0)).sum()
            ),
            vwap=(pl.col("price") * pl.col("weight")).sum() / pl.col("weight").sum(),
            last_price=pl.col("price").sort_by("ts", "trade_id").last(),
        )
    )
    quoted = (
        quotes.lazy()
        .join(known.select("exchange", "symbol", "instrument"), on=["exchange", "symbol"])
        .with_columns(minute=pl.col("ts").dt.truncate("1m"))
        .group_by(_ROW)
        # quotes sharing a time keep the table's order (the `quotes` asset's), so the last wins
        .agg(
            mid=((pl.col("bid_price") + pl.col("ask_price")) / 2)
            .sort_by("ts", maintain_order=True)
            .last()
        )
    )
    rows = (
        traded.join(quoted, on=_ROW, how="full", coalesce=True)
        .join(
            known.select("exchange", "symbol", "base", "kind", "quote"), on=["exchange", "symbol"]
        )
        .with_columns(venue=pl.col("exchange") + ":" + pl.col("symbol"))
    )
    gaps = (
        rows.filter(pl.col("vwap").is_not_null())
        .group_by(_MINUTE)
        .agg(
            venues=pl.len(),
            high=pl.col("vwap").max(),
            low=pl.col("vwap").min(),
            # ties: the low venue is the first name, the high the last, so they differ
            gap_low_venue=pl.col("venue").sort_by("vwap", "venue").first(),
            gap_high_venue=pl.col("venue").sort_by("vwap", "venue").last(),
        )
        .filter(pl.col("venues") >= 2)
        .with_columns(
            gap_bps=(pl.col("high") - pl.col("low")) / ((pl.col("high") + pl.col("low")) / 2) * 1e4
        )
    )
    return (
        rows.join(gaps, on=_MINUTE, how="left")
        .with_columns(date=pl.lit(date, pl.Date), trades=pl.col("trades").fill_null(0))
        .select(pl.col(name).cast(dtype) for name, dtype in VENUE_PRICES_1M.items())
        .sort(_ROW)
        .collect()
    )


# --- checks -------------------------------------------------------------------------------

#: Beyond this a gap is more likely a bad print or two instruments wrongly put under one key
#: than a price difference anyone could trade (exchanges' BTC rarely differ by 0.5%).
GAP_WARN_BPS: Final = 50.0

UNIQUE = Check(
    "one_row_per_instrument_minute_venue",
    "No two rows share instrument, minute, exchange and symbol.",
)
GAP_NON_NEGATIVE = Check(
    "gap_bps_non_negative", "Every cross-venue gap is zero or more basis points."
)
GAP_VENUES = Check(
    "gap_names_two_venues",
    "A minute with a gap names two different venues, both among that minute's rows.",
)
PRICES_POSITIVE = Check("prices_positive", "Every VWAP, last price and mid is above zero.")
IN_DAY = Check("minutes_in_partition_day", "Every minute lies in the partition's UTC day.")
GAP_PLAUSIBLE = Check(
    "gap_under_50_bps",
    f"No cross-venue gap above {GAP_WARN_BPS:g} bps (a bad print or a mismatched instrument).",
    severity="WARN",
)
CHECKS: Final = (UNIQUE, GAP_NON_NEGATIVE, GAP_VENUES, PRICES_POSITIVE, IN_DAY, GAP_PLAUSIBLE)


def check_venue_prices(frame: pl.DataFrame, date: dt.date) -> list[CheckOutcome]:
    """Every check of `CHECKS` on one day's rows, each with a few failing rows to look at."""
    duplicated = frame.filter(pl.struct(_ROW).is_duplicated())
    gapped = frame.filter(pl.col("gap_bps").is_not_null())
    minute_venues = frame.group_by(_MINUTE).agg(
        named=(pl.col("exchange") + ":" + pl.col("symbol")).implode()
    )
    bad_venues = gapped.join(minute_venues, on=_MINUTE).filter(
        (pl.col("gap_low_venue") == pl.col("gap_high_venue"))
        | ~pl.col("named").list.contains(pl.col("gap_low_venue"))
        | ~pl.col("named").list.contains(pl.col("gap_high_venue"))
    )
    prices = ["vwap", "last_price", "mid"]
    return [
        _outcome(UNIQUE, duplicated),
        _outcome(GAP_NON_NEGATIVE, gapped.filter(pl.col("gap_bps") < 0)),
        _outcome(GAP_VENUES, bad_venues.drop("named")),
        _outcome(PRICES_POSITIVE, frame.filter(pl.any_horizontal(pl.col(prices) <= 0))),
        _outcome(IN_DAY, frame.filter(pl.col("minute").dt.date() != date)),
        _outcome(GAP_PLAUSIBLE, gapped.filter(pl.col("gap_bps") > GAP_WARN_BPS)),
    ]


def _outcome(check: Check, failing: pl.DataFrame) -> CheckOutcome:
    sample = (
        failing.head(5)
        .select(
            c for c in ("instrument", "minute", "exchange", "symbol", "gap_bps") if c in failing
        )
        .with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%MZ"))
    )
    return check.outcome(
        failing.is_empty(),
        failing.height,
        {"failing_rows": failing.height, "sample": sample.to_dicts()} if failing.height else {},
    )


__all__ = [
    "CHECKS",
    "INSTRUMENTS",
    "PARTITION_COLUMNS",
    "TABLE",
    "VENUE_PRICES_1M",
    "check_venue_prices",
    "instruments_frame",
    "venue_prices",
]
