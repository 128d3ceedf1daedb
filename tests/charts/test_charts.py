"""The SVG charts on frames of real trades and quotes, and on the days that break charts.

Real trades are the BTCUSDT archive rows of tests/data/real (2024-12-31, 217 trades over
ten seconds), parsed by the project's archive parser; real quotes are the NKNUSDT
bookTicker frames of the cryptofeed recording. Ten seconds make one one-minute bar, so the
charts are also drawn from one-second bars of the same rows: a chart reads its bar length
from the bars' spacing. Expected counts come from the rows themselves (distinct seconds),
not from the chart code.
"""

from __future__ import annotations

import base64
import datetime as dt
import xml.etree.ElementTree as ET

import polars as pl
import pytest
from support.samples import BINANCE_DIFF_SESSION, TRADES_CSV_2024

from marketlake import charts
from marketlake.exchanges.binance.parsing import parse_trades_csv
from marketlake.exchanges.binance.websocket import BinanceParser

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def real_trades() -> pl.DataFrame:
    return parse_trades_csv(TRADES_CSV_2024)


@pytest.fixture(scope="module")
def real_spread() -> pl.DataFrame:
    """A spread_1m-shaped frame of the real NKNUSDT quotes, one row per second."""
    parser = BinanceParser(["NKNUSDT"])
    quotes = []
    for line in BINANCE_DIFF_SESSION.read_text().splitlines()[1:]:
        if '"stream":"nknusdt@bookTicker"' in line:
            stamp, payload = line.split(": ", 1)
            quotes += parser.parse(payload, round(float(stamp) * 1e6))
    frame = pl.DataFrame(
        {
            "ts": [q.ts_us for q in quotes],
            "bid": [q.bid_price for q in quotes],
            "ask": [q.ask_price for q in quotes],
        }
    ).with_columns(pl.from_epoch("ts", time_unit="us").dt.replace_time_zone("UTC"))
    return (
        frame.group_by(minute=pl.col("ts").dt.truncate("1s"))
        .agg(
            spread_mean=(pl.col("ask") - pl.col("bid")).mean(),
            mid_price_mean=((pl.col("ask") + pl.col("bid")) / 2).mean(),
        )
        .with_columns(spread_twa=pl.col("spread_mean"))
        .sort("minute")
    )


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def segments(root: ET.Element, name: str) -> int:
    """Bars, candles and wicks are one `M` segment each of their series' path."""
    return sum(e.get("d").count("M") for e in by_class(root, name))


def points(root: ET.Element, name: str) -> list[tuple[float, float]]:
    (line,) = by_class(root, name)
    return [tuple(map(float, p.split(","))) for p in line.get("points").split()]


def texts(root: ET.Element, name: str) -> list[str]:
    return [e.text for e in by_class(root, name)]


def distinct_seconds(trades: pl.DataFrame) -> int:
    return len({ts.replace(microsecond=0) for ts in trades["ts"]})


def test_the_price_chart_of_real_trades_has_one_point_and_one_volume_bar_per_bar(real_trades):
    bars = charts.minute_bars(real_trades, every="1s")
    root = parse(charts.price_chart(bars, title="BTCUSDT 2024-12-31"))

    n = distinct_seconds(real_trades)
    assert n > 5
    assert len(points(root, "close")) == n
    assert len(points(root, "vwap")) == n
    assert segments(root, "volume") == n
    prices = [float(label.replace(",", "")) for label in texts(root, "y-tick")[:-1]]
    assert min(prices) <= real_trades["price"].min() and max(prices) >= real_trades["price"].max()
    assert texts(root, "x-tick")[0].startswith("00:00:")  # the day's first seconds, UTC


def test_the_running_vwap_ends_at_the_days_vwap(real_trades):
    bars = charts.minute_bars(real_trades, every="1s")
    day_vwap = (real_trades["price"] * real_trades["qty"]).sum() / real_trades["qty"].sum()
    assert charts.running_vwap(bars)[-1] == pytest.approx(day_vwap, rel=1e-12)


def test_candles_of_real_trades_are_one_per_bar_and_coloured_by_direction(real_trades):
    bars = charts.minute_bars(real_trades, every="1s")
    root = parse(charts.candle_chart(bars))

    n = distinct_seconds(real_trades)
    ups = sum(1 for o, c in zip(bars["open"], bars["close"], strict=True) if c >= o)
    assert segments(root, "wick") == n
    assert segments(root, "up") == ups and segments(root, "down") == n - ups
    assert segments(root, "volume") == n


def test_ten_seconds_of_real_trades_make_one_minute_candle(real_trades):
    bars = charts.minute_bars(real_trades)
    assert bars.height == 1 and bars["trades"][0] == real_trades.height

    root = parse(charts.candle_chart(bars))
    assert segments(root, "wick") == 1 and segments(root, "body") == 1
    assert len(points(root, "vwap")) == 1


def test_the_trade_count_chart_has_one_bar_per_bar_as_tall_as_its_count(real_trades):
    bars = charts.minute_bars(real_trades, every="1s")
    root = parse(charts.trade_count_chart(bars))

    (path,) = by_class(root, "trades")
    heights = [
        float(s.split()[1].split("V")[0]) - float(s.split("V")[1])
        for s in path.get("d").split("M")[1:]
    ]
    assert len(heights) == distinct_seconds(real_trades)
    busiest = max(range(bars.height), key=lambda i: bars["trades"][i])
    assert heights.index(max(heights)) == busiest


