"""The local instance's event log: Dagster's SQLite event log, holding its databases open.

Dagster's `SqliteEventLogStorage` builds a new SQLAlchemy engine for every connection it
opens, and opens several per stored event (the run's database, then the cross-run index
for a materialization or a check result). Each new engine compiles its statements afresh
(SQLAlchemy's statement cache lives in the engine) and opens and closes the file: a
`marketlake build` of six 1M-trade days stored 424 events at ~12 ms each, 5.0 s of a 21 s
command (cProfile); 2.1 s with this storage.
This storage keeps one engine per database (the run's and the index, the most recently used
first, a few at most), so a statement is compiled once and the file stays open.

Dagster's event databases are in WAL mode (it sets the mode when it creates them), so a file
that stays open takes its commits in the `-wal` file, and the `.db` file changes only at a
checkpoint. The webserver learns that a running run logged something from the file
system: Dagster watches the `.db` file, which it could because it closed its last
connection after each event (closing checkpoints). This storage watches the `-wal` file
too (and looks again a moment after each change: see `_WalWatchdog`), so the UI shows a
run's events as they happen, whichever process writes them.

Configured by the local instance's dagster.yaml (`orchestration.instance`); the production
instance (PostgreSQL, deploy/dagster.yaml) pools its connections already.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorageWatchdog
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.engine import Connection, Engine
from watchdog.observers import Observer

#: How long after a change of a run's database the watcher looks at it once more.
LOOK_AGAIN_S = 0.25

#: Databases held open at once: the running run's and the index are the ones written to;
#: a webserver reading many runs' logs keeps only the most recent few open.
ENGINES_MAX = 8


class LocalSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with an engine per database kept between connections."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: Any, config_value: dict[str, Any]
    ) -> LocalSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextlib.contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def _engine(self, shard: str) -> Engine:
        """The engine of `shard`'s database (created, and the database with it, once)."""
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine  # the most recently used last
        while len(self._engines) > ENGINES_MAX:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def _close_all(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def watch(self, run_id: str, cursor: str | None, callback: Any) -> None:
        """Dagster's watch of a run's events, told of changes to the `-wal` file as well."""
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
        watchdog = _WalWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (
            watchdog,
            self._obs.schedule(watchdog, self._base_dir, recursive=True),
        )

    def wipe(self) -> None:
        self._close_all()  # the files are deleted: no engine may hold one
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._close_all()


class _WalWatchdog(SqliteEventLogStorageWatchdog):
    """Dagster's watchdog of one run's database, also woken by its write-ahead log.

    A commit appends its pages to the `-wal` file (file events) and then publishes itself in
    the shared-memory index (written through `mmap`: no file event). An event handled
    between the two finds nothing new, and the commit would wait unseen until the next
    write; so each event is followed by one more look a moment later.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._reading = threading.Lock()
        self._again: threading.Timer | None = None

    @property
    def patterns(self) -> list[str]:
        return [self._log_path, f"{self._log_path}-wal"]

    def on_modified(self, event: Any) -> None:
        self._process_log()
        if self._again is None or not self._again.is_alive():
            self._again = threading.Timer(LOOK_AGAIN_S, self._look_again)
            self._again.daemon = True
            self._again.start()

    def _look_again(self) -> None:
        if self._cb in self._event_log_storage._watchers.get(self._run_id, {}):  # still watched
            self._process_log()

    def _process_log(self) -> None:
        with self._reading:  # the watchdog's thread and the timer's: one reader at a time
            super()._process_log()
