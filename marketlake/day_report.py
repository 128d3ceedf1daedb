"""A self-contained HTML page about instrument-days: charts, figures, gaps and checks.

The page is one file that opens anywhere, offline, years later: the charts are inline SVG
(`marketlake.charts`), the style is inline CSS, and nothing is loaded from elsewhere (no
script, font, stylesheet or image URL). Rendering is pure: the caller gathers each day's
frames and check results (`orchestration/day_report.py` reads the lake and the Dagster
instance) and this module only turns them into HTML, escaping every value it prints.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

import polars as pl

from marketlake import charts

#: Candles in the report's price chart: five-minute candles over a full day.
REPORT_CANDLES = 288


@dataclass(frozen=True)
class CheckResult:
    """The latest evaluation of one check for the instrument-day (None: planned, not run)."""

    asset: str
    name: str
    passed: bool | None
    severity: str
    description: str = ""
    failing_rows: int | None = None
    evaluated_at: dt.datetime | None = None


@dataclass
class DayData:
    symbol: str
    exchange: str
    date: dt.date
    bars: pl.DataFrame
    """bars_1m of the day (minute, open, high, low, close, volume, quote_volume, trades)."""
    spread: pl.DataFrame
    """spread_1m of the day (may be empty: a day without live quotes)."""
    summary: Mapping[str, Any] | None = None
    """The daily_summary row."""
    trades_by_source: Mapping[str, int] = field(default_factory=dict)
    """Rows of `trades` per source (rest rows are the ids filled from REST)."""
    merge: Mapping[str, Any] = field(default_factory=dict)
    """The latest `trades` materialization's figures: gaps_found, gaps_remaining, ..."""
    gap_events: pl.DataFrame | None = None
    """stream_events of the day whose kind is a gap or its fill (ts, kind, detail)."""
    checks: Sequence[CheckResult] = ()


def render(days: Sequence[DayData], *, missing: Sequence[dt.date] = (), now=None) -> str:
    """The whole report: one section per day, in the order given."""
    now = now or dt.datetime.now(dt.UTC)
    symbol = days[0].symbol if days else ""
    first, last = (days[0].date, days[-1].date) if days else (None, None)
    span = f"{first}" if first == last else f"{first} to {last}"
    title = f"{symbol} {span}"
    body = [f"<h1>{escape(title)}</h1>"]
    body.append(
        f'<p class="meta">{escape(days[0].exchange if days else "")} · generated '
        f"{escape(now.strftime('%Y-%m-%d %H:%M UTC'))} · times in UTC</p>"
    )
    if missing:
        body.append(
            '<p class="warn">No data for '
            + escape(", ".join(d.isoformat() for d in missing))
            + f": not built yet (<code>marketlake build {escape(symbol)} --start DATE</code>).</p>"
        )
    body += [_day(day) for day in days]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · marketlake</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _day(day: DayData) -> str:
    bars = day.bars.sort("minute") if day.bars.height else day.bars
    candles = charts.coarser(bars, REPORT_CANDLES) if bars.height else bars
    minutes = int(charts.bar_length(candles).total_seconds() // 60) if candles.height else 1
    parts = [f'<section id="d{day.date.isoformat()}"><h2>{day.date.isoformat()}</h2>']
    parts.append(_figures(day, bars))
    parts.append(f"<h3>Price: {minutes}-minute candles, running VWAP, volume</h3>")
    parts.append(charts.candle_chart(candles, width=1000, height=340))
    parts.append("<h3>Spread and mid (per minute)</h3>")
    parts.append(charts.spread_chart(day.spread, width=1000, height=240))
    parts.append("<h3>Trades per minute</h3>")
    parts.append(charts.trade_count_chart(bars, width=1000, height=170))
    parts.append(_gaps(day))
    parts.append(_checks(day.checks))
    return "".join(parts) + "</section>"


def _figures(day: DayData, bars: pl.DataFrame) -> str:
    s = dict(day.summary or {})
    if bars.height:  # the bars are the authority where the summary was not built
        volume = bars["volume"].sum()
        s.setdefault("open", bars["open"][0])
        s.setdefault("close", bars["close"][-1])
        s.setdefault("high", bars["high"].max())
        s.setdefault("low", bars["low"].min())
        s.setdefault("volume", volume)
        s.setdefault("trades", int(bars["trades"].sum()))
        if volume:
            s.setdefault("vwap", bars["quote_volume"].sum() / volume)
    spread_bps = (
        s["spread_mean"] / s["vwap"] * 1e4 if s.get("spread_mean") and s.get("vwap") else None
    )
    rows = [
        ("open", s.get("open")),
        ("high", s.get("high")),
        ("low", s.get("low")),
        ("close", s.get("close")),
        ("VWAP", s.get("vwap")),
        ("volume", s.get("volume")),
        ("trades", s.get("trades")),
        ("quotes", s.get("quotes")),
        ("mean spread", s.get("spread_mean")),
        ("mean spread, bps of VWAP", spread_bps),
        ("sources", s.get("sources")),
    ]
    cells = "".join(
        f'<div class="fig"><span>{escape(name)}</span><b>{escape(_value(value))}</b></div>'
        for name, value in rows
    )
    return f'<div class="figures">{cells}</div>'


def _gaps(day: DayData) -> str:
    m = day.merge
    by_source = ", ".join(f"{k}: {v:,}" for k, v in sorted(day.trades_by_source.items()))
    items = [
        ("trade-id gaps found in the merge", m.get("gaps_found")),
        ("ids missing before the fill", m.get("ids_missing_before_fill")),
        ("trades filled from REST", day.trades_by_source.get("rest", 0)),
        ("gaps still open", len(m.get("gaps_remaining") or [])),
        ("duplicates removed", m.get("duplicates_removed")),
        ("conflicts between sources", m.get("conflicts")),
        ("trades by source", by_source or None),
    ]
    rows = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(_value(value))}</td></tr>" for name, value in items
    )
    html = f'<h3>Gaps and their fills</h3><table class="kv">{rows}</table>'
    remaining = m.get("gaps_remaining") or []
    if remaining:
        ranges = ", ".join(f"{a}–{b}" for a, b in remaining)
        html += f'<p class="warn">Trade ids still missing: {escape(ranges)}</p>'
    events = day.gap_events
    if events is not None and events.height:
        lines = "".join(
            f"<tr><td>{escape(row['ts'].strftime('%H:%M:%S'))}</td><td>{escape(row['kind'])}</td>"
            f"<td><code>{escape(_detail(row['detail']))}</code></td></tr>"
            for row in events.sort("ts").iter_rows(named=True)
        )
        html += (
            "<p>The stream's own gaps (<code>stream_events</code>):</p>"
            '<table class="list"><tr><th>time</th><th>event</th><th>detail</th></tr>'
            f"{lines}</table>"
        )
    elif not m:
        html += "<p>No <code>trades</code> materialization recorded for this day.</p>"
    return html


