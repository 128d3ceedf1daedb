"""Small SVG charts of one instrument-day, drawn from Polars frames with no plotting library.

The charts travel inside Dagster metadata (stored with every materialization in the event
log) and inside a self-contained HTML report, so each is a few KB of plain SVG text: no
JavaScript, no fonts to fetch, no network, the same in a browser, the Dagster UI or a file
viewer. Every function is pure: a frame in, an SVG string out.

Conventions shared by every chart:

- Time runs left to right over the frame's own span (first bar to the end of the last), in
  UTC, with a few ticks at round times. A bar's length is read from the spacing of its
  `minute` column (one minute when there is a single bar), so the same chart draws
  one-minute bars and finer ones.
- Value axes get three to six ticks at round numbers (1, 2 or 5 times a power of ten); a
  constant series is padded so that it is drawn mid-panel instead of dividing by zero.
- The VWAP line is the day's running VWAP: sum(quote volume) / sum(volume) from the first
  bar up to each bar, the intraday benchmark a trader compares fills with.
- Each series is one `<path>` or `<polyline>` with a `class` naming it, and every bar,
  candle or point is one segment (`M`) or point of it: the whole day stays a few elements.
- Text from the caller (titles) is escaped; an empty frame draws the axes' frame and says
  "no data".
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

import polars as pl

UP = "#16a34a"
DOWN = "#dc2626"
PRICE = "#2563eb"
VWAP = "#d97706"
VOLUME = "#94a3b8"
SPREAD = "#7c3aed"
GRID = "#e5e7eb"
INK = "#374151"

#: Markdown longer than this is shown behind a "[Show Markdown]" button in Dagster 1.13's
#: metadata tables (ui-core MetadataEntry.tsx); shorter is rendered in the table itself.
DAGSTER_INLINE_MARKDOWN = 1000

_TIME_STEPS = tuple(
    dt.timedelta(seconds=s)
    for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
)


# --- frames -----------------------------------------------------------------------------------


def minute_bars(trades: pl.DataFrame, every: str = "1m") -> pl.DataFrame:
    """OHLCV bars (one-minute by default) of a day's trades, as the charts need them.

    The same figures as the `bars_1m` model (open/close the first/last trade by ts then
    trade id), for a chart of `trades` drawn before any model has run. The bar start is in
    `minute` whatever the length, as in every bars table.
    """
    if trades.is_empty():
        return empty_bars()
    return (
        trades.sort("ts", "trade_id")
        .group_by(minute=pl.col("ts").dt.truncate(every), maintain_order=True)
        .agg(
            open=pl.col("price").first(),
            high=pl.col("price").max(),
            low=pl.col("price").min(),
            close=pl.col("price").last(),
            volume=pl.col("qty").sum(),
            quote_volume=(pl.col("price") * pl.col("qty")).sum(),
            trades=pl.len().cast(pl.Int64),
        )
        .sort("minute")
    )


def coarser(bars: pl.DataFrame, max_bars: int) -> pl.DataFrame:
    """At most `max_bars` bars, merged exactly (first open, last close, extremes, sums).

    A whole day of one-minute bars is 1,440 candles: more than a small chart has pixels.
    Bars merge by a whole multiple of their own length, counted from the UTC midnight of
    the first bar, so a day's merged bars start at round times (00:00, 00:30, ...).
    """
    if bars.height <= max_bars:
        return bars
    length = bar_length(bars)
    origin = _midnight(bars["minute"].min())
    span = bars["minute"].max() - origin + length
    factor = math.ceil(span / length / max_bars)
    every = length * factor
    how = {
        "open": pl.col("open").first(),
        "high": pl.col("high").max(),
        "low": pl.col("low").min(),
        "close": pl.col("close").last(),
        **{c: pl.col(c).sum() for c in ("volume", "quote_volume", "trades")},
    }
    return (
        bars.sort("minute")
        .with_columns(
            minute=origin
            + pl.duration(
                microseconds=((pl.col("minute") - origin).dt.total_microseconds() // _us(every))
                * _us(every)
            )
        )
        .group_by("minute", maintain_order=True)
        .agg(how[c] for c in bars.columns if c in how)
    )


def _slice_means(rows: pl.DataFrame, max_points: int) -> pl.DataFrame:
    """The means of every column over equal slices of time, at most `max_points` of them."""
    length = bar_length(rows)
    origin = _midnight(rows["minute"].min())
    span = rows["minute"].max() - origin + length
    every = _us(length) * math.ceil(span / length / max_points)
    offset = (pl.col("minute") - origin).dt.total_microseconds()
    return (
        rows.group_by(
            minute=origin + pl.duration(microseconds=offset // every * every), maintain_order=True
        )
        .agg(pl.exclude("minute").mean())
        .sort("minute")
    )


def _midnight(t: dt.datetime) -> dt.datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def bar_length(frame: pl.DataFrame) -> dt.timedelta:
    """The length of a frame's bars: the smallest spacing of `minute`, else one minute."""
    if frame.height < 2:
        return dt.timedelta(minutes=1)
    step = frame["minute"].sort().diff().drop_nulls().min()
    return step if isinstance(step, dt.timedelta) and step > dt.timedelta(0) else _MINUTE


