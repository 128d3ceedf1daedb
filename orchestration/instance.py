"""The local Dagster instance the CLI shares with `marketlake ui`: created on first use."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestration.settings import dagster_home

if TYPE_CHECKING:
    import dagster as dg

#: The local instance: SQLite under $DAGSTER_HOME (deploy/dagster.yaml is the production one).
LOCAL_INSTANCE_YAML = """# Local Dagster instance for marketlake (SQLite storage in this folder).
telemetry:
  enabled: false
# The daemon starts queued runs every second, not every 5 s (Dagster's default): a backfill
# of many short runs otherwise waits in the queue about as long as its runs take.
run_queue:
  dequeue_interval_seconds: 1
"""

#: The local instance's event log (orchestration/event_log.py), where Dagster keeps it.
EVENT_LOG_YAML = """# Dagster's SQLite event log, its files held open (orchestration/event_log.py).
event_log_storage:
  module: orchestration.event_log
  class: LocalSqliteEventLogStorage
  config:
    base_dir: {base_dir}
"""  # base_dir: a JSON string, which YAML reads as it is (a path may hold ": " or " #")


#: The local instance's run launcher (orchestration/run_launcher.py): warm run workers.
RUN_LAUNCHER_YAML = """# Runs forked warm by the daemon (orchestration/warm_workers.py).
run_launcher:
  module: orchestration.run_launcher
  class: WarmRunLauncher
"""


#: marketlake's warnings in each run's event log, not only in the step's stderr. The level
#: stays the root logger's (warnings): every record captured is an event stored.
PYTHON_LOGS_YAML = """# marketlake's warnings in each run's log (a retried commit, say).
python_logs:
  managed_python_loggers:
    - marketlake
"""

#: How many of a backfill's runs the local queue starts at once; the rest wait their turn.
BACKFILL_RUNS_YAML = """  # A backfill's runs at once: this machine's cores (Dagster's queue
  # alone would start 10 run processes). Streams and scheduled runs are not held back.
  tag_concurrency_limits:
    - key: dagster/backfill
      limit: {limit}
