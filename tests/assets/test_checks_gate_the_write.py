"""ERROR checks gate the commit: rows that fail one are never written over good ones.

An exchange can serve a day that verifies (its CHECKSUM matches) and still holds bad rows:
an empty CSV, duplicated ids, one id with two prices, another day's trades. Each is served
here by a loopback server after a good backfill of the same day; the day's rows, the Delta
version and the failing checks are then what a user would look at.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile

import dagster as dg
import polars as pl
import pytest
from support.scripted_server import ScriptedServer, files

import dbt_like_sql as dls
from assets.partition_key import PartitionKey
from assets.sql_models import run_model_partition
from assets.trade_transforms import with_lake_keys
from marketlake import schemas
from marketlake.instruments import Instrument
from marketlake.simulator import data
from marketlake.simulator.formats import csv_bytes
from orchestration.run_batches import root_cause

DAY = dt.date(2024, 3, 1)
KEY = f"{DAY}|binance:BTCUSDT"
JOB = "trades_history_job"
STAMP = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def archive_files(symbol: str, date: dt.date, csv: bytes) -> dict[str, bytes]:
    """The day's zip holding `csv`, and a CHECKSUM that matches it: a day that verifies."""
    name = f"{symbol}-trades-{date.isoformat()}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.csv", csv)
    body = buffer.getvalue()
    path = f"/data/spot/daily/trades/{symbol}/{name}.zip"
    checksum = f"{hashlib.sha256(body).hexdigest()}  {name}.zip\n".encode()
    return {path: body, f"{path}.CHECKSUM": checksum}


def bad_day(variant: str, config: data.SimConfig) -> bytes:
    day = data.day_trades("BTCUSDT", DAY, config)
    if variant == "empty":
        return b""
    if variant == "duplicated_ids":
        return csv_bytes(pl.concat([day, day.head(50)]))
    if variant == "one_id_two_prices":
        twin = day.slice(100, 1).with_columns(price=pl.col("price") * 1.01)
        return csv_bytes(pl.concat([day, twin]))
    if variant == "another_days_rows":
        return csv_bytes(data.day_trades("BTCUSDT", DAY + dt.timedelta(days=1), config))
    raise AssertionError(variant)


def evaluations(result: dg.ExecuteInProcessResult, asset: str) -> dict[tuple[str, str], bool]:
    return {
        (e.partition, e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == asset
    }


def failure(result: dg.ExecuteInProcessResult) -> str:
    return root_cause(result.get_step_failure_events()[0].step_failure_data.error)


@pytest.mark.parametrize(
    ("variant", "failing_check"),
    [
        ("empty", "day_has_trades"),
        ("duplicated_ids", "trade_ids_unique"),
        ("one_id_two_prices", "trade_ids_unique"),
        ("another_days_rows", "ts_inside_partition_day"),
    ],
)
def test_a_verified_archive_day_with_bad_rows_leaves_the_good_partition(
    world, variant, failing_check
):
    assert world.run(JOB, KEY).success
    before = world.rows("BTCUSDT", DAY)
    version = world.lake.version("trades_history")

    bad = archive_files("BTCUSDT", DAY, bad_day(variant, world.sim.config))
    with ScriptedServer(files(bad)) as server:
        result = world.run(JOB, KEY, archive_url=server.base_url)

    assert not result.success
    assert world.lake.version("trades_history") == version
    assert world.rows("BTCUSDT", DAY).equals(before)
    assert before.select("trade_id", "price").equals(
        world.truth("BTCUSDT", DAY).select("trade_id", "price")
    )
    checks = evaluations(result, "trades_history")
    assert checks[(KEY, failing_check)] is False
    assert result.get_asset_materialization_events() == []
    message = failure(result)
    assert KEY in message and failing_check in message and "not written" in message


def test_a_failed_check_reports_how_many_rows_failed_and_a_sample(world):
    assert world.run(JOB, KEY).success
    bad = archive_files("BTCUSDT", DAY, bad_day("duplicated_ids", world.sim.config))
    with ScriptedServer(files(bad)) as server:
        result = world.run(JOB, KEY, archive_url=server.base_url)
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "trade_ids_unique"
    ]
    assert evaluation.metadata["failing_rows"].value == 100  # 50 ids, each twice
    failures = evaluation.metadata["failures"].value
    sample = failures["ExpectColumnValuesToBeUnique(trade_id)"]["sample"]
    first_ids = world.truth("BTCUSDT", DAY)["trade_id"].head(50).to_list()
    assert sample and set(sample) <= set(first_ids)


def test_an_empty_day_is_never_written_even_where_nothing_was_stored(world):
    with ScriptedServer(files(archive_files("BTCUSDT", DAY, b""))) as server:
        result = world.run(JOB, KEY, archive_url=server.base_url)
    assert not result.success
    assert not world.lake.exists("trades_history")
    assert evaluations(result, "trades_history")[(KEY, "day_has_trades")] is False