def running_vwap(bars: pl.DataFrame) -> pl.Series:
    """The day's VWAP up to each bar: cumulative quote volume over cumulative volume."""
    quote = (
        pl.col("quote_volume")
        if "quote_volume" in bars.columns
        else pl.col("vwap") * pl.col("volume")
    )
    return bars.select(
        pl.when(pl.col("volume").cum_sum() > 0)
        .then(quote.fill_null(0).cum_sum() / pl.col("volume").cum_sum())
        .alias("running_vwap")
    ).to_series()


# --- the charts -------------------------------------------------------------------------------


def price_chart(
    bars: pl.DataFrame,
    *,
    title: str = "",
    width: int = 560,
    height: int = 220,
    max_bars: int | None = None,
) -> str:
    """Close price and running VWAP over the day, volume bars beneath."""

    def closes(canvas: _Canvas, times: _Times, y: _Scale, bars: pl.DataFrame) -> None:
        canvas.polyline("close", _points(times, y, bars["minute"], bars["close"]), PRICE)

    return _with_vwap_and_volume(
        _prepared(bars, max_bars),
        _Canvas(width, height, title),
        (0.72, 0.28),
        prices=lambda bars: list(bars["close"]),
        draw=closes,
        legend=[("close", PRICE)],
    )


def candle_chart(
    bars: pl.DataFrame,
    *,
    title: str = "",
    width: int = 900,
    height: int = 320,
    max_bars: int | None = None,
) -> str:
    """OHLC candles (green up, red down) with the running VWAP, volume bars beneath."""
    return _with_vwap_and_volume(
        _prepared(bars, max_bars),
        _Canvas(width, height, title),
        (0.74, 0.26),
        prices=lambda bars: [*bars["high"], *bars["low"]],
        draw=_candles,
        legend=[("up", UP), ("down", DOWN)],
    )


def _candles(canvas: _Canvas, times: _Times, y: _Scale, bars: pl.DataFrame) -> None:
    body = max(times.width * 0.7, 0.6)
    wicks: list[str] = []
    bodies: dict[bool, list[str]] = {True: [], False: []}
    for row in bars.iter_rows(named=True):
        x = times.mid(row["minute"])
        wicks.append(f"M{x:.1f} {y(row['high']):.1f}V{y(row['low']):.1f}")
        top, bottom = sorted((y(row["open"]), y(row["close"])))
        bodies[row["close"] >= row["open"]].append(f"M{x:.1f} {top:.1f}V{max(bottom, top + 1):.1f}")
    canvas.path("wick", "".join(wicks), stroke=INK, width=1)
    for up, segments in bodies.items():
        if segments:
            canvas.path(
                f"body {'up' if up else 'down'}",
                "".join(segments),
                stroke=UP if up else DOWN,
                width=body,
            )


def _with_vwap_and_volume(
    bars: pl.DataFrame,
    canvas: _Canvas,
    split: tuple[float, float],
    *,
    prices: Callable[[pl.DataFrame], list[float]],
    draw: Callable[[_Canvas, _Times, _Scale, pl.DataFrame], None],
    legend: list[tuple[str, str]],
) -> str:
    """The price charts' common frame: a price panel scaled to `prices` and the running VWAP,
    with what `draw` puts on it, then the VWAP line; volume bars beneath."""
    price, volume = canvas.panels(split)
    times = _Times(bars)
    if bars.is_empty():
        return canvas.empty(price, volume)
    vwap = running_vwap(bars)
    y = _Scale.of([*prices(bars), *vwap.drop_nulls()], price)
    canvas.grid(price, y)
    canvas.time_axis(volume, times)
    draw(canvas, times, y, bars)
    canvas.polyline("vwap", _points(times, y, bars["minute"], vwap), VWAP, dashed=True)
    canvas.volume(volume, times, bars)
    canvas.legend([*legend, ("VWAP", VWAP), ("volume", VOLUME)])
    return canvas.svg()


