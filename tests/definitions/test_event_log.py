"""The local instance's event log holds its SQLite files open and still wakes the UI.

The UI learns of a running run's new events from the file system. Dagster's own storage
closed its file after every event, so the `.db` changed each time; this one keeps the file
open, so the events land in the `-wal` file, which it watches too. A second storage on the
same folder stands in for the webserver: another SQLite connection, as another process has.
"""

import threading
from pathlib import Path

import dagster as dg
from dagster._core.events.log import EventLogEntry

from orchestration.event_log import LocalSqliteEventLogStorage
from orchestration.instance import LOCAL_INSTANCE_YAML, local_instance, prepared_home, usable_cores
from orchestration.run_launcher import WarmRunLauncher


def log_line(run_id: str, message: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level="INFO",
        user_message=message,
        run_id=run_id,
        timestamp=0.0,
    )


def test_a_watcher_sees_each_event_while_the_writer_keeps_its_file_open(tmp_path: Path) -> None:
    writer = LocalSqliteEventLogStorage(str(tmp_path))
    webserver = LocalSqliteEventLogStorage(str(tmp_path))
    run_id = "0f0e0d0c-0b0a-0908-0706-050403020100"
    writer.store_event(log_line(run_id, "run created"))  # the run's file exists
    seen: list[str] = []
    arrived = threading.Condition()

    def on_event(entry: EventLogEntry, _cursor: str) -> None:
        with arrived:
            seen.append(entry.user_message)
            arrived.notify_all()

    webserver.watch(run_id, None, on_event)
    try:
        for i in range(3):
            writer.store_event(log_line(run_id, f"day {i} written"))
            with arrived:  # each event arrives before the next is written
                assert arrived.wait_for(lambda i=i: f"day {i} written" in seen, timeout=30)
        assert Path(tmp_path, f"{run_id}.db-wal").exists()  # the writer's file stayed open
    finally:
        webserver.end_watch(run_id, on_event)
        webserver.dispose()
        writer.dispose()


def test_new_and_older_local_instances_get_this_event_log_the_warm_launcher_and_queue(
    tmp_path: Path,
) -> None:
    with local_instance(tmp_path / "new") as instance:
        assert isinstance(instance.event_log_storage, LocalSqliteEventLogStorage)
        assert isinstance(instance.run_launcher, WarmRunLauncher)

    older = tmp_path / "older"
    older.mkdir()
    (older / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML + "  max_concurrent_runs: 3\n")
    prepared_home(older)
    with dg.DagsterInstance.from_config(str(older)) as instance:
        assert isinstance(instance.event_log_storage, LocalSqliteEventLogStorage)
        assert isinstance(instance.run_launcher, WarmRunLauncher)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 3, "the user's own setting stays"
        assert queue.tag_concurrency_limits == [
            {"key": "dagster/backfill", "limit": usable_cores()}
        ]
    prepared_home(older)  # again: nothing more is added
    assert (older / "dagster.yaml").read_text().count("tag_concurrency_limits") == 1

    production = tmp_path / "production"
    production.mkdir()
    (production / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    prepared_home(production)
    assert (production / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
