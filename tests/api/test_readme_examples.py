"""The README's "Reading the lake" examples run, as written, against a lake built here.

The lake (`api.lakes.build_lake`: simulator trades, quotes and depth through the Lake
writers, bars/spread/summary through the SQL models) is `./lake` of the working directory,
which is where `ml.Lake()` and the examples' `"lake/..."` paths look.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from api.lakes import build_lake

README = Path(__file__).resolve().parents[2] / "README.md"


def reading_the_lake_examples() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Reading the lake\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_section_has_the_examples_this_test_runs():
    blocks = reading_the_lake_examples()
    assert len(blocks) >= 4
    code = "\n".join(blocks)
    for call in ("ml.Lake()", "ml.trades(", "ml.bars(", "ml.quotes(", "ml.spread(",
                 "ml.summary(", "ml.depth(", "ml.trades_with_quotes(", "ml.effective_spread(",
                 "ml.realized_volatility(", "to_pandas(", "duckdb."):  # fmt: skip
        assert call in code, call


def test_the_readme_examples_run_against_a_lake_and_give_what_they_say(
    tmp_path, monkeypatch, capsys
):
    build_lake(tmp_path / "lake")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MARKETLAKE_LAKE", raising=False)
    namespace: dict = {"__name__": "readme"}
    for block in reading_the_lake_examples():
        exec(compile(block, str(README), "exec"), namespace)

    assert namespace["lake"].uri == str(tmp_path / "lake")
    assert namespace["noon"].columns == ["ts", "price", "qty"]
    assert namespace["noon"]["ts"].dt.hour().unique().to_list() == [12]
    bars = namespace["bars"]
    assert bars.group_by("symbol").len().sort("symbol")["len"].to_list() == [288, 288]
    assert namespace["hourly"].height == 72
    assert isinstance(namespace["spread"], pl.LazyFrame)
    assert namespace["days"].height == 6
    assert namespace["coinbase"]["exchange"].unique().to_list() == ["coinbase"]
    assert "unknown symbol 'XRPUSDT' on binance in table 'trades'" in capsys.readouterr().out
    assert namespace["same"].equals(namespace["coinbase"])
    assert sorted(namespace["by_side"]["sign"].to_list()) == [-1, 1]
    assert namespace["volatility"].height == 288
    one_minute = namespace["ml"].bars("BTCUSDT", "2024-03-01", lake=namespace["lake"]).collect()
    assert len(namespace["frame"]) == one_minute.height > 1000  # pandas: the same day of bars
    assert namespace["vwap"]["symbol"].to_list() == ["BTC-USD", "BTCUSDT", "ETHUSDT"]
    expected = (
        pl.scan_delta("lake/trades")
        .filter(pl.col("date") == pl.date(2024, 3, 1), pl.col("symbol") == "BTCUSDT")
        .select((pl.col("price") * pl.col("qty")).sum() / pl.col("qty").sum())
        .collect()
        .item()
    )
    assert namespace["vwap"]["vwap"][1] == pytest.approx(expected, rel=1e-12)
