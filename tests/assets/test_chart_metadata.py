"""What an instrument-day's materializations show in the UI: a chart, a trend and figures.

One day of the simulator's trades (archive) and a day of its quotes (landed as live
quotes) through `trades_history_job` and `daily_job`; the figures are checked against the
simulator's ground truth, the charts by decoding them as a user's browser would.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import xml.etree.ElementTree as ET

import dagster as dg
import pytest
from api.lakes import quotes_frame

from marketlake import charts, schemas
from marketlake.lake import Lake
from orchestration.definitions import build_definitions
from orchestration.settings import Settings

DAY = dt.date(2024, 3, 1)
KEY = f"{DAY}|binance:BTCUSDT"
SVG = "{http://www.w3.org/2000/svg}"


def materialization_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    out = {}
    for event in result.get_asset_materialization_events():
        m = event.step_materialization_data.materialization
        out[m.asset_key.to_user_string()] = m.metadata
    return out


def svg_of(markdown: str) -> ET.Element:
    """The SVG of a Markdown image with a base64 data URI, parsed."""
    assert markdown.startswith("![") and markdown.endswith(")")
    uri = markdown.split("](", 1)[1][:-1]
    prefix = "data:image/svg+xml;base64,"
    assert uri.startswith(prefix)
    return ET.fromstring(base64.b64decode(uri[len(prefix) :]))


def lines(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("class") == name]


@pytest.fixture(scope="module")
def day(sim, tmp_path_factory):
    """The day built once for every test of this module, as the `world` fixture builds it."""
    sim.reset()
    settings = dataclasses.replace(
        Settings(),
        lake=str(tmp_path_factory.mktemp("charts") / "lake"),
        binance_archive_url=sim.base_url,
        binance_rest_url=sim.base_url,
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("instruments", ["binance:BTCUSDT"])
    lake = Lake(settings.lake)
    lake.append(
        "ticks_quotes",
        quotes_frame("binance", "BTCUSDT", DAY),
        schemas.MARKET_PARTITION_COLUMNS,
    )
    defs = build_definitions(settings)
    for job in ("trades_history_job", "daily_job"):
        result = defs.resolve_job_def(job).execute_in_process(partition_key=KEY, instance=instance)
        assert result.success
    return sim.ground_truth("BTCUSDT", DAY), lake, materialization_metadata(result)


def test_trades_and_bars_show_the_days_price_chart_and_its_figures(day):
    truth, _, metadata = day
    truth = truth.sort("ts", "trade_id")
    for asset in ("trades", "bars_1m", "daily_summary"):
        m = metadata[asset]
        assert m["close"].value == truth["price"][-1], asset
        assert m["open"].value == truth["price"][0], asset
        assert m["high"].value == truth["price"].max(), asset
        assert m["low"].value == truth["price"].min(), asset
        assert m["trades"].value == truth.height, asset
        assert m["vwap"].value == pytest.approx(
            (truth["price"] * truth["qty"]).sum() / truth["qty"].sum(), rel=1e-9
        )
        assert isinstance(m["chart"], dg.MarkdownMetadataValue)
        chart = svg_of(m["chart"].value)
        (close,) = lines(chart, "close")
        assert 1 < len(close.get("points").split()) <= 48  # a full day in half-hours
        assert len(m["chart"].value) < 8_000  # a few KB in the event log, per partition
        trend = m["trend"].value
        assert len(trend) < charts.DAGSTER_INLINE_MARKDOWN  # drawn inside the metadata table
        assert lines(svg_of(trend), "line")


def test_the_spread_shows_mid_and_spread_and_its_mean_in_basis_points(day):
    _, lake, metadata = day
    m = metadata["spread_1m"]
    spread = lake.scan("spread_1m", symbol="BTCUSDT", date=DAY).collect()
    chart = svg_of(m["chart"].value)
    assert spread.height == 1440  # a quote every five seconds, all day
    assert len(lines(chart, "mid")[0].get("points").split()) == 48  # half-hour means
    assert len(lines(chart, "spread")[0].get("points").split()) == 48
    assert len(m["chart"].value) < 8_000
    bps = spread["spread_mean"] / spread["mid_price_mean"] * 1e4
    weights = spread["quotes"]
    assert m["spread_bps_mean"].value == pytest.approx((bps * weights).sum() / weights.sum())
    assert metadata["daily_summary"]["spread_bps_mean"].value > 0


def test_the_plots_tab_gets_numbers_not_text(day):
    _, _, metadata = day
    for asset, names in {
        "trades": ("close", "vwap", "high", "low", "volume"),
        "bars_1m": ("close", "vwap", "high", "low", "volume"),
        "spread_1m": ("spread_bps_mean", "mid_close"),
        "daily_summary": ("close", "vwap", "volume", "spread_bps_mean"),
    }.items():
        for name in names:
            assert isinstance(metadata[asset][name], dg.FloatMetadataValue), (asset, name)
