"""Running models: partition binding, errors naming the model file, builds on a Delta lake."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dbt_like_sql import (
    ModelError,
    PartitionError,
    build,
    load_manifest,
    materialize,
    parse_project,
    run_model,
    validate_partition,
)
from dbt_like_sql.memory import MemoryStore
from marketlake import schemas
from marketlake.lake import Lake

DAY = dt.date(2024, 12, 31)
PARTITION = {"exchange": "binance", "symbol": "BTCUSDT", "date": DAY}
SOURCES_YML = "version: 2\nsources:\n  - name: lake\n    tables:\n      - name: trades\n"


def project(root: Path, **models: str) -> Path:
    for name, sql in models.items():
        (root / f"{name}.sql").write_text(sql)
    (root / "schema.yml").write_text(SOURCES_YML)
    return root


def trades(symbol: str = "BTCUSDT", day: dt.date = DAY, n: int = 5) -> pl.DataFrame:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return schemas.conform(
        pl.DataFrame(
            {
                "exchange": "binance",
                "symbol": symbol,
                "date": day,
                "trade_id": range(100, 100 + n),
                "price": [100.0 + i for i in range(n)],
                "qty": [1.0] * n,
                "quote_qty": [100.0 + i for i in range(n)],
                "ts": [start + dt.timedelta(seconds=40 * i) for i in range(n)],
                "is_buyer_maker": [i % 2 == 0 for i in range(n)],
                "source": "archive",
                "ingested_at": start,
            }
        ),
        schemas.TRADES,
    )


class SpyStore(MemoryStore):
    """Records every scan, to prove nothing was read."""

    def __init__(self, tables: dict[str, pl.DataFrame] | None = None) -> None:
        super().__init__(tables)
        self.scans: list[str] = []

    def scan(self, table: str, schema: pl.Schema | None = None, **partition: Any) -> pl.LazyFrame:
        self.scans.append(table)
        return super().scan(table, schema, **partition)


@pytest.mark.parametrize(
    ("partition", "problem"),
    [
        ({**PARTITION, "symbol": "BTC'; DROP TABLE trades; --"}, "invalid Binance symbol"),
        ({**PARTITION, "symbol": "BTC'; DROP"}, "invalid Binance symbol"),
        ({**PARTITION, "exchange": "kraken"}, "unknown exchange"),
        ({**PARTITION, "date": "2024-02-30"}, "invalid date"),
        ({**PARTITION, "date": "2024-12-31' OR '1'='1"}, "invalid date"),
        ({**PARTITION, "date": dt.datetime(2024, 12, 31, tzinfo=dt.UTC)}, "invalid date"),
        ({"exchange": "binance", "symbol": "BTCUSDT"}, "needs exactly"),
        ({**PARTITION, "hour": "01"}, "needs exactly"),
    ],
)
def test_a_bad_partition_value_is_refused_before_any_scan_or_sql(
    partition: dict[str, Any], problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sql(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("SQL ran")

    monkeypatch.setattr(pl, "SQLContext", no_sql)
    store = SpyStore({"trades": trades()})
    manifest = load_manifest()
    with pytest.raises(PartitionError, match=problem):
        run_model(manifest, "bars_1m", store, partition)
    with pytest.raises(PartitionError, match=problem):
        build(manifest, store, partition)
    assert store.scans == []
    assert set(store.tables) == {"trades"}


def test_partition_values_are_normalized_and_bound_as_data(tmp_path: Path) -> None:
    assert validate_partition({**PARTITION, "symbol": " btcusdt", "date": "2024-12-31"}) == (
        PARTITION
    )
    manifest = parse_project(
        project(
            tmp_path,
            echo="SELECT {{ partition.exchange }} AS exchange, {{ partition.symbol }} AS symbol,"
            " {{ partition.date }} AS date, COUNT(*) AS n FROM {{ ref('trades') }}",
        )
    )
    assert "BTCUSDT" not in manifest.model("echo").compiled_sql
    store = MemoryStore({"trades": pl.concat([trades(), trades("ETHUSDT", n=2)])})
    row = run_model(manifest, "echo", store, {**PARTITION, "symbol": "btcusdt"}).row(0)
    assert row == ("binance", "BTCUSDT", DAY, 5)


def test_a_sql_error_is_raised_as_model_error_naming_the_model_file(tmp_path: Path) -> None:
    manifest = parse_project(
        project(
            tmp_path,
            typo="SELECT no_such_column FROM {{ ref('trades') }}",
            syntax="SELEC price FROM {{ ref('trades') }}",
        )
    )
    store = MemoryStore({"trades": trades()})
    for name in ("typo", "syntax"):
        with pytest.raises(ModelError) as caught:
            run_model(manifest, name, store, PARTITION)
        assert caught.value.model == name
        assert caught.value.path == tmp_path / f"{name}.sql"
        assert f"{name}.sql" in str(caught.value)
        if name == "typo":
            assert "no_such_column" in str(caught.value)


def test_a_table_not_reached_through_ref_is_not_visible(tmp_path: Path) -> None:
    manifest = parse_project(project(tmp_path, sneaky="SELECT * FROM trades"))
    with pytest.raises(ModelError, match=r"sneaky\.sql"):
        run_model(manifest, "sneaky", MemoryStore({"trades": trades()}), PARTITION)


def test_an_upstream_model_never_built_names_the_ref(tmp_path: Path) -> None:
    with pytest.raises(
        ModelError, match=r"bars_1h\.sql.*cannot read ref 'bars_1m': build it first"
    ):
        run_model(load_manifest(), "bars_1h", Lake(str(tmp_path / "lake")), PARTITION)


def test_rows_outside_the_partition_are_refused_before_writing(tmp_path: Path) -> None:
    manifest = parse_project(
        project(
            tmp_path, leaky="SELECT exchange, 'ETHUSDT' AS symbol, date FROM {{ ref('trades') }}"
        )
    )
    store = MemoryStore({"trades": trades()})
    with pytest.raises(ModelError, match=r"leaky\.sql.*5 row\(s\) outside partition"):
        build(manifest, store, PARTITION)
    assert "leaky" not in store.tables


def test_materialize_writes_one_model_and_returns_the_rows_written() -> None:
    store = MemoryStore({"trades": trades()})
    written = materialize(load_manifest(), "bars_1m", store, {**PARTITION, "date": "2024-12-31"})
    assert written.equals(store.tables["bars_1m"])
    assert written["trades"].to_list() == [2, 1, 2]


def test_build_writes_every_model_to_its_partition_and_is_idempotent(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    for symbol in ("BTCUSDT", "ETHUSDT"):
        lake.replace_partition(
            "trades",
            trades(symbol),
            {**PARTITION, "symbol": symbol},
            schemas.MARKET_PARTITION_COLUMNS,
        )
    manifest = load_manifest()
    eth = {**PARTITION, "symbol": "ETHUSDT"}

    counts = build(manifest, lake, PARTITION)
    build(manifest, lake, eth)
    again = build(manifest, lake, PARTITION)

    assert counts == again
    assert list(counts) == list(manifest.order)
    assert counts["bars_1m"] == 3  # trades at 0, 40 | 80 | 120, 160 s
    assert counts["bars_1d"] == counts["daily_summary"] == 1
    assert counts["spread_1m"] == 0  # no quotes or depth landed yet
    for name in manifest.order:
        stored = lake.scan(name, **PARTITION).collect().sort(pl.all())
        assert stored.equals(run_model(manifest, name, lake, PARTITION).sort(pl.all())), name
        assert lake.scan(name, **eth).collect().height == counts[name]
    summary = lake.scan("daily_summary", **PARTITION).collect().row(0, named=True)
    assert summary["trades"] == 5 and summary["quotes"] == 0 and summary["sources"] == "archive"


def test_a_day_with_nothing_landed_builds_empty_aggregates_and_a_summary_row(
    tmp_path: Path,
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    manifest = load_manifest()
    empty_day = {**PARTITION, "date": DAY - dt.timedelta(days=1)}
    counts = build(manifest, lake, empty_day)
    assert counts == {name: int(name == "daily_summary") for name in manifest.order}
    summary = lake.scan("daily_summary", **empty_day).collect().row(0, named=True)
    assert summary["trades"] == 0 and summary["volume"] == 0 and summary["vwap"] is None

    # the next day's rows have the same types, so the Delta tables accept them
    lake.replace_partition("trades", trades(), PARTITION, schemas.MARKET_PARTITION_COLUMNS)
    assert build(manifest, lake, PARTITION)["bars_1m"] == 3


def test_select_builds_only_the_chosen_models_in_dependency_order(tmp_path: Path) -> None:
    store = MemoryStore({"trades": trades()})
    counts = build(load_manifest(), store, PARTITION, select=["bars_1h", "bars_1m"])
    assert list(counts) == ["bars_1m", "bars_1h"]
    assert set(store.tables) == {"trades", "bars_1m", "bars_1h"}
    with pytest.raises(KeyError, match="no model named 'bars_5m'"):
        build(load_manifest(), store, PARTITION, select=["bars_5m"])
