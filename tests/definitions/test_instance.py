"""The local Dagster instance the CLI creates on first use, under concurrency."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
from support.frames import trades
from support.racing import KEYS, next_read_is, one_date_of

from orchestration.instance import prepared_home, usable_cores

OPEN_AND_LIST = (
    "import sys; from pathlib import Path; from orchestration.instance import local_instance;"
    "print(len(local_instance(Path(sys.argv[1])).get_runs()))"
)


def test_first_time_processes_started_together_share_one_new_instance(tmp_path: Path) -> None:
    # Two backfills started at once on a fresh $DAGSTER_HOME used to race on the SQLite
    # migrations ("more than one head") and one of them died with a traceback.
    home = tmp_path / "home"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_LIST, str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [(p.wait(timeout=240), *p.communicate()) for p in processes]
    for code, out, err in outcomes:
        assert (code, out.strip()) == (0, "0"), err[-2000:]


def test_a_local_backfill_starts_as_many_runs_at_once_as_there_are_cores(tmp_path: Path) -> None:
    """Dagster's queue alone would start ten of a UI backfill's runs at once; on a laptop
    they would only share its cores and hold ten batches of days in memory."""
    home = prepared_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
    assert queue.tag_concurrency_limits == [{"key": "dagster/backfill", "limit": usable_cores()}]
    assert queue.max_concurrent_runs == 10, "the streams and scheduled runs keep Dagster's limit"


def test_a_retried_commit_shows_in_the_runs_own_log(tmp_path: Path, monkeypatch) -> None:
    """A run whose commit was refused and tried again wrote its files twice; the run's log
    in the UI (the event log, not only the step's stderr) says why."""
    lake, symbols, partitions = one_date_of(26, tmp_path / "lake")
    stale = lake.delta_table("t")
    lake.replace_partition("t", trades(symbols[25], range(9)), partitions[25], KEYS)

    @dg.asset
    def wide_replacement() -> None:
        next_read_is(stale, monkeypatch)  # read before the 26th symbol's commit
        rows = pl.concat([trades(s, range(3)) for s in symbols[:25]])
        lake.replace_partitions("t", rows, partitions[:25], KEYS)

    home = prepared_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize([wide_replacement], instance=instance)
        logged = [
            (entry.level, entry.user_message)
            for entry in instance.all_logs(result.run_id)
            if entry.dagster_event is None
        ]
    assert (
        logging.WARNING,
        "commit to t refused for a concurrent commit to other partitions;"
        " trying again (attempt 2 of 8)",
    ) in logged
