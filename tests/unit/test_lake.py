import datetime as dt
import logging

import polars as pl
import pytest
from deltalake.exceptions import CommitFailedError
from support.frames import DAY, partition, trades
from support.racing import (
    SYMBOLS,
    next_read_is,
    one_date_of,
    race_first_writes,
    race_wide_replacements,
)

from marketlake import schemas
from marketlake.lake import Lake, _retrying_safe_conflicts, partition_predicate

KEYS = schemas.MARKET_PARTITION_COLUMNS


def read(lake: Lake) -> pl.DataFrame:
    return lake.scan("trades_history").collect().sort("symbol", "date", "trade_id")


def test_replacing_a_partition_twice_leaves_the_same_rows(tmp_path):
    lake = Lake(str(tmp_path))
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(10)), partition("BTCUSDT"), KEYS
    )
    first = read(lake)
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(10)), partition("BTCUSDT"), KEYS
    )
    assert read(lake).equals(first)


def test_replacing_a_partition_leaves_other_partitions_untouched(tmp_path):
    lake = Lake(str(tmp_path))
    lake.replace_partition(
        "trades_history", trades("ETHUSDT", range(5)), partition("ETHUSDT"), KEYS
    )
    next_day = DAY + dt.timedelta(days=1)
    lake.replace_partition(
        "trades_history",
        trades("BTCUSDT", range(5), next_day),
        partition("BTCUSDT", next_day),
        KEYS,
    )
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(3)), partition("BTCUSDT"), KEYS
    )
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(7, 9), price=5.0), partition("BTCUSDT"), KEYS
    )
    counts = dict(
        read(lake)
        .group_by("symbol", "date")
        .len()
        .select(pl.concat_str("symbol", pl.col("date").cast(pl.String), separator=" "), "len")
        .iter_rows()
    )
    assert counts == {"ETHUSDT 2024-03-01": 5, "BTCUSDT 2024-03-02": 5, "BTCUSDT 2024-03-01": 2}


def test_a_write_with_rows_outside_its_partition_fails_and_changes_nothing(tmp_path):
    lake = Lake(str(tmp_path))
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(4)), partition("BTCUSDT"), KEYS
    )
    before, version = read(lake), lake.version("trades_history")
    mixed = pl.concat([trades("BTCUSDT", range(100, 104)), trades("ETHUSDT", range(1))])
    with pytest.raises(Exception, match="failed validation"):
        lake.replace_partition("trades_history", mixed, partition("BTCUSDT"), KEYS)
    assert lake.version("trades_history") == version
    assert read(lake).equals(before)


def test_a_write_that_fails_halfway_leaves_the_previous_rows(tmp_path):
    lake = Lake(str(tmp_path))
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(4)), partition("BTCUSDT"), KEYS
    )
    before = read(lake)
    broken = trades("BTCUSDT", range(10)).with_columns(
        price=pl.when(pl.col("trade_id") < 9).then(pl.lit("1.0")).otherwise(pl.lit("oops"))
    )
    with pytest.raises(Exception):  # noqa: B017 - any schema error; what matters is the table
        lake.replace_partition("trades_history", broken, partition("BTCUSDT"), KEYS)
    assert read(lake).equals(before)


def test_an_empty_frame_empties_just_that_partition(tmp_path):
    lake = Lake(str(tmp_path))
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(4)), partition("BTCUSDT"), KEYS
    )
    lake.replace_partition(
        "trades_history", trades("ETHUSDT", range(4)), partition("ETHUSDT"), KEYS
    )
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(0)), partition("BTCUSDT"), KEYS
    )
    assert read(lake)["symbol"].unique().to_list() == ["ETHUSDT"]


def test_scans_are_pruned_to_the_partition_asked_for(tmp_path):
    lake = Lake(str(tmp_path))
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(4)), partition("BTCUSDT"), KEYS
    )
    lake.replace_partition(
        "trades_history", trades("ETHUSDT", range(2)), partition("ETHUSDT"), KEYS
    )
    plan = lake.scan("trades_history", symbol="ETHUSDT").explain()
    assert "symbol=ETHUSDT" in plan and "symbol=BTCUSDT" not in plan
    assert lake.scan("trades_history", symbol="ETHUSDT").collect().height == 2


def test_a_table_never_written_reads_as_empty_with_its_schema(tmp_path):
    empty = Lake(str(tmp_path)).scan("ticks_trades", schemas.TICKS_TRADES).collect()
    assert empty.is_empty() and empty.schema == schemas.TICKS_TRADES


def test_partition_values_are_quoted_as_sql_literals():
    assert partition_predicate({"symbol": "O'X", "date": DAY}) == (
        "symbol = 'O''X' AND date = '2024-03-01'"
    )


def test_read_partition_returns_what_a_pruned_scan_returns_and_sees_new_commits(tmp_path):
    lake = Lake(str(tmp_path))
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(4)), partition("BTCUSDT"), KEYS
    )
    lake.replace_partition(
        "trades_history", trades("ETHUSDT", range(2)), partition("ETHUSDT"), KEYS
    )
    fast = lake.read_partition("trades_history", **partition("BTCUSDT")).collect()
    assert fast.sort("trade_id").equals(
        lake.scan("trades_history", **partition("BTCUSDT")).collect().sort("trade_id")
    )
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(9)), partition("BTCUSDT"), KEYS
    )
    assert lake.read_partition("trades_history", **partition("BTCUSDT")).collect().height == 9
    assert lake.read_partition("trades_history", **partition("XRPUSDT")).collect().is_empty()