def spread_chart(
    spread: pl.DataFrame,
    *,
    title: str = "",
    width: int = 560,
    height: int = 220,
    max_points: int | None = None,
) -> str:
    """Mid price above, the time-weighted spread in basis points of the mid beneath.

    Minutes without quote updates (only depth snapshots) have no spread in `spread_1m` and
    are left out rather than drawn as zero. With `max_points`, longer days are drawn as the
    means of equal time slices.
    """
    canvas = _Canvas(width, height, title)
    mid_panel, spread_panel = canvas.panels((0.55, 0.45))
    rows = spread_points(spread)
    if max_points and rows.height > max_points:
        rows = _slice_means(rows, max_points)
    times = _Times(rows)
    if rows.is_empty():
        return canvas.empty(mid_panel, spread_panel)
    y_mid = _Scale.of(list(rows["mid"]), mid_panel)
    y_bps = _Scale.of([0.0, *rows["spread_bps"]], spread_panel)
    canvas.grid(mid_panel, y_mid)
    canvas.grid(spread_panel, y_bps)
    canvas.time_axis(spread_panel, times)
    canvas.polyline("mid", _points(times, y_mid, rows["minute"], rows["mid"]), PRICE)
    canvas.polyline(
        "spread",
        _points(times, y_bps, rows["minute"], rows["spread_bps"]),
        SPREAD,
    )
    canvas.legend([("mid", PRICE), ("spread, bps of mid", SPREAD)])
    return canvas.svg()


def spread_points(spread: pl.DataFrame) -> pl.DataFrame:
    """`minute`, `mid` and `spread_bps` of the minutes of `spread_1m` that had quotes."""
    if spread.is_empty():
        return pl.DataFrame(
            schema={"minute": pl.Datetime("us", "UTC"), "mid": pl.Float64, "spread_bps": pl.Float64}
        )
    value = (
        pl.coalesce("spread_twa", "spread_mean")
        if "spread_twa" in spread.columns
        else pl.col("spread_mean")
    )
    return (
        spread.sort("minute")
        .select(
            "minute",
            mid=pl.col("mid_price_mean"),
            spread_bps=value / pl.col("mid_price_mean") * 1e4,
        )
        .filter(pl.col("mid").is_not_null() & pl.col("spread_bps").is_finite())
    )


def trade_count_chart(
    bars: pl.DataFrame,
    *,
    title: str = "",
    width: int = 900,
    height: int = 180,
    max_bars: int | None = None,
) -> str:
    """Trades per bar: how busy each minute of the day was."""
    bars = _prepared(bars, max_bars)
    canvas = _Canvas(width, height, title)
    (panel,) = canvas.panels((1.0,))
    times = _Times(bars)
    if bars.is_empty():
        return canvas.empty(panel)
    y = _Scale.of([0.0, *bars["trades"]], panel)
    canvas.grid(panel, y)
    canvas.time_axis(panel, times)
    width_px = max(times.width * 0.8, 0.6)
    segments = "".join(
        f"M{times.mid(t):.1f} {panel.bottom:.1f}V{y(n):.1f}"
        for t, n in zip(bars["minute"], bars["trades"], strict=True)
    )
    canvas.path("trades", segments, stroke=PRICE, width=width_px)
    canvas.legend([("trades per bar", PRICE)])
    return canvas.svg()


def sparkline(values: Sequence[float | None], *, width: int = 160, height: int = 32) -> str:
    """A bare line of `values` (no axes), small enough to sit inside a table cell."""
    points = [v for v in values if v is not None and math.isfinite(v)]
    svg = _svg_open(width, height)
    if points:
        low, high = min(points), max(points)
        span = (high - low) or 1.0
        step = (width - 4) / max(len(points) - 1, 1)
        coords = " ".join(
            f"{2 + i * step:.0f},{height - 2 - (v - low) / span * (height - 4):.0f}"
            for i, v in enumerate(points)
        )
        svg += (
            f'<polyline class="line" fill="none" stroke="{PRICE}" stroke-width="1.5" '
            f'points="{coords}"/>'
        )
    return svg + "</svg>"


def daily_closes(bars: pl.DataFrame, points: int = 48) -> list[float]:
    """The closes of `points` equal slices of the day's bars, for a sparkline."""
    return list(coarser(bars.sort("minute"), points)["close"]) if bars.height else []


