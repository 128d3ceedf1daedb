"""What a materialization of a market table shows in the Dagster UI: a chart and its figures.

Each instrument-day's materialization carries:

- `trend`: a sparkline of the day (close, or spread for `spread_1m`), small enough that
  Dagster 1.13 renders the Markdown inside the metadata table (under 1,000 characters);
- `chart`: the day's chart (price with running VWAP and volume; spread and mid for
  `spread_1m`) as a Markdown image with an SVG data URI, behind the table's "[Show
  Markdown]" button (longer Markdown is not rendered inline); a few KB per
  materialization, since Dagster keeps every materialization's metadata in its event log;
- the day's key figures as numbers (close, VWAP, high, low, volume, trades, spread in bps),
  which the asset's Plots tab draws across the partitions.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl

from assets.partition_key import PartitionKey
from marketlake import charts
from marketlake.lake import Lake

#: Bars (or points) in a metadata chart: half-hours of a full day, which keeps a chart
#: near 5 KB: it is stored with every materialization, four per instrument-day.
CHART_BARS = 48


def trades_chart_metadata(trades: pl.DataFrame, key: PartitionKey) -> dict[str, Any]:
    """The day's price chart from its clean trades, and the figures a bar table would show."""
    bars = charts.minute_bars(trades)
    return {**_price_pictures(bars, key), **_price_figures(bars)}


def model_chart_metadata(
    model: str, rows: pl.DataFrame, key: PartitionKey, lake: Lake
) -> dict[str, Any]:
    """The chart and figures of a SQL model's instrument-day, for the models that have one."""
    if model == "bars_1m":
        return {**_price_pictures(rows, key), **_price_figures(rows)}
    if model == "spread_1m":
        return spread_chart_metadata(rows, key)
    if model == "daily_summary":
        bars = (
            lake.scan("bars_1m", **key.lake_partition()).collect()
            if lake.exists("bars_1m")
            else charts.empty_bars()
        )
        return summary_chart_metadata(rows, bars, key)
    return {}


def spread_chart_metadata(spread: pl.DataFrame, key: PartitionKey) -> dict[str, Any]:
    rows = charts.spread_points(spread)
    svg = charts.spread_chart(
        spread, title=f"{key.symbol} {key.date} spread and mid", max_points=CHART_BARS
    )
    metadata: dict[str, Any] = {
        "trend": _trend(_thin(rows["spread_bps"].to_list()), "spread, bps"),
        "chart": dg.MetadataValue.md(charts.markdown_image(svg, "spread and mid")),
    }
    if rows.height:
        quotes = spread.filter(pl.col("spread_mean").is_not_null())
        weights = quotes["quotes"].cast(pl.Float64)
        bps = quotes["spread_mean"] / quotes["mid_price_mean"] * 1e4
        metadata.update(
            spread_bps_mean=_number((bps * weights).sum() / weights.sum()),
            spread_bps_max=_number(rows["spread_bps"].max()),
            mid_close=_number(rows["mid"][-1]),
        )
    return metadata


def summary_chart_metadata(
    summary: pl.DataFrame, bars_1m: pl.DataFrame, key: PartitionKey
) -> dict[str, Any]:
    """The day's price chart from `bars_1m` and the summary row's own figures."""
    metadata = _price_pictures(bars_1m, key)
    if summary.height:
        row = summary.row(0, named=True)
        for column in ("close", "vwap", "open", "high", "low", "volume", "trades", "quotes"):
            metadata[column] = _number(row.get(column))
        if row.get("spread_mean") is not None and row.get("vwap"):
            metadata["spread_bps_mean"] = _number(row["spread_mean"] / row["vwap"] * 1e4)
    return metadata


def _price_pictures(bars: pl.DataFrame, key: PartitionKey) -> dict[str, Any]:
    svg = charts.price_chart(
        bars, title=f"{key.symbol} {key.date}", max_bars=CHART_BARS, width=560, height=220
    )
    return {
        "trend": _trend(charts.daily_closes(bars), "close"),
        "chart": dg.MetadataValue.md(charts.markdown_image(svg, "close, running VWAP and volume")),
    }


def _trend(values: list[float | None], alt: str) -> dg.MarkdownMetadataValue | None:
    """The sparkline, or nothing for a day without values (an empty cell says nothing)."""
    if not any(v is not None for v in values):
        return None
    return dg.MetadataValue.md(charts.markdown_image(charts.sparkline(values), alt))


def _price_figures(bars: pl.DataFrame) -> dict[str, Any]:
    if bars.is_empty():
        return {}
    volume = bars["volume"].sum()
    return {
        "close": _number(bars["close"][-1]),
        "vwap": _number(bars["quote_volume"].sum() / volume) if volume else None,
        "open": _number(bars["open"][0]),
        "high": _number(bars["high"].max()),
        "low": _number(bars["low"].min()),
        "volume": _number(volume),
        "trades": int(bars["trades"].sum()),
    }


def _thin(values: list[float | None], points: int = 48) -> list[float | None]:
    step = max(1, -(-len(values) // points))
    return values[::step]


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