def test_one_bad_day_in_a_batch_leaves_it_unwritten_and_writes_the_others(world):
    next_day = DAY + dt.timedelta(days=1)
    keys = [KEY, f"{next_day}|binance:BTCUSDT"]
    good = csv_bytes(data.day_trades("BTCUSDT", DAY, world.sim.config))
    served = {
        **archive_files("BTCUSDT", DAY, good),
        **archive_files("BTCUSDT", next_day, b""),
    }
    with ScriptedServer(files(served)) as server:
        result = world.run(JOB, *keys, archive_url=server.base_url)

    assert not result.success
    assert (
        world.rows("BTCUSDT", DAY)
        .select("trade_id")
        .equals(world.truth("BTCUSDT", DAY).select("trade_id"))
    )
    assert world.rows("BTCUSDT", next_day).is_empty()
    materialized = [
        e.step_materialization_data.materialization.partition
        for e in result.get_asset_materialization_events()
    ]
    assert materialized == [KEY]
    checks = evaluations(result, "trades_history")
    assert checks[(keys[1], "day_has_trades")] is False
    assert all(passed for (key, _), passed in checks.items() if key == KEY)
    message = failure(result)
    assert keys[1] in message and KEY not in message.replace(keys[1], "")
    instance = world.instance
    status = instance.get_status_by_partition(
        dg.AssetKey("trades_history"),
        keys,
        world.defs.resolve_assets_def("trades_history").partitions_def,
    )
    assert {k: s.value for k, s in status.items()} == {
        keys[0]: "MATERIALIZED",
        keys[1]: "FAILED",
    }


def live_trade(trade: pl.DataFrame) -> pl.DataFrame:
    rows = with_lake_keys(
        trade, exchange="binance", symbol="BTCUSDT", date=DAY, source="ws", ingested_at=STAMP
    )
    return schemas.conform(rows.with_columns(received_at=pl.lit(STAMP)), schemas.TICKS_TRADES)


def test_trades_from_another_day_in_the_live_ticks_leave_the_days_trades(world):
    assert world.run(JOB, KEY).success
    assert world.run("daily_job", KEY).success
    before = world.rows("BTCUSDT", DAY, table="trades")
    version = world.lake.version("trades")
    truth = world.truth("BTCUSDT", DAY)
    stray = truth.tail(1).with_columns(
        trade_id=pl.col("trade_id") + 1, ts=pl.col("ts") + dt.timedelta(days=1)
    )
    world.lake.append("ticks_trades", live_trade(stray), schemas.MARKET_PARTITION_COLUMNS)

    result = world.run("daily_job", KEY)

    assert not result.success
    assert world.lake.version("trades") == version
    assert world.rows("BTCUSDT", DAY, table="trades").equals(before)
    assert evaluations(result, "trades")[(KEY, "ts_inside_partition_day")] is False
    assert "ts_inside_partition_day" in failure(result)


def quotes(bid: float, at: dt.datetime) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "exchange": ["binance"],
            "symbol": ["BTCUSDT"],
            "date": [DAY],
            "ts": [at],
            "received_at": [at],
            "update_id": [int(at.timestamp())],
            "bid_price": [bid],
            "bid_qty": [1.0],
            "ask_price": [abs(bid) + 1.0],
            "ask_qty": [1.0],
        }
    )
    return schemas.conform(frame, schemas.QUOTES)


def test_a_quote_with_a_negative_price_leaves_the_days_quotes(world):
    noon = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
    world.lake.append("ticks_quotes", quotes(100.0, noon), schemas.MARKET_PARTITION_COLUMNS)
    assert world.run("daily_job", KEY).success
    before = world.lake.scan("quotes").collect()
    version = world.lake.version("quotes")

    later = noon + dt.timedelta(seconds=1)
    world.lake.append("ticks_quotes", quotes(-5.0, later), schemas.MARKET_PARTITION_COLUMNS)
    result = world.run("daily_job", KEY)

    assert not result.success
    assert world.lake.version("quotes") == version
    assert world.lake.scan("quotes").collect().equals(before)
    assert evaluations(result, "quotes")[(KEY, "quote_prices_positive")] is False


def test_a_model_whose_error_tests_fail_leaves_its_previous_rows(world):
    assert world.run(JOB, KEY).success
    assert world.run("daily_job", KEY).success
    version = world.lake.version("bars_1m")
    bars = world.lake.scan("bars_1m", symbol="BTCUSDT", date=DAY).collect()
    trades = world.rows("BTCUSDT", DAY, table="trades")
    broken = trades.with_columns(
        price=pl.when(pl.int_range(pl.len()) == 0).then(-1.0).otherwise(pl.col("price"))
    )
    key = PartitionKey(DAY, Instrument("binance", "BTCUSDT"))
    world.lake.replace_partition(
        "trades", broken, key.lake_partition(), schemas.MARKET_PARTITION_COLUMNS
    )

    result = run_model_partition(dls.load_manifest(), "bars_1m", key, world.lake)

    assert not result.written
    failed = [o.name for o in result.outcomes if not o.passed and o.severity == "ERROR"]
    assert failed
    assert world.lake.version("bars_1m") == version
    assert world.lake.scan("bars_1m", symbol="BTCUSDT", date=DAY).collect().equals(bars)
