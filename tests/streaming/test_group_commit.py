"""The Delta sink's group commit, on a real lake on disk.

A first commit is held on an Event while flushes queue behind it; once it is released the
writer must land every queued flush in one commit per table, in order, then write the last
flush's checkpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl
import pytest
from support.waiting import wait_until

from marketlake.exchanges.feed import Quote, Trade
from marketlake.lake import Lake
from streaming import StreamStats
from streaming.buffers import Buffers, Taken
from streaming.sink import DeltaSink, spill
from streaming.state import StateStore

SYMBOL = "BTCUSDT"
START_US = 1_795_000_000_000_000  # 2026-11-18
ROWS_PER_FLUSH = 5


def flush(index: int) -> Taken:
    """Flush `index` (from 0): five trades and five quotes, ids following the last flush."""
    buffers = Buffers()
    for trade_id in range(index * ROWS_PER_FLUSH, (index + 1) * ROWS_PER_FLUSH):
        ts = START_US + trade_id * 1_000
        buffers.trades.add(Trade(SYMBOL, trade_id, 100.0 + trade_id, 0.5, ts, False, ts + 50))
        buffers.quotes.add(Quote(SYMBOL, ts, ts + 50, trade_id, 99.0, 1.0, 101.0, 1.0))
    taken = buffers.take()
    last = (index + 1) * ROWS_PER_FLUSH - 1
    taken.checkpoint = {"symbols": {SYMBOL: {"last_trade_id": last, "open_gaps": []}}}
    return taken


@dataclass
class Gate:
    """What `Lake.append` does in a test: hold a commit, fail some, record every one."""

    #: Call number (from 1) -> (held, release): that call sets held, then waits for release.
    holds: dict[int, tuple[threading.Event, threading.Event]] = field(default_factory=dict)
    #: table -> how many more of its commits fail, from call `fail_from` on.
    failures: dict[str, int] = field(default_factory=dict)
    fail_from: int = 3
    calls: int = 0

    def hold(self, call: int) -> None:
        self.holds[call] = (threading.Event(), threading.Event())

    def wait_held(self, call: int) -> None:
        wait_until(self.holds[call][0].is_set, 60, f"commit {call} to be held")

    def release(self, call: int) -> None:
        self.holds[call][1].set()

    commits: list[tuple[str, list[int]]] = field(default_factory=list)
    #: The checkpoint's last trade id at each failed commit.
    checkpoint_at_failure: list[int | None] = field(default_factory=list)
    state: StateStore | None = None


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    real_append = Lake.append
    gate = Gate()

    def gated_append(self: Lake, table: str, frame: pl.DataFrame, partition_by: object) -> int:
        gate.calls += 1
        if gate.calls in gate.holds:
            held, release = gate.holds[gate.calls]
            held.set()
            release.wait(60)
        elif gate.calls >= gate.fail_from and gate.failures.get(table, 0) > 0:
            gate.failures[table] -= 1
            prior = gate.state.read() if gate.state is not None else None
            gate.checkpoint_at_failure.append(
                prior["symbols"][SYMBOL]["last_trade_id"] if prior else None
            )
            raise OSError(f"simulated: the {table} commit failed")
        version = real_append(self, table, frame, partition_by)  # type: ignore[arg-type]
        ids = "trade_id" if table == "ticks_trades" else "update_id"
        gate.commits.append((table, frame[ids].to_list()))
        return version

    monkeypatch.setattr(Lake, "append", gated_append)
    yield gate
    for _, release in gate.holds.values():  # never leave a writer thread hanging
        release.set()


def make_sink(lake: Lake, stats: StreamStats, **options: object) -> tuple[DeltaSink, StateStore]:
    state = StateStore(lake.uri, "binance")
    sink = DeltaSink(
        lake,
        "binance",
        stats,
        state,
        state_header={"version": 1, "exchange": "binance", "name": "binance"},
        retry_base_s=0.01,
        **options,  # type: ignore[arg-type]
    )
    sink.start()
    return sink, state


def queue_behind_a_held_commit(sink: DeltaSink, gate: Gate, flushes: int) -> None:
    """Submit flush 0, wait for its first commit to hang, queue the rest, release it."""
    gate.hold(1)
    sink.submit(flush(0))
    gate.wait_held(1)
    for index in range(1, flushes):
        sink.submit(flush(index))
    gate.release(1)


def commits_of(lake: Lake, table: str) -> int:
    return len(lake.delta_table(table).history())


def test_flushes_queued_behind_a_slow_commit_land_in_one_commit_per_table(
    tmp_path: Path, gate: Gate
) -> None:
    lake, stats = Lake(str(tmp_path)), StreamStats()
    sink, state = make_sink(lake, stats)
    queue_behind_a_held_commit(sink, gate, flushes=6)
    wait_until(lambda: stats.flushes == 6, 60, "six flushes to land")
    assert sink.close(10) == []

    all_ids = list(range(6 * ROWS_PER_FLUSH))
    group_ids = all_ids[ROWS_PER_FLUSH:]
    # Flush 0 alone, then flushes 1-5 together: per table, their rows in flush order.
    assert gate.commits == [
        ("ticks_trades", all_ids[:ROWS_PER_FLUSH]),
        ("ticks_quotes", all_ids[:ROWS_PER_FLUSH]),
        ("ticks_trades", group_ids),
        ("ticks_quotes", group_ids),
    ]
    assert commits_of(lake, "ticks_trades") == commits_of(lake, "ticks_quotes") == 2
    trades = lake.scan("ticks_trades").collect().sort("trade_id")
    assert trades["trade_id"].to_list() == all_ids
    assert trades["price"].to_list() == [100.0 + i for i in all_ids]
    assert lake.scan("ticks_quotes").collect().sort("update_id")["update_id"].to_list() == all_ids
    assert (stats.flushes, stats.commits, stats.flushes_grouped) == (6, 4, 5)
    assert stats.rows_landed == {"ticks_trades": 30, "ticks_quotes": 30}
    written = state.read()
    assert written is not None
    assert written["symbols"] == flush(5).checkpoint["symbols"]
    assert written["counts"]["flushes"] == 6 and written["counts"]["flushes_grouped"] == 5


def test_a_group_is_bounded_by_its_row_cap(tmp_path: Path, gate: Gate) -> None:
    lake, stats = Lake(str(tmp_path)), StreamStats()
    # Two flushes (20 rows) fit in a group, a third would not.
    sink, _ = make_sink(lake, stats, group_max_rows=4 * ROWS_PER_FLUSH)
    queue_behind_a_held_commit(sink, gate, flushes=5)
    wait_until(lambda: stats.flushes == 5, 60, "five flushes to land")
    assert sink.close(10) == []
    trade_commits = [ids for table, ids in gate.commits if table == "ticks_trades"]
    assert [len(ids) // ROWS_PER_FLUSH for ids in trade_commits] == [1, 2, 2]
    assert [i for ids in trade_commits for i in ids] == list(range(5 * ROWS_PER_FLUSH))


def test_a_sibling_table_failing_in_a_group_is_retried_without_recommitting_the_other(
    tmp_path: Path, gate: Gate
) -> None:
    lake, stats = Lake(str(tmp_path)), StreamStats()
    sink, state = make_sink(lake, stats)
    gate.state = state
    # Calls 1 and 2 are flush 0's; then the group's quotes commit fails twice.
    gate.failures = {"ticks_quotes": 2}
    queue_behind_a_held_commit(sink, gate, flushes=4)
    wait_until(lambda: stats.flushes == 4, 60, "four flushes to land")
    assert sink.close(10) == []

    group_ids = list(range(ROWS_PER_FLUSH, 4 * ROWS_PER_FLUSH))
    assert [c for c in gate.commits if c[0] == "ticks_trades"][1:] == [("ticks_trades", group_ids)]
    assert commits_of(lake, "ticks_trades") == commits_of(lake, "ticks_quotes") == 2
    for table, ids in (("ticks_trades", "trade_id"), ("ticks_quotes", "update_id")):
        landed = lake.scan(table).collect()[ids]
        assert landed.is_unique().all() and sorted(landed) == list(range(4 * ROWS_PER_FLUSH))
    assert stats.write_errors == 2 and stats.flushes_grouped == 3
    # While the group's quotes were failing, the checkpoint still said flush 0.
    assert gate.checkpoint_at_failure == [ROWS_PER_FLUSH - 1] * 2
    written = state.read()
    assert written is not None and written["symbols"] == flush(3).checkpoint["symbols"]


def test_a_group_still_committing_at_shutdown_is_spilled_as_one_maybe_landed_file(
    tmp_path: Path, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flushes 1-3 are grouped; their trades commit hangs past the deadline; flush 4 waits."""
    monkeypatch.setattr(DeltaSink, "CLOSE_GRACE_S", 0.2)
    lake, stats = Lake(str(tmp_path / "lake")), StreamStats()
    sink, state = make_sink(lake, stats)
    gate.hold(3)  # calls 1 and 2 are flush 0's; call 3 is the group's trades commit
    queue_behind_a_held_commit(sink, gate, flushes=4)
    gate.wait_held(3)
    sink.submit(flush(4))
    unwritten = sink.close(0.1)

    landed_flushes = stats.flushes
    assert landed_flushes == 1  # only flush 0: the checkpoint claims nothing else
    written = state.read()
    assert written is not None and written["symbols"] == flush(0).checkpoint["symbols"]
    spilled = spill(unwritten, tmp_path / "spill")
    [maybe_path] = spilled.maybe_landed
    maybe = pl.read_parquet(maybe_path)
    assert Path(maybe_path).name.startswith("ticks_trades-")
    # One file with exactly the hung commit's rows: flushes 1-3, in order.
    assert maybe["trade_id"].to_list() == list(range(ROWS_PER_FLUSH, 4 * ROWS_PER_FLUSH))
    spilled_trades = pl.concat(
        [pl.read_parquet(p) for p in spilled.paths if Path(p).name.startswith("ticks_trades")]
    )
    assert sorted(spilled_trades["trade_id"]) == list(range(ROWS_PER_FLUSH, 5 * ROWS_PER_FLUSH))
    spilled_quotes = pl.concat(
        [pl.read_parquet(p) for p in spilled.paths if Path(p).name.startswith("ticks_quotes")]
    )
    assert sorted(spilled_quotes["update_id"]) == list(range(ROWS_PER_FLUSH, 5 * ROWS_PER_FLUSH))
    readme = orjson.loads(next((tmp_path / "spill").glob("README-*.json")).read_bytes())
    assert readme["maybe_landed"] == [maybe_path]

    gate.release(3)  # the hung commit lands after all; the writer stops, touching nothing
    for writer in [t for t in threading.enumerate() if t.name == "delta-sink"]:
        writer.join(60)
    table = lake.scan("ticks_trades").collect()
    assert sorted(table["trade_id"]) == list(range(ROWS_PER_FLUSH)) + maybe["trade_id"].to_list()
    assert stats.flushes == landed_flushes
