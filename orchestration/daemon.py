"""Dagster's daemon, with the backfill daemon waking every few seconds instead of every 30.

`python -m orchestration.daemon run [dagster-daemon options]` is `dagster-daemon run`, and
`python -m orchestration.daemon dev [dagster dev options]` is `dagster dev` whose daemon is
this one: `marketlake ui`, the UI tests and the benchmarks start the UI through it.

Why: Dagster 1.13 sleeps 30 s between the backfill daemon's iterations, a module constant
(`dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS`) with no setting. A backfill
launched from the UI waits up to 30 s before its first run is created, and up to 30 s after
its last run ends before it is marked complete; for a backfill of a few instrument-days that
was most of its time (docs/partitioning.md). An iteration over a backfill of a few hundred
instrument-days costs milliseconds; one over thousands costs seconds of the daemon's CPU
(docs/partitioning.md measured 2.6 s planning 5,000), so the interval is a setting:
`MARKETLAKE_BACKFILL_INTERVAL_S` (default 5; Dagster's own is 30). The same constant is
the asset daemon's default interval; this project declares no automation conditions, so
nothing else changes. The production topology (Dockerfile, deploy/k8s) runs Dagster's own
daemon and keeps its 30 s.

Both are private names of Dagster's: the pin (`dagster<1.14`) holds them, and a version that
renames them stops the daemon here with a message saying so, instead of running it slow.

`run` also starts the warm process that forks the daemon's run workers
(`orchestration.warm_workers`; `MARKETLAKE_WARM_RUNS=0` leaves it out), which the local
instance's launcher uses (`orchestration.run_launcher`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: Seconds between the backfill daemon's iterations unless `MARKETLAKE_BACKFILL_INTERVAL_S` says.
BACKFILL_INTERVAL_S = 5.0


def backfill_interval() -> float:
    """`MARKETLAKE_BACKFILL_INTERVAL_S`, or `BACKFILL_INTERVAL_S`; a bad value stops the daemon."""
    text = os.environ.get("MARKETLAKE_BACKFILL_INTERVAL_S", "").strip()
    if not text:
        return BACKFILL_INTERVAL_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise SystemExit(
            f"MARKETLAKE_BACKFILL_INTERVAL_S={text!r}: give the seconds between the backfill "
            "daemon's iterations, a number above 0 and at most 3600"
        )
    return seconds


def shorten_backfill_interval(seconds: float) -> None:
    """Make this process's backfill daemon wake every `seconds` (read when its loop starts)."""
    import dagster._daemon.controller as controller

    if not hasattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS"):
        raise RuntimeError(
            "this Dagster has no dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS: "
            "orchestration/daemon.py must learn how it sets the backfill daemon's interval"
        )
    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = seconds  # type: ignore[attr-defined]


def dev_with_this_daemon() -> None:
    """Make `dagster dev`, in this process, start `orchestration.daemon run` as its daemon."""
    import dagster._cli.dev as dev

    start = getattr(dev, "open_ipc_subprocess", None)
    if start is None:
        raise RuntimeError(
            "this Dagster's `dagster dev` no longer starts its daemon with "
            "open_ipc_subprocess: orchestration/daemon.py must learn how it does"
        )

    def start_process(command: list[str], **options: object) -> object:
        if command[1:3] == ["-m", "dagster._daemon"]:
            command = [command[0], "-m", __spec__.name, *command[3:]]
        return start(command, **options)

    dev.open_ipc_subprocess = start_process


def main(argv: Sequence[str]) -> None:
    if argv[:1] == ["dev"]:
        from dagster._cli.dev import dev_command

        backfill_interval()  # a bad setting stops here, not in the daemon it starts
        dev_with_this_daemon()
        dev_command.main(list(argv[1:]), prog_name="dagster dev")
    else:
        from dagster._daemon.cli import cli

        shorten_backfill_interval(backfill_interval())
        warm = start_warm_workers() if argv[:1] == ["run"] else None
        try:
            cli.main(list(argv), prog_name="dagster-daemon", obj={})
        finally:
            if warm is not None:
                warm.terminate()


def start_warm_workers() -> subprocess.Popen | None:
    """The process that forks this instance's run workers warm (`orchestration.warm_workers`),
    unless `MARKETLAKE_WARM_RUNS=0` says runs start as Dagster starts them."""
    home = os.environ.get("DAGSTER_HOME")
    if not home or os.environ.get("MARKETLAKE_WARM_RUNS", "1").strip() == "0":
        return None
    from orchestration.warm_workers import address

    try:
        where = address(Path(home))
    except OSError as error:  # the daemon runs on; its runs start Dagster's way
        print(f"no warm run workers: {error}", file=sys.stderr)
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "orchestration.warm_workers", where], stdin=subprocess.DEVNULL
    )


if __name__ == "__main__":
    main(sys.argv[1:])
