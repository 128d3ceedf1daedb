"""The lake on `s3://`, against a real S3-compatible server (SeaweedFS) on loopback.

Every test gets its own prefix in one bucket (see conftest.py); storage options come from
`orchestration.settings.s3_storage_options`, exactly as a deployment gets them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import polars as pl
import pytest
from botocore.exceptions import ClientError
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError
from support.frames import DAY, partition, trades
from support.racing import race_first_writes

from marketlake import schemas
from marketlake.lake import Lake
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.definitions import build_definitions
from orchestration.settings import Settings, s3_storage_options

KEYS = schemas.MARKET_PARTITION_COLUMNS
TABLE = "trades_history"


def read(lake: Lake, **where) -> pl.DataFrame:
    return lake.scan(TABLE, **where).collect().sort("symbol", "date", "trade_id")


def keys_under(s3_server, uri: str) -> list[str]:
    prefix = uri.removeprefix(f"s3://{s3_server.bucket}/").rstrip("/") + "/"
    pages = s3_server.client().get_paginator("list_objects_v2")
    return [
        item["Key"]
        for page in pages.paginate(Bucket=s3_server.bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]


@pytest.fixture
def lake(s3_server, s3_lake_uri) -> Lake:
    return Lake(s3_lake_uri, s3_storage_options(s3_server.env))


# --- the store under Delta -------------------------------------------------------------------


def test_the_storage_options_make_commits_conditional_puts(s3_server):
    options = s3_storage_options(s3_server.env)
    assert options["AWS_CONDITIONAL_PUT"] == "etag"
    assert options["AWS_ENDPOINT_URL"] == s3_server.endpoint
    assert options["AWS_ALLOW_HTTP"] == "true"
    assert "AWS_S3_ALLOW_UNSAFE_RENAME" not in options


def test_the_store_creates_an_object_only_once_even_when_writers_race(s3_server):
    """What Delta commits rest on: `If-None-Match: *` is refused for an existing key (412),
    atomically, so of writers racing to create one commit file exactly one wins."""
    client = s3_server.client()
    bucket, prefix = s3_server.bucket, f"contract-{uuid.uuid4().hex[:8]}"
    client.put_object(Bucket=bucket, Key=f"{prefix}/once.json", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=bucket, Key=f"{prefix}/once.json", Body=b"2", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.get_object(Bucket=bucket, Key=f"{prefix}/once.json")["Body"].read() == b"1"

    writers = 4  # SeaweedFS makes a contended loser wait ~1 s: keep the race small
    for round_ in range(3):
        key = f"{prefix}/race-{round_}.json"
        start = threading.Barrier(writers)

        def create(i: int, key: str = key, start: threading.Barrier = start) -> str:
            start.wait()
            try:
                client.put_object(Bucket=bucket, Key=key, Body=str(i).encode(), IfNoneMatch="*")
                return "created"
            except ClientError as error:
                return error.response["Error"]["Code"]

        with ThreadPoolExecutor(writers) as pool:
            outcomes = Counter(pool.map(create, range(writers)))
        assert outcomes == {"created": 1, "PreconditionFailed": writers - 1}


# --- the Lake's guarantees on S3 -------------------------------------------------------------


def test_exists_is_false_until_the_first_write(lake, s3_server):
    assert not lake.exists(TABLE)
    assert lake.scan(TABLE, schemas.TRADES).collect().is_empty()
    lake.replace_partition(TABLE, trades("BTCUSDT", range(3)), partition("BTCUSDT"), KEYS)
    assert lake.exists(TABLE)
    assert not lake.exists("trades")
    objects = keys_under(s3_server, lake.table_uri(TABLE))
    assert any("/_delta_log/00000000000000000000.json" in key for key in objects)
    assert any("/symbol=BTCUSDT/date=2024-03-01/" in key for key in objects)


def test_replacing_a_partition_twice_leaves_the_same_rows(lake):
    first_version = lake.replace_partition(
        TABLE, trades("BTCUSDT", range(10)), partition("BTCUSDT"), KEYS
    )
    first = read(lake)
    second_version = lake.replace_partition(
        TABLE, trades("BTCUSDT", range(10)), partition("BTCUSDT"), KEYS
    )
    assert read(lake).equals(first)
    assert first.height == 10
    assert (first_version, second_version) == (0, 1)


def test_replacing_a_partition_leaves_other_partitions_untouched(lake):
    lake.replace_partition(TABLE, trades("ETHUSDT", range(5)), partition("ETHUSDT"), KEYS)
    lake.replace_partition(TABLE, trades("BTCUSDT", range(10)), partition("BTCUSDT"), KEYS)
    next_day = DAY + dt.timedelta(days=1)
    lake.replace_partition(
        TABLE, trades("BTCUSDT", range(7), next_day), partition("BTCUSDT", next_day), KEYS
    )
    eth_before = read(lake, symbol="ETHUSDT")
    lake.replace_partition(
        TABLE, trades("BTCUSDT", range(100, 103), price=1.0), partition("BTCUSDT"), KEYS
    )
    assert read(lake, symbol="ETHUSDT").equals(eth_before)
    assert read(lake, symbol="BTCUSDT", date=next_day).height == 7
    replaced = read(lake, symbol="BTCUSDT", date=DAY)
    assert replaced["trade_id"].to_list() == [100, 101, 102]
    assert replaced["price"].unique().to_list() == [1.0]


def test_a_failing_write_leaves_the_previous_rows(lake):
    lake.replace_partition(TABLE, trades("BTCUSDT", range(10)), partition("BTCUSDT"), KEYS)
    lake.replace_partition(TABLE, trades("ETHUSDT", range(4)), partition("ETHUSDT"), KEYS)
    before, version = read(lake), lake.version(TABLE)
    # Rows outside the partition being replaced: refused, nothing committed.
    stray = pl.concat([trades("BTCUSDT", range(20)), trades("ETHUSDT", range(99, 100))])
    with pytest.raises(Exception, match="failed validation"):
        lake.replace_partition(TABLE, stray, partition("BTCUSDT"), KEYS)
    # A frame of the wrong shape: refused before any commit.
    broken = trades("BTCUSDT", range(5)).with_columns(pl.col("trade_id").cast(pl.String) + "x")
    with pytest.raises(Exception):  # noqa: B017 - deltalake's schema error types vary by version
        lake.replace_partition(TABLE, broken, partition("BTCUSDT"), KEYS)
    assert lake.version(TABLE) == version
    assert read(lake).equals(before)


def test_append_adds_one_commit_per_batch(lake):
    assert lake.append(TABLE, trades("BTCUSDT", range(0, 5)), KEYS) == 0
    assert lake.append(TABLE, trades("BTCUSDT", range(5, 8)), KEYS) == 1
    assert lake.append(TABLE, trades("ETHUSDT", range(3)), KEYS) == 2
    assert read(lake, symbol="BTCUSDT")["trade_id"].to_list() == list(range(8))
    assert read(lake).height == 11


def test_a_partition_scan_reads_only_that_partitions_files(lake, s3_server):
    lake.replace_partition(TABLE, trades("BTCUSDT", range(6)), partition("BTCUSDT"), KEYS)
    lake.replace_partition(TABLE, trades("ETHUSDT", range(4)), partition("ETHUSDT"), KEYS)
    btc_files = lake.partition_files(TABLE, partition("BTCUSDT"))
    assert btc_files and all("/symbol=BTCUSDT/date=2024-03-01/" in f for f in btc_files)
    # Delete ETHUSDT's data files behind Delta's back: only an unpruned scan can notice.
    client = s3_server.client()
    for uri in lake.partition_files(TABLE, partition("ETHUSDT")):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        client.delete_object(Bucket=bucket, Key=key)
    pruned = read(lake, exchange="binance", symbol="BTCUSDT", date=DAY)
    assert pruned["trade_id"].to_list() == list(range(6))
    with pytest.raises(Exception):  # noqa: B017 - the missing object surfaces as an I/O error
        read(lake)


# --- concurrent writers ------------------------------------------------------------------------


def test_two_writers_from_the_same_snapshot_both_commit(lake):
    """The deterministic race: both load version 0, the second's put of version 1 is
    refused by the store and it commits at version 2 instead of overwriting."""
    lake.append(TABLE, trades("BTCUSDT", range(0, 1)), KEYS)
    first, second = lake.delta_table(TABLE), lake.delta_table(TABLE)
    assert first.version() == second.version() == 0
    write_deltalake(first, trades("BTCUSDT", range(1, 2)).to_arrow(), mode="append")
    write_deltalake(second, trades("BTCUSDT", range(2, 3)).to_arrow(), mode="append")
    assert (first.version(), second.version()) == (1, 2)
    assert read(lake)["trade_id"].to_list() == [0, 1, 2]
    assert [entry["version"] for entry in lake.delta_table(TABLE).history()] == [2, 1, 0]


def test_concurrent_appends_to_one_table_all_land(lake):
    writers, batches = 4, 5
    lake.append(TABLE, trades("BTCUSDT", range(0, 1)), KEYS)
    start = threading.Barrier(writers)

    def write(writer: int) -> list[int]:
        start.wait()
        versions = []
        for batch in range(batches):
            trade_id = 1000 * (writer + 1) + batch
            batch_frame = trades("BTCUSDT", range(trade_id, trade_id + 1))
            versions.append(lake.append(TABLE, batch_frame, KEYS))
        return versions

    with ThreadPoolExecutor(writers) as pool:
        versions = [v for per_writer in pool.map(write, range(writers)) for v in per_writer]
    commits = writers * batches
    assert sorted(versions) == list(range(1, commits + 1)), "each append got its own commit"
    assert lake.version(TABLE) == commits
    assert read(lake).height == commits + 1
    assert read(lake)["trade_id"].n_unique() == commits + 1


def test_concurrent_replacements_of_different_partitions_both_land(lake):
    """A parallel backfill: every partition's run replaces its own partition at once."""
    lake.replace_partition(TABLE, trades("BTCUSDT", range(3)), partition("BTCUSDT"), KEYS)
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    start = threading.Barrier(len(symbols))

    def replace(i: int) -> int:
        start.wait()
        frame = trades(symbols[i], range(10 * (i + 1)))
        return lake.replace_partition(TABLE, frame, partition(symbols[i]), KEYS)

    with ThreadPoolExecutor(len(symbols)) as pool:
        versions = list(pool.map(replace, range(len(symbols))))
    assert sorted(versions) == [1, 2, 3, 4]
    counts = read(lake).group_by("symbol").len().sort("symbol")
    assert dict(counts.iter_rows()) == {"BTCUSDT": 10, "ETHUSDT": 20, "SOLUSDT": 30, "XRPUSDT": 40}