# --- embedding --------------------------------------------------------------------------------


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def markdown_image(svg: str, alt: str) -> str:
    """A Markdown image of `svg` as a data URI: Dagster's Markdown allows `data:` images."""
    return f"![{_markdown_alt(alt)}]({data_uri(svg)})"


def _markdown_alt(text: str) -> str:
    return "".join(c for c in text if c not in "[]\\\n")


# --- drawing ----------------------------------------------------------------------------------

_MINUTE = dt.timedelta(minutes=1)


def _us(delta: dt.timedelta) -> int:
    return delta // dt.timedelta(microseconds=1)


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "minute": pl.Datetime("us", "UTC"),
            **{c: pl.Float64 for c in ("open", "high", "low", "close", "volume", "quote_volume")},
            "trades": pl.Int64,
        }
    )


def _points(
    times: _Times, scale: _Scale, minutes: pl.Series, values: pl.Series
) -> list[tuple[float, float]]:
    """(x, y) of each bar's value at the middle of its bar; bars without a value are skipped."""
    return [
        (times.mid(t), scale(v))
        for t, v in zip(minutes, values, strict=True)
        if v is not None and math.isfinite(v)
    ]


def _prepared(bars: pl.DataFrame, max_bars: int | None) -> pl.DataFrame:
    bars = bars.sort("minute") if bars.height else bars
    return coarser(bars, max_bars) if max_bars else bars


def _svg_open(width: int, height: int) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
    )


@dataclass(frozen=True)
class _Panel:
    left: float
    top: float
    right: float
    bottom: float


class _Times:
    """Maps bar starts to x: bar i occupies [start, start + length) of the frame's span."""

    def __init__(self, bars: pl.DataFrame):
        self.length = bar_length(bars)
        self.start = bars["minute"].min() if bars.height else None
        self.end = (bars["minute"].max() + self.length) if bars.height else None
        self.left = self.right = 0.0

    def place(self, left: float, right: float) -> None:
        self.left, self.right = left, right

    @property
    def span(self) -> dt.timedelta:
        return self.end - self.start

    @property
    def width(self) -> float:
        """Pixels per bar."""
        return (self.right - self.left) * (self.length / self.span)

    def x(self, t: dt.datetime) -> float:
        return self.left + (self.right - self.left) * ((t - self.start) / self.span)

    def mid(self, t: dt.datetime) -> float:
        return self.x(t + self.length / 2)

    def ticks(self) -> list[dt.datetime]:
        step = next((s for s in _TIME_STEPS if self.span / s <= 6), _TIME_STEPS[-1])
        day = _midnight(self.start)
        first = day + step * math.ceil((self.start - day) / step)
        return [first + step * i for i in range(int((self.end - first) / step) + 1)]

    def label(self, t: dt.datetime) -> str:
        return t.strftime("%H:%M:%S" if self.span < dt.timedelta(minutes=5) else "%H:%M")


class _Scale:
    """A linear value-to-y map over round-number limits, with its ticks."""

    def __init__(self, low: float, high: float, panel: _Panel):
        if high <= low:  # a constant series: draw it mid-panel
            pad = abs(low) * 0.001 or 1.0
            low, high = low - pad, high + pad
        step = _nice_step((high - low) / 4)
        self.ticks = [step * i for i in range(math.floor(low / step), math.ceil(high / step) + 1)]
        self.low, self.high = self.ticks[0], self.ticks[-1]
        self.panel = panel
        self.decimals = max(0, -math.floor(math.log10(step)))

    @classmethod
    def of(cls, values: list[float], panel: _Panel) -> _Scale:
        finite = [v for v in values if v is not None and math.isfinite(v)]
        return cls(min(finite), max(finite), panel) if finite else cls(0.0, 1.0, panel)

    def __call__(self, value: float) -> float:
        p = self.panel
        return p.bottom - (p.bottom - p.top) * (value - self.low) / (self.high - self.low)

    def label(self, value: float) -> str:
        return f"{value:,.{self.decimals}f}"


def _nice_step(raw: float) -> float:
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


