"""Two jobs the warm run-worker tests launch (tests/definitions/test_warm_workers.py): one
that ends at once, one that waits until it is terminated. A module of their own, which the
warm process imports by name as it would the project's definitions."""

import os
import time

import dagster as dg


@dg.op
def says_where_it_ran(context: dg.OpExecutionContext) -> None:
    context.log.info(f"ran in pid {os.getpid()}")


@dg.job(executor_def=dg.in_process_executor)  # the step in the run worker itself
def ends_at_once() -> None:
    says_where_it_ran()


@dg.op
def waits(context: dg.OpExecutionContext) -> None:
    context.log.info("waiting to be terminated")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.1)


@dg.job(executor_def=dg.in_process_executor)  # the step in the run worker itself
def waits_to_be_terminated() -> None:
    waits()