def test_writers_that_all_find_no_table_all_land(lake):
    """A run queue's first runs on a new S3 lake: concurrent creations of the table refuse
    commits begun before them, and those are tried again (S3's conditional put decides
    each version, as the local file system's link does)."""
    race_first_writes(lake, TABLE, commits_each=2)
    counts = read(lake).group_by("symbol").len().sort("symbol")
    assert dict(counts.iter_rows()) == {"BTCUSDT": 10, "ETHUSDT": 20, "SOLUSDT": 30, "XRPUSDT": 40}


def test_concurrent_replacements_of_one_partition_never_mix(lake):
    """Two writers replacing the same partition from the same snapshot: the loser's commit
    is refused (it would have to re-read the rows the winner added); no rows are mixed."""
    lake.replace_partition(TABLE, trades("BTCUSDT", range(3)), partition("BTCUSDT"), KEYS)
    first, second = lake.delta_table(TABLE), lake.delta_table(TABLE)
    predicate = "exchange = 'binance' AND symbol = 'BTCUSDT' AND date = '2024-03-01'"
    winner, loser = trades("BTCUSDT", range(10, 15)), trades("BTCUSDT", range(20, 22))
    write_deltalake(first, winner.to_arrow(), mode="overwrite", predicate=predicate)
    with pytest.raises(CommitFailedError):
        write_deltalake(second, loser.to_arrow(), mode="overwrite", predicate=predicate)
    assert read(lake)["trade_id"].to_list() == list(range(10, 15))