def test_the_spread_chart_of_real_quotes_has_one_point_per_quoted_bar(real_spread):
    root = parse(charts.spread_chart(real_spread, title="NKNUSDT"))

    assert real_spread.height > 3
    assert len(points(root, "mid")) == real_spread.height
    assert len(points(root, "spread")) == real_spread.height
    assert "spread, bps of mid" in "".join(e.text or "" for e in root.iter(f"{SVG}text"))


def test_a_minute_without_quote_updates_is_left_out_of_the_spread_line(real_spread):
    quiet = real_spread.with_columns(
        spread_mean=pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise("spread_mean"),
        spread_twa=pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise("spread_twa"),
    )
    root = parse(charts.spread_chart(quiet))
    assert len(points(root, "spread")) == real_spread.height - 1


def test_a_long_spread_day_is_drawn_as_the_means_of_equal_slices():
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    spread = pl.DataFrame(
        {
            "minute": [start + dt.timedelta(minutes=i) for i in range(1440)],
            "mid_price_mean": [100.0 + i for i in range(1440)],
            "spread_mean": [0.01] * 1440,
            "spread_twa": [0.01] * 1440,
        }
    )
    root = parse(charts.spread_chart(spread, max_points=48))
    mids = points(root, "mid")
    assert len(mids) == 48 and len(points(root, "spread")) == 48
    full = points(parse(charts.spread_chart(spread)), "mid")
    assert len(full) == 1440
    # the first half-hour's mean mid (114.5) is drawn where the full line passes 114.5
    assert mids[0][1] == pytest.approx((full[14][1] + full[15][1]) / 2, abs=0.11)


@pytest.mark.parametrize(
    "draw",
    [charts.price_chart, charts.candle_chart, charts.trade_count_chart, charts.spread_chart],
)
def test_an_empty_day_draws_a_frame_that_says_no_data(draw, real_trades, real_spread):
    empty = (real_spread if draw is charts.spread_chart else charts.minute_bars(real_trades)).head(
        0
    )
    root = parse(draw(empty, title="BTCUSDT 2024-03-01"))
    assert texts(root, "no-data") == ["no data"]
    assert not by_class(root, "wick") and not by_class(root, "close")


def test_a_constant_price_is_drawn_mid_panel_with_labelled_ticks():
    minutes = [dt.datetime(2024, 3, 1, 10, m, tzinfo=dt.UTC) for m in range(30)]
    bars = pl.DataFrame(
        {
            "minute": minutes,
            **{c: [100.0] * 30 for c in ("open", "high", "low", "close")},
            "volume": [1.0] * 30,
            "quote_volume": [100.0] * 30,
            "trades": [1] * 30,
        }
    )
    for svg in (charts.price_chart(bars), charts.candle_chart(bars)):
        root = parse(svg)
        (panel, _) = by_class(root, "panel")
        top, bottom = float(panel.get("y")), float(panel.get("y")) + float(panel.get("height"))
        ys = {y for _, y in points(root, "vwap")}
        assert len(ys) == 1 and top < ys.pop() < bottom
        assert "100.0" in "".join(texts(root, "y-tick"))
    assert segments(parse(charts.candle_chart(bars)), "up") == 30  # flat candles still show


def test_a_whole_day_is_merged_into_at_most_max_bars_candles_exactly():
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    prices = [100.0 + (i % 37) - (i % 11) for i in range(1440)]
    bars = pl.DataFrame(
        {
            "minute": [start + dt.timedelta(minutes=i) for i in range(1440)],
            "open": prices,
            "high": [p + 1 for p in prices],
            "low": [p - 1 for p in prices],
            "close": prices,
            "volume": [1.0] * 1440,
            "quote_volume": prices,
            "trades": [2] * 1440,
        }
    )
    merged = charts.coarser(bars, 144)
    assert merged.height == 144
    assert merged["trades"].to_list() == [20] * 144
    assert merged["high"][0] == max(p + 1 for p in prices[:10])
    late = charts.coarser(bars.slice(7), 48)  # a day whose first trade came at 00:07
    assert late["minute"][0] == start and late["minute"][1] == start + dt.timedelta(minutes=30)
    assert late["open"][0] == prices[7] and late.height == 48
    root = parse(charts.candle_chart(bars, max_bars=144))
    assert segments(root, "wick") == 144
    labels = texts(root, "x-tick")
    assert labels[0] == "00:00" and "12:00" in labels


def test_titles_are_escaped_text():
    svg = charts.trade_count_chart(
        pl.DataFrame({"minute": [dt.datetime(2024, 3, 1, tzinfo=dt.UTC)], "trades": [3]}),
        title='<script>alert("x")</script> & co',
    )
    root = parse(svg)
    assert '<script>alert("x")</script> & co' in [e.text for e in root.iter(f"{SVG}text")]
    assert not list(root.iter(f"{SVG}script"))


def test_a_days_sparkline_fits_in_a_dagster_table_cell_as_markdown():
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    bars = pl.DataFrame(
        {
            "minute": [start + dt.timedelta(minutes=i) for i in range(1440)],
            **{c: [60_000.0 + i * 0.37 for i in range(1440)] for c in ("open", "high", "low")},
            "close": [60_000.0 + i * 0.37 for i in range(1440)],
        }
    )
    markdown = charts.markdown_image(charts.sparkline(charts.daily_closes(bars)), "close")
    assert len(markdown) < charts.DAGSTER_INLINE_MARKDOWN
    uri = markdown.split("](", 1)[1].rstrip(")")
    svg = base64.b64decode(uri.removeprefix("data:image/svg+xml;base64,")).decode()
    assert len(points(parse(svg), "line")) == 48
