"""`Lake.read_partitions` and `Lake.partition_values`: the index the API reads through."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from support.frames import DAY, partition, trades

from marketlake import schemas
from marketlake.lake import Lake

KEYS = schemas.MARKET_PARTITION_COLUMNS
NEXT = DAY + dt.timedelta(days=1)


@pytest.fixture
def lake(tmp_path) -> Lake:
    lake = Lake(str(tmp_path), {})
    lake.replace_partition("trades", trades("BTCUSDT", range(3)), partition("BTCUSDT"), KEYS)
    lake.replace_partition("trades", trades("ETHUSDT", range(2)), partition("ETHUSDT"), KEYS)
    lake.replace_partition(
        "trades", trades("ETHUSDT", range(5, 9), NEXT), partition("ETHUSDT", NEXT), KEYS
    )
    return lake


def test_partitions_come_back_in_the_order_asked_and_missing_ones_add_nothing(lake):
    wanted = [partition("ETHUSDT", NEXT), partition("XRPUSDT"), partition("BTCUSDT")]
    got = lake.read_partitions("trades", wanted).collect()
    assert got.schema == schemas.TRADES
    assert got.select("symbol", "date").unique(maintain_order=True).rows() == [
        ("ETHUSDT", NEXT),
        ("BTCUSDT", DAY),
    ]
    assert got.height == 4 + 3
    assert lake.read_partitions("trades", [partition("XRPUSDT")]).collect().is_empty()


def test_sort_by_orders_rows_inside_each_partition(lake):
    shuffled = trades("BTCUSDT", range(10)).sample(fraction=1.0, shuffle=True, seed=5)
    lake.replace_partition("trades", shuffled, partition("BTCUSDT"), KEYS)
    wanted = [partition("BTCUSDT"), partition("ETHUSDT")]
    got = lake.read_partitions("trades", wanted, sort_by="trade_id").collect()
    assert got["trade_id"].to_list() == [*range(10), 0, 1]


def test_partition_values_lists_what_the_table_holds_at_its_latest_version(lake):
    assert lake.partition_values("trades", ["exchange", "symbol"]) == {
        ("binance", "BTCUSDT"),
        ("binance", "ETHUSDT"),
    }
    assert lake.partition_values("trades", ["date"]) == {(DAY.isoformat(),), (NEXT.isoformat(),)}
    lake.replace_partition("trades", trades("SOLUSDT", range(1)), partition("SOLUSDT"), KEYS)
    assert ("binance", "SOLUSDT") in lake.partition_values("trades", ["exchange", "symbol"])
    with pytest.raises(ValueError, match="not partition columns: price"):
        lake.partition_values("trades", ["price"])


def test_a_partition_emptied_by_a_write_reads_as_no_rows(lake):
    empty = pl.DataFrame(schema=schemas.TRADES)
    lake.replace_partition("trades", empty, partition("BTCUSDT"), KEYS)
    assert lake.read_partitions("trades", [partition("BTCUSDT")]).collect().is_empty()