class _Canvas:
    """An SVG being written: panels stacked top to bottom, with a shared time axis."""

    def __init__(self, width: int, height: int, title: str):
        self.width, self.height = width, height
        self.parts: list[str] = [
            _svg_open(width, height),
            f'<rect width="{width}" height="{height}" fill="#fff"/>',
            f'<g font-family="sans-serif" font-size="10" fill="{INK}">',
        ]
        self.top = 22.0  # the title line: the title left, the legend right
        if title:
            self.parts.append(
                f'<text x="8" y="14" font-size="12" font-weight="bold">{escape(title)}</text>'
            )

    def panels(self, shares: Sequence[float]) -> list[_Panel]:
        left, right, bottom, gap = 62.0, self.width - 10.0, self.height - 30.0, 12.0
        room = bottom - self.top - gap * (len(shares) - 1)
        panels, top = [], self.top
        for share in shares:
            panels.append(_Panel(left, top, right, top + room * share))
            top += room * share + gap
        for p in panels:
            self.parts.append(
                f'<rect class="panel" x="{p.left:.1f}" y="{p.top:.1f}" '
                f'width="{p.right - p.left:.1f}" height="{p.bottom - p.top:.1f}" '
                f'fill="none" stroke="{GRID}"/>'
            )
        return panels

    def empty(self, *panels: _Panel) -> str:
        p = panels[0]
        self.parts.append(
            f'<text class="no-data" x="{(p.left + p.right) / 2:.1f}" '
            f'y="{(p.top + p.bottom) / 2:.1f}" text-anchor="middle">no data</text>'
        )
        return self.svg()

    def grid(self, panel: _Panel, scale: _Scale) -> None:
        labels = scale.ticks if len(scale.ticks) <= 6 else scale.ticks[::2]
        for value in labels:
            y = scale(value)
            self.parts.append(
                f'<path d="M{panel.left:.1f} {y:.1f}H{panel.right:.1f}" stroke="{GRID}"/>'
                f'<text class="y-tick" x="{panel.left - 4:.1f}" y="{y + 3:.1f}" '
                f'text-anchor="end">{escape(scale.label(value))}</text>'
            )

    def time_axis(self, panel: _Panel, times: _Times) -> None:
        times.place(panel.left, panel.right)
        for t in times.ticks():
            x = times.x(t)
            anchor = "end" if x > panel.right - 20 else "middle"
            self.parts.append(
                f'<path d="M{x:.1f} {panel.bottom:.1f}v4" stroke="{INK}"/>'
                f'<text class="x-tick" x="{x:.1f}" y="{panel.bottom + 14:.1f}" '
                f'text-anchor="{anchor}">{times.label(t)}</text>'
            )
        self.parts.append(
            f'<text x="{panel.right:.1f}" y="{panel.bottom + 26:.1f}" text-anchor="end">'
            f"UTC, {escape(times.start.strftime('%Y-%m-%d'))}</text>"
        )

    def polyline(
        self, name: str, points: list[tuple[float, float]], color: str, dashed: bool = False
    ) -> None:
        if not points:
            return
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        self.parts.append(
            f'<polyline class="{name}" fill="none" stroke="{color}" stroke-width="1.5"{dash} '
            f'points="{coords}"/>'
        )

    def path(self, name: str, d: str, *, stroke: str, width: float) -> None:
        self.parts.append(
            f'<path class="{name}" d="{d}" stroke="{stroke}" stroke-width="{width:.1f}" '
            'fill="none"/>'
        )

    def volume(self, panel: _Panel, times: _Times, bars: pl.DataFrame) -> None:
        scale = _Scale.of([0.0, *bars["volume"]], panel)
        top = scale.ticks[-1]
        self.parts.append(
            f'<text class="y-tick" x="{panel.left - 4:.1f}" y="{panel.top + 8:.1f}" '
            f'text-anchor="end">{escape(_compact(top))}</text>'
        )
        segments = "".join(
            f"M{times.mid(t):.1f} {panel.bottom:.1f}V{scale(v or 0.0):.1f}"
            for t, v in zip(bars["minute"], bars["volume"], strict=True)
        )
        self.path("volume", segments, stroke=VOLUME, width=max(times.width * 0.8, 0.6))

    def legend(self, entries: Sequence[tuple[str, str]]) -> None:
        """The series' names and colours, right-aligned on the title line, off the data."""
        x = self.width - 10.0
        for label, color in reversed(entries):
            x -= 7 * len(label) + 4
            self.parts.append(
                f'<rect x="{x - 13:.1f}" y="8" width="10" height="3" fill="{color}"/>'
                f'<text x="{x:.1f}" y="13">{escape(label)}</text>'
            )
            x -= 25

    def svg(self) -> str:
        return "".join(self.parts) + "</g></svg>"


def _compact(value: float) -> str:
    """4,200,000 -> 4.2M: the volume axis has room for one short label."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"
