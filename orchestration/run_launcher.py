"""The local instance's run launcher: runs start in a warm process when one serves the
instance (`orchestration.warm_workers`), and as Dagster's own launcher starts them otherwise.

Configured by the local dagster.yaml (`orchestration.instance`); the production instance
(deploy/) keeps Dagster's launchers. A run started warm is the same `dagster api
execute_run` a container launcher runs, forked from a process that has imported Dagster, the
project and Great Expectations: it reaches its first step in a fraction of a second rather
than ~3 s, and its first checks do not wait 4-5 s for GE (docs/partitioning.md).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from dagster import DefaultRunLauncher
from dagster._core.launcher import LaunchRunContext
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import serialize_value

from orchestration import warm_workers

#: The tag holding a warm run worker's pid, which `terminate` signals.
PID_TAG = "marketlake/run_worker_pid"


class WarmRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher`, except that a run goes to the instance's warm process if one
    answers (`python -m orchestration.daemon` starts it) and runs this interpreter."""

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None or origin.repository_origin.executable_path != sys.executable:
            super().launch_run(context)  # another interpreter's code: Dagster's way
            return
        args = ExecuteRunArgs(
            job_origin=origin, run_id=run.run_id, instance_ref=self._instance.get_ref()
        )
        try:
            pid = warm_workers.start_run(
                warm_workers.address(Path(self._instance.root_directory)),
                serialize_value(args),
            )
        except (OSError, RuntimeError):  # no warm process, or it is reloading
            super().launch_run(context)
            return
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(pid)})
        self._run_ids.add(run.run_id)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished or PID_TAG not in run.tags:
            return super().terminate(run_id)
        self._instance.report_run_canceling(run)
        try:  # the worker's Ctrl-C: Dagster stops the step and marks the run canceled
            os.kill(int(run.tags[PID_TAG]), signal.SIGINT)
        except ProcessLookupError:
            return False
        return True
