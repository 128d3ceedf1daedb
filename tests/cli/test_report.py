"""`marketlake report` as a user runs it: a real process on a lake built by `daily_job`.

The lake holds one day of BTCUSDT: the simulator's trades as the stream landed them, with
a hole of 200 ids the `trades` asset fills from REST (the simulator on loopback), a quote
a minute all day, and the lander's own `gap` / `gap_filled` events; `daily_job` ran on it against a
Dagster home the command then reads, as the CLI and the UI share one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from api.lakes import quotes_frame

from assets.trade_transforms import with_lake_keys
from marketlake import schemas
from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.definitions import build_definitions
from orchestration.instance import local_instance
from orchestration.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2024, 3, 1)
KEY = f"{DAY}|binance:BTCUSDT"
HOLE = (700, 899)  # positions of the day's trades the stream missed


@dataclasses.dataclass
class Built:
    folder: Path
    lake: Lake
    truth: pl.DataFrame
    hole_ids: tuple[int, int]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    folder = tmp_path_factory.mktemp("report")
    with Simulator(SimConfig(trades_per_day=3_000, symbols=("BTCUSDT",))) as sim:
        settings = dataclasses.replace(
            Settings(),
            lake=str(folder / "lake"),
            binance_archive_url=sim.base_url,
            binance_rest_url=sim.base_url,
        )
        lake = Lake(settings.lake)
        truth = sim.ground_truth("BTCUSDT", DAY).sort("trade_id")
        first, last = truth["trade_id"][HOLE[0]], truth["trade_id"][HOLE[1]]
        landed = truth.filter(~pl.col("trade_id").is_between(first, last))
        lake.append("ticks_trades", _ticks(landed), schemas.MARKET_PARTITION_COLUMNS)
        quotes = quotes_frame("binance", "BTCUSDT", DAY).gather_every(12)  # one a minute
        lake.append("ticks_quotes", quotes, schemas.MARKET_PARTITION_COLUMNS)
        lake.append("stream_events", _gap_events(first, last), schemas.EVENT_PARTITION_COLUMNS)

        instance = local_instance(folder / "home")
        instance.add_dynamic_partitions("instruments", ["binance:BTCUSDT"])
        job = build_definitions(settings).resolve_job_def("daily_job")
        assert job.execute_in_process(partition_key=KEY, instance=instance).success
    return Built(folder, lake, truth, (first, last))


def _ticks(frame: pl.DataFrame) -> pl.DataFrame:
    at = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)
    rows = with_lake_keys(
        frame, exchange="binance", symbol="BTCUSDT", date=DAY, source="ws", ingested_at=at
    )
    return schemas.conform(rows.with_columns(received_at=pl.lit(at)), schemas.TICKS_TRADES)


def _gap_events(first: int, last: int) -> pl.DataFrame:
    at = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)
    detail = {"first_id": first, "last_id": last, "count": last - first + 1}
    return schemas.conform(
        pl.DataFrame(
            {
                "date": [DAY, DAY],
                "ts": [at, at + dt.timedelta(seconds=1)],
                "exchange": ["binance", "binance"],
                "symbol": ["BTCUSDT", "BTCUSDT"],
                "kind": ["gap", "gap_filled"],
                "detail": [json.dumps({**detail, "cause": "sequence"}), json.dumps(detail)],
            }
        ),
        schemas.STREAM_EVENTS,
    )


def report(built: Built, *args: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAKE_", "DAGSTER_"))},
        "DAGSTER_HOME": str(built.folder / "home"),
        "MARKETLAKE_LAKE": str(built.folder / "lake"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "report", *args],
        cwd=built.folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


class Page(HTMLParser):
    """What a browser would fetch (src/href) and draw (svg elements) from the page."""

    def __init__(self, text: str):
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.svg_classes: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action", "data"):
                self.urls.append(value or "")
            if name == "class":
                self.svg_classes.append(value or "")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.text.append(data)

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


def test_the_report_of_a_built_day_is_one_self_contained_page_with_the_days_figures(built):
    result = report(built, "BTCUSDT", DAY.isoformat())

    assert result.returncode == 0, result.stderr
    path = built.folder / f"report-binance-BTCUSDT-{DAY}.html"
    assert f"report written to {path}" in " ".join(result.stdout.split())
    page = Page(path.read_text())
    # self-contained: nothing to fetch, no script
    assert not [u for u in page.urls if not u.startswith("#")], page.urls
    assert not {"script", "link", "iframe", "img"} & set(page.tags)
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", path.read_text())

    truth = built.truth.sort("ts", "trade_id")
    words = page.words
    assert "BTCUSDT 2024-03-01" in words
    assert f"close {truth['price'][-1]:,.2f}" in words
    assert f"high {truth['price'].max():,.2f}" in words
    assert f"trades {truth.height:,}" in words
    vwap = (truth["price"] * truth["qty"]).sum() / truth["qty"].sum()
    assert f"VWAP {vwap:,.2f}" in words
    # the gap the merge found and the 200 ids REST filled, and the stream's own events
    assert "trade-id gaps found in the merge 1" in words
    assert "trades filled from REST 200" in words and "gaps still open 0" in words
    first, last = built.hole_ids
    assert f"gap_filled first_id={first}, last_id={last}" in words
    # the charts: candles, spread and mid, trades per minute
    assert page.svg_classes.count("wick") == 1 and "vwap" in page.svg_classes
    assert "spread" in page.svg_classes and "trades" in page.svg_classes
    # the checks of the day, from the Dagster instance
    checks = re.search(r"Checks: (\d+) of (\d+) passed", words)
    assert checks and checks[1] == checks[2] and int(checks[2]) > 20
    assert "trade_ids_contiguous passed" in words and "sources_agree passed" in words


def test_a_range_with_a_day_not_built_reports_the_built_days_and_names_the_other(built):
    out = built.folder / "week.html"
    result = report(built, "btcusdt", "2024-02-29", "--end", "2024-03-01", "--out", str(out))

    assert result.returncode == 0, result.stderr
    assert "no data for 2024-02-29" in " ".join(result.stderr.split())
    words = Page(out.read_text()).words
    assert "No data for 2024-02-29" in words and "2024-03-01" in words


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (
            ["ETHUSDT", "2024-03-01"],
            2,
            "unknown instrument binance:ETHUSDT: the lake's bars hold binance:BTCUSDT",
        ),
        (
            ["BTCUSDT", "--exchange", "okx", "2024-03-01"],
            2,
            "invalid OKX instrument 'BTCUSDT': expected like BTC-USDT",
        ),
        (
            ["okx:BTC-USDT", "2024-03-01"],
            2,
            "unknown instrument okx:BTC-USDT: the lake's bars hold binance:BTCUSDT",
        ),
        (["BTCUSDT", "2024-03-05"], 1, "no data for binance:BTCUSDT on 2024-03-05"),
        (["BTCUSDT", "2024-13-01"], 2, "malformed date '2024-13-01'"),
        (["BTCUSDT", "2024-03-02", "--end", "2024-03-01"], 2, "--end 2024-03-01 is before"),
        (["BTCUSDT", "2024-03-01", "--out", "r.pdf"], 2, "give a .html file name"),
        (["BTCUSDT", "2024-03-01", "--out", "no/r.html"], 2, "folder no does not exist"),
        (["BTC/USDT", "2024-03-01"], 2, "invalid Binance symbol 'BTC/USDT'"),
    ],
)
def test_a_wrong_request_is_one_line_naming_it_and_writes_no_file(built, args, status, message):
    before = set(built.folder.iterdir())
    result = report(built, *args)

    assert result.returncode == status, result.stdout + result.stderr
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr
    assert set(built.folder.iterdir()) == before