def _checks(checks: Sequence[CheckResult]) -> str:
    """Per asset: how many checks passed; the failed ones spelled out; all of them folded."""
    if not checks:
        return "<h3>Checks</h3><p>No check has run on this instrument-day.</p>"
    failed = [c for c in checks if c.passed is False]
    passed = sum(1 for c in checks if c.passed)
    head = f"<h3>Checks: {passed} of {len(checks)} passed"
    head += f', <span class="bad">{len(failed)} failed</span></h3>' if failed else "</h3>"
    assets = list(dict.fromkeys(c.asset for c in checks))
    per_asset = "".join(
        f"<tr><th>{escape(asset)}</th><td>{_count(checks, asset)}</td></tr>" for asset in assets
    )
    html = head + f'<table class="kv">{per_asset}</table>'
    if failed:
        html += '<p class="bad">Failed:</p>' + _check_table(failed)
    return (
        html
        + f"<details><summary>Every check ({len(checks)})</summary>{_check_table(checks)}</details>"
    )


def _count(checks: Sequence[CheckResult], asset: str) -> str:
    mine = [c for c in checks if c.asset == asset]
    passed = sum(1 for c in mine if c.passed)
    failed = sum(1 for c in mine if c.passed is False)
    text = f"{passed} of {len(mine)} passed"
    return text + (f' · <span class="bad">{failed} failed</span>' if failed else "")


def _check_table(checks: Sequence[CheckResult]) -> str:
    rows = "".join(
        f'<tr class="{_status_class(c)}"><td>{escape(c.asset)}</td><td>{escape(c.name)}</td>'
        f"<td>{escape(_status(c))}</td><td>{escape(c.severity)}</td>"
        f"<td>{escape(_value(c.failing_rows) if c.failing_rows else '')}</td>"
        f"<td>{escape(c.description)}</td>"
        f"<td>{escape(c.evaluated_at.strftime('%Y-%m-%d %H:%M') if c.evaluated_at else '')}</td>"
        "</tr>"
        for c in checks
    )
    return (
        '<table class="list"><tr><th>asset</th><th>check</th><th>result</th><th>severity</th>'
        "<th>failing rows</th><th>description</th><th>evaluated (UTC)</th></tr>"
        f"{rows}</table>"
    )


def _status(check: CheckResult) -> str:
    return {True: "passed", False: "failed", None: "not run yet"}[check.passed]


def _status_class(check: CheckResult) -> str:
    return {True: "ok", False: "bad", None: "planned"}[check.passed]


def _detail(text: str | None) -> str:
    """A stream event's JSON detail as `key=value` pairs, as a person reads it."""
    try:
        detail = json.loads(text or "")
    except ValueError:
        return text or ""
    if isinstance(detail, dict):
        return ", ".join(f"{k}={v}" for k, v in detail.items())
    return str(detail)


def _value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{_decimals(value)}f}"
    return str(value)


def _decimals(value: float) -> int:
    magnitude = abs(value)
    if magnitude >= 1000:
        return 2
    if magnitude >= 1:
        return 4
    return 6


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2937;margin:24px auto;
max-width:1040px;padding:0 16px}
h1{font-size:22px;margin:0}h2{font-size:18px;border-bottom:1px solid #e5e7eb;padding-bottom:4px;
margin-top:32px}h3{font-size:14px;margin:20px 0 6px;color:#374151}
.meta{color:#6b7280;margin:4px 0 16px}.warn{color:#b45309}.bad{color:#b91c1c}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}
.fig{border:1px solid #e5e7eb;border-radius:6px;padding:6px 10px}
.fig span{display:block;color:#6b7280;font-size:12px}.fig b{font-variant-numeric:tabular-nums}
table{border-collapse:collapse;font-size:13px}th,td{text-align:left;padding:3px 10px 3px 0;
vertical-align:top}table.list{width:100%}table.list tr{border-bottom:1px solid #f3f4f6}
table.kv th{font-weight:normal;color:#6b7280}tr.bad td{color:#b91c1c}tr.planned td{color:#6b7280}
svg{display:block;max-width:100%;height:auto}code{font-size:12px}
"""