"""


def local_instance_yaml(home: Path, backfill_runs: int | None = None) -> str:
    """The dagster.yaml of a local instance in `home`, starting at most `backfill_runs` of
    a backfill's runs at once (default: the usable cores; more only share them, in memory
    too: each run holds its batch of days)."""
    limit = backfill_runs if backfill_runs is not None else usable_cores()
    return (
        LOCAL_INSTANCE_YAML
        + BACKFILL_RUNS_YAML.format(limit=limit)
        + _event_log_yaml(home)
        + RUN_LAUNCHER_YAML
        + PYTHON_LOGS_YAML
    )


def usable_cores() -> int:
    """The cores this process may run on (its affinity; a container's CPU set)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _event_log_yaml(home: Path) -> str:
    return EVENT_LOG_YAML.format(base_dir=json.dumps(str(event_log_dir(home))))


def event_log_dir(home: Path) -> Path:
    """Where Dagster keeps a SQLite instance's event logs (its default, kept)."""
    return home.resolve() / "history" / "runs"


def prepared_home(home: Path | None = None) -> Path:
    """`home` (default: `$DAGSTER_HOME` or `./.dagster_home`), with a dagster.yaml in it.

    An existing dagster.yaml (the production one from deploy/, say) is left as it is, except
    that one this module wrote before the event log, the run launcher, the backfill's runs
    at once or the captured warnings were configured gets the missing block added
    (`orchestration.event_log`, `orchestration.run_launcher`, `BACKFILL_RUNS_YAML`,
    `PYTHON_LOGS_YAML`).
    """
    home = home or dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(local_instance_yaml(home))
        return home
    text = config.read_text()
    if not text.startswith(LOCAL_INSTANCE_YAML.splitlines()[0]):
        return home
    updated = text + "".join(
        block
        for key, block in (
            ("event_log_storage", _event_log_yaml(home)),
            ("run_launcher", RUN_LAUNCHER_YAML),
            ("python_logs", PYTHON_LOGS_YAML),
        )
        if f"\n{key}:" not in text
    )
    if "tag_concurrency_limits:" not in updated and updated.startswith(LOCAL_INSTANCE_YAML):
        backfill_runs = BACKFILL_RUNS_YAML.format(limit=usable_cores())
        updated = LOCAL_INSTANCE_YAML + backfill_runs + updated.removeprefix(LOCAL_INSTANCE_YAML)
    if updated != text:
        config.write_text(updated)
    return home


def tune_sqlite() -> None:
    """Write-ahead logging for the local instance's SQLite files, in this process.

    Dagster opens a new SQLite connection for every event it stores (a run of 30
    instrument-days of the daily job stores ~6,000) and in SQLite's default rollback-journal
    mode each commit creates, syncs and deletes a journal file: on this machine that made
    Dagster's bookkeeping 60% of a build (`benchmarks/fleet.py`). In WAL mode a commit is an
    append, readers (the UI) never block the writer, and with `synchronous=NORMAL` the
    database stays consistent through a crash or power loss, which may only forget the last
    commits - SQLite's recommended setting for WAL. The mode is stored in each database
    file, so every process opening it (webserver, daemon) gets WAL; `synchronous` is per
    connection, hence the listener. The listener also keeps each file open once
    (`_keep_open`), which takes the log's checkpoint off every event: together they cut the
    bookkeeping of a 10-day build by about a third again. (The event log's own files are
    held open by its engines, `orchestration.event_log`; the keepers still serve the run
    and schedule storages.) PostgreSQL (the production instance) is untouched.
    """
    global _tuned
    if _tuned:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _wal(connection: Any, _record: Any) -> None:
        if not type(connection).__module__.startswith("sqlite3"):
            return
        cursor = connection.cursor()
        try:
            path = cursor.execute("PRAGMA database_list").fetchone()[2]
            if path and path not in _keepers:
                if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    cursor.execute("PRAGMA journal_mode=WAL")
                _keep_open(path)
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    _tuned = True


_tuned = False

#: One idle connection per SQLite file this process writes, most recent last (see _keep_open).
_keepers: OrderedDict[str, sqlite3.Connection] = OrderedDict()
_KEEPERS_MAX = 16
_keepers_lock = threading.Lock()


def _keep_open(path: str) -> None:
    """Hold `path` open so that Dagster closing its connection never closes the last one.

    When the last connection to a WAL database closes, SQLite checkpoints the log into the
    database and deletes it: two syncs and an unlink per stored event, since Dagster opens
    and closes a connection for each. An idle connection holds no lock, so keeping one open
    changes nothing for other processes; the log is then checkpointed every 1,000 pages as
    usual. Bounded, so a long-lived process reading many runs' files holds few descriptors.
    """
    with _keepers_lock:
        if path not in _keepers:
            _open_keeper(path)


def _open_keeper(path: str) -> None:
    keeper = sqlite3.connect(path, timeout=0, check_same_thread=False)
    try:
        keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()  # attaches the WAL
    except sqlite3.OperationalError:  # busy: another connection is writing; next time
        keeper.close()
        return
    _keepers[path] = keeper
    while len(_keepers) > _KEEPERS_MAX:
        _keepers.popitem(last=False)[1].close()


def local_instance(home: Path | None = None) -> dg.DagsterInstance:
    """The instance in `prepared_home(home)`, the one the UI started from there reads.

    Dagster is imported here, not at the top: `marketlake ui` prepares the home and hands
    it to `dagster dev` without importing Dagster itself (seconds saved on every start).
    """
    import dagster as dg

    tune_sqlite()
    home = prepared_home(home)
    ready = home / ".marketlake-instance-ready"
    if ready.exists():
        return dg.DagsterInstance.from_config(str(home))
    # Two first-time processes on one fresh home (two backfills started at once) would both
    # create the SQLite storages and race on their migrations ("more than one head"): the
    # first creates them under a lock, the others wait for it and then open what it made.
    with open(home / ".marketlake-instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.from_config(str(home))
        if not ready.exists():
            instance.get_runs(limit=1)  # run storage
            instance.get_asset_keys()  # event log storage
            instance.all_instigator_state()  # schedule storage
            ready.touch()
    return instance