# --- the trades_history asset through the real Definitions -----------------------------------


@pytest.fixture(scope="module")
def sim():
    with Simulator(SimConfig(trades_per_day=2_000, symbols=("BTCUSDT", "ETHUSDT"))) as simulator:
        yield simulator


def test_trades_history_lands_the_exchanges_trades_in_s3(s3_server, s3_lake_uri, sim):
    settings = Settings.from_env(
        {
            **s3_server.env,
            "MARKETLAKE_LAKE": s3_lake_uri,
            "MARKETLAKE_BINANCE_ARCHIVE_URL": sim.base_url,
            "MARKETLAKE_BINANCE_REST_URL": sim.base_url,
            "MARKETLAKE_SYMBOLS": "BTCUSDT,ETHUSDT",
        }
    )
    assert settings.lake == s3_lake_uri
    assert settings.lake_storage_options == s3_storage_options(s3_server.env)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("instruments", ["binance:BTCUSDT", "binance:ETHUSDT"])
    job = defs.resolve_job_def("trades_history_job")

    keys = [("BTCUSDT", DAY), ("ETHUSDT", DAY), ("BTCUSDT", DAY)]  # the last one: a re-run
    for symbol, date in keys:
        result = job.execute_in_process(
            partition_key=f"{date}|binance:{symbol}", instance=instance, raise_on_error=False
        )
        assert result.success
        assert all(e.passed for e in result.get_asset_check_evaluations())

    uri = f"{s3_lake_uri}/trades_history"
    options = dict(settings.lake_storage_options)
    landed = pl.scan_delta(uri, storage_options=options)
    raw = ["trade_id", "price", "qty", "quote_qty", "ts", "is_buyer_maker"]
    for symbol in ("BTCUSDT", "ETHUSDT"):
        rows = landed.filter(pl.col("symbol") == symbol, pl.col("date") == DAY).collect()
        truth = sim.ground_truth(symbol, DAY).sort("trade_id")
        assert rows.select(raw).sort("trade_id").equals(truth)
        assert rows["exchange"].unique().to_list() == ["binance"]
    assert DeltaTable(uri, storage_options=options).version() == len(keys) - 1
    assert any(key.endswith(".parquet") for key in keys_under(s3_server, uri))


def test_the_server_refuses_unknown_credentials(s3_server, lake):
    lake.append(TABLE, trades("BTCUSDT", range(1)), KEYS)
    wrong = Lake(lake.uri, {**lake.storage_options, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    with pytest.raises(Exception, match=r"(?i)signature|403|forbidden|denied"):
        wrong.version(TABLE)


def test_settings_read_an_s3_lake_from_the_environment(s3_server):
    settings = Settings.from_env({**s3_server.env, "MARKETLAKE_LAKE": "s3://bucket/lake"})
    assert dataclasses.asdict(settings)["lake_storage_options"] == {
        "AWS_REGION": s3_server.region,
        "AWS_CONDITIONAL_PUT": "etag",
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ALLOW_HTTP": "true",
    }
