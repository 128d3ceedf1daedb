"""Runs the CLI left STARTED when its process was killed (kill -9, a lost terminal).

An in-process run has no launcher and no run monitoring to notice that its process died:
Dagster would show it STARTED forever. Each CLI run carries its host, process id and the
process's start time; the next CLI start on that host marks those whose process is gone as
failed. A run from another host is left to that host.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

HOST_TAG = "marketlake/host"
PID_TAG = "marketlake/pid"
PROCESS_START_TAG = "marketlake/process_start"

#: The states in which a run still needs its process.
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def process_tags() -> dict[str, str]:
    """The tags that let a later CLI start tell whether this process is still running."""
    pid = os.getpid()
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid),
        PROCESS_START_TAG: _start_time(pid) or "",
    }


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Mark this host's unfinished CLI runs whose process is gone as failed; return them."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=UNFINISHED,
            tags={"marketlake/launched_by": "cli", HOST_TAG: socket.gethostname()},
        )
    )
    orphaned = [run for run in runs if not _process_alive(run.tags)]
    for run in orphaned:
        instance.report_run_failed(
            run,
            message=(
                f"marketlake: the process that ran this (pid {run.tags.get(PID_TAG)}) is gone "
                "(killed?); marked failed by the next CLI start. Nothing half-written stays "
                "visible: Delta commits are atomic; `marketlake vacuum` clears orphan files."
            ),
        )
    return orphaned


def _process_alive(tags: dict[str, str]) -> bool:
    try:
        pid = int(tags.get(PID_TAG, ""))
    except ValueError:
        return True  # not ours to judge (a run from before these tags)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    started = tags.get(PROCESS_START_TAG)
    # A reused pid belongs to a process that started at another time.
    return not started or _start_time(pid) in (None, started)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]
