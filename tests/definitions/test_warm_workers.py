"""`orchestration.warm_workers` and its launcher: runs forked from a warm process, over its
real socket, against a real local instance (what `python -m orchestration.daemon` serves)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import LaunchRunContext
from support import warm_jobs

from orchestration.instance import prepared_home
from orchestration.run_launcher import PID_TAG, WarmRunLauncher
from orchestration.warm_workers import address, start_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A local instance, and the warm process serving it started as the daemon starts it
    (the tests' folder on its path, where the jobs above live)."""
    home = prepared_home(tmp_path_factory.mktemp("warm") / "home")
    where = Path(address(home))
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT / "tests")}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.warm_workers", str(where)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(where.exists, "the warm process to serve", alive=process)
        yield home, process
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not where.exists(), "the warm process left its socket behind"


def wait_for(
    done: Callable[[], object],
    what: str,
    timeout: float = 120,
    alive: subprocess.Popen | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert alive is None or alive.poll() is None, f"the warm process exited waiting for {what}"
        assert time.monotonic() < deadline, f"waited {timeout}s for {what}"
        time.sleep(0.1)


def launch(instance: dg.DagsterInstance, job: dg.JobDefinition) -> dg.DagsterRun:
    """A run of `job`, launched as the daemon launches one it dequeues."""
    origin = dg.reconstructable(job).get_python_origin()
    run = instance.create_run_for_job(job_def=job, job_code_origin=origin)
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


def logged(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [event.user_message for event in instance.all_logs(run_id)]


def finished(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    wait_for(lambda: instance.get_run_by_id(run_id).is_finished, f"run {run_id} to finish")
    return instance.get_run_by_id(run_id)


def test_a_run_is_forked_warm_and_succeeds(warm):
    home, process = warm
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_launcher, WarmRunLauncher)
        run = finished(instance, launch(instance, warm_jobs.ends_at_once).run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        worker = int(run.tags[PID_TAG])
        assert f"ran in pid {worker}" in logged(instance, run.run_id)
        assert worker not in (os.getpid(), process.pid)


def test_terminate_cancels_a_warm_run(warm):
    """What the UI's Terminate button does: the run stops and is shown Canceled."""
    home, _ = warm
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_id = launch(instance, warm_jobs.waits_to_be_terminated).run_id
        wait_for(
            lambda: (
                "waiting to be terminated" in [e.user_message for e in instance.all_logs(run_id)]
            ),
            "the run to start waiting",
        )
    with dg.DagsterInstance.from_config(str(home)) as webserver:  # another process's view
        assert webserver.run_launcher.terminate(run_id)
        assert finished(webserver, run_id).status == dg.DagsterRunStatus.CANCELED


def test_edited_project_code_is_reloaded_before_the_next_run(warm):
    """A run never executes project code older than what is on disk: after an edit the
    warm process answers that it is reloading (the launcher then starts the run Dagster's
    way) and serves again once it has imported the new code."""
    home, process = warm
    source = ROOT / "orchestration" / "warm_workers.py"
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            with pytest.raises(RuntimeError, match="reloading"):
                start_run(address(home), "{}")
            wait_for(lambda: Path(address(home)).exists(), "the reloaded process", alive=process)
            run = finished(instance, launch(instance, warm_jobs.ends_at_once).run_id)
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert PID_TAG in run.tags
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