def test_writers_that_all_find_no_table_all_land(tmp_path):
    """A run queue's first runs start together on a new lake: several of them create each
    table, and the later creations refuse the commits begun before them ('Metadata
    changed', 'Protocol changed'); those commits are tried again, so none is lost."""
    lake = Lake(str(tmp_path))
    for round_ in range(5):  # interleavings differ; without the retry, 4 rounds in 5 failed
        table = f"trades_history_{round_}"
        race_first_writes(lake, table, commits_each=3)
        per_symbol = (
            lake.scan(table).group_by("symbol").agg(pl.len(), pl.col("trade_id").max()).collect()
        )
        expected = {s: (10 * (i + 1), 200 + 10 * (i + 1) - 1) for i, s in enumerate(SYMBOLS)}
        assert {s: (n, top) for s, n, top in per_symbol.iter_rows()} == expected


def test_a_replacement_overtaken_by_one_of_the_same_partition_lands_last(
    tmp_path, monkeypatch, caplog
):
    """Two runs backfill the same instrument-day at once: the one that read the table before
    the other's commit is tried again and lands last (the later commit wins, as a later
    materialization would), instead of failing a partition whose rows are right."""
    lake = Lake(str(tmp_path))
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(3)), partition("BTCUSDT"), KEYS
    )
    stale = lake.delta_table("trades_history")
    lake.replace_partition(
        "trades_history", trades("BTCUSDT", range(10, 15)), partition("BTCUSDT"), KEYS
    )
    next_read_is(stale, monkeypatch)

    with caplog.at_level(logging.WARNING, logger="marketlake.lake"):
        lake.replace_partition(
            "trades_history", trades("BTCUSDT", range(20, 22)), partition("BTCUSDT"), KEYS
        )
    monkeypatch.undo()
    assert read(lake)["trade_id"].to_list() == [20, 21]
    assert [r.getMessage() for r in caplog.records] == [
        "commit to trades_history refused for another writer's replacement of the same"
        " partitions (the later commit wins); trying again (attempt 2 of 8)"
    ]


def test_a_refusal_other_than_a_concurrent_commit_is_raised_at_once():
    """Only a table's creation and replacements overtaken by another commit are tried
    again; a refusal the retry knows nothing of is raised on its first try."""
    tries = []

    def commit() -> None:
        tries.append(1)
        raise CommitFailedError("Commit failed: a transaction it conflicts with in some new way")

    with pytest.raises(CommitFailedError):
        _retrying_safe_conflicts(commit, "trades_history")
    assert len(tries) == 1


def test_wide_replacements_of_one_date_by_two_writers_all_land(tmp_path):
    """deltalake cannot tell a replacement of more than 20 symbols of one date apart from a
    concurrent commit of other symbols of that date, and refuses it; such a refusal, when
    the replaced partitions' files did not change, is tried again."""
    lake = Lake(str(tmp_path))
    race_wide_replacements(lake, "trades_history", commits_each=5)
    rows = lake.scan("trades_history").group_by("symbol").len().collect()
    assert rows.height == 45
    assert rows["len"].to_list() == [6] * 45, "every symbol holds its last replacement"


def test_a_stale_wide_replacement_beside_a_concurrent_commit_lands_and_says_so(
    tmp_path, monkeypatch, caplog
):
    """The retry, made to happen: a replacement of 25 symbols of one date read the table
    before another writer replaced a 26th symbol of that date. It lands on its second try,
    the other writer's rows stay, and the run's log says why its files were written twice."""
    lake, symbols, partitions = one_date_of(26, tmp_path)
    stale = lake.delta_table("t")
    lake.replace_partition("t", trades(symbols[25], range(9)), partitions[25], KEYS)
    next_read_is(stale, monkeypatch)

    with caplog.at_level(logging.WARNING, logger="marketlake.lake"):
        lake.replace_partitions(
            "t", pl.concat([trades(s, range(3)) for s in symbols[:25]]), partitions[:25], KEYS
        )
    monkeypatch.undo()
    counts = dict(lake.scan("t").group_by("symbol").len().collect().iter_rows())
    assert counts == {**dict.fromkeys(symbols[:25], 3), symbols[25]: 9}
    assert [r.getMessage() for r in caplog.records] == [
        "commit to t refused for a concurrent commit to other partitions;"
        " trying again (attempt 2 of 8)"
    ]


def test_a_wide_replacement_whose_partition_changed_meanwhile_lands_last(tmp_path, monkeypatch):
    """A writer replaced one of the 25 partitions meanwhile: this commit is tried again too,
    and its rows, committed last, are the ones every partition holds."""
    lake, symbols, partitions = one_date_of(25, tmp_path)
    stale = lake.delta_table("t")
    lake.replace_partition("t", trades(symbols[0], range(9)), partitions[0], KEYS)
    next_read_is(stale, monkeypatch)

    lake.replace_partitions(
        "t", pl.concat([trades(s, range(3)) for s in symbols]), partitions, KEYS
    )
    monkeypatch.undo()
    counts = dict(lake.scan("t").group_by("symbol").len().collect().iter_rows())
    assert counts == dict.fromkeys(symbols, 3)
