"""Great Expectations in a process of its own, started before the process that needs it is.

Importing GE costs 4-5 s of CPU in Python (scipy, pandas, its own expectation registry).
Imported in a thread, it holds the interpreter lock against everything the process does
meanwhile (importing Dagster, building the run), so a backfill's first partition waited for
both one after the other. In a process of its own it runs on another core: a command that
starts it first (`marketlake backfill`, `marketlake build`) finds it ready by the time the
first instrument-day is fetched, and the parent never imports GE at all.

The parent sends each validation a frame (Arrow IPC: only the columns the expectations
read) and the expectations; the child returns each expectation's success and the few
result fields `quality.run_checks` reports. One validation at a time, in order.

The child is out of the terminal's reach (its own process group) and ignores Ctrl-C: the
parent decides what happens on an interrupt (it checks and commits the days it had
fetched), and the child ends when the parent closes its end of the pipe, whichever way the
parent ends (even killed).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from marketlake.quality import Expectation

#: The fields of a GE result that `run_checks` reads; the rest is never sent back.
RESULT_FIELDS = ("unexpected_count", "partial_unexpected_list", "observed_value")


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation's verdict, in plain values that cross a pipe and go into Dagster
    metadata as they are (the GE process makes numpy scalars and timestamps plain)."""

    success: bool
    result: dict[str, Any]


class ValidationProcessDied(RuntimeError):
    """The child stopped (killed, out of memory) before answering a validation."""


class ValidationProcess:
    """The GE child: `validate` sends one frame and its expectations and waits for results."""

    def __init__(self, *, fork: bool = False) -> None:
        """A fresh interpreter that imports GE; or, with `fork`, a fork of this process,
        which must have GE loaded and no thread but its main one (a warm run worker,
        `orchestration.warm_workers`): ready at once."""
        request_read, request_write = os.pipe()
        result_read, result_write = os.pipe()
        if fork:
            self._child: subprocess.Popen | _Forked = _Forked.serve(request_read, result_write)
        else:
            self._child = subprocess.Popen(
                [sys.executable, "-m", __name__, str(request_read), str(result_write)],
                pass_fds=(request_read, result_write),
                stdin=subprocess.DEVNULL,
                process_group=0,  # a terminal's Ctrl-C reaches the parent only, even mid-start
            )
        os.close(request_read)
        os.close(result_write)
        self._requests = Connection(request_write, readable=False)
        self._results = Connection(result_read, writable=False)
        self._lock = threading.Lock()

    def validate(
        self, frame: pl.DataFrame, expectations: Sequence[Expectation]
    ) -> dict[tuple, ExpectationResult]:
        """Each distinct expectation's result, keyed by `quality._key`; GE errors re-raised."""
        with self._lock:
            try:
                self._requests.send_bytes(pickle.dumps((_ipc(frame), list(expectations))))
                answered, value = pickle.loads(self._results.recv_bytes())
            except (EOFError, OSError) as error:
                raise ValidationProcessDied(
                    f"the Great Expectations process (pid {self._child.pid}) stopped "
                    f"(exit code {self._child.poll()}) before answering a validation"
                ) from error
        if not answered:
            raise value
        return value

    def stop(self) -> None:
        """End the child now, as its parent exits: it holds nothing to save, and a
        graceful end would spend a second of the command unloading GE and pandas."""
        self._child.kill()
        self.close()

    def close(self) -> None:
        """End the child (it exits when its request pipe closes) and reap it."""
        self._requests.close()
        self._results.close()
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()


class _Forked:
    """The forked child, with the part of `subprocess.Popen` that `ValidationProcess` uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._status: int | None = None

    @classmethod
    def serve(cls, request_read: int, result_write: int) -> _Forked:
        pid = os.fork()
        if pid:
            return cls(pid)
        try:  # the child: serve until the parent closes its end, never return
            os.setpgid(0, 0)
            _die_with_parent()
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            # Hold nothing of the parent's: its end of the pipes above all, or the child
            # would never read the end of its requests when the parent closes them.
            low, high = sorted((request_read, result_write))
            os.closerange(3, low)
            os.closerange(low + 1, high)
            os.closerange(high + 1, os.sysconf("SC_OPEN_MAX"))
            _serve(
                Connection(request_read, writable=False), Connection(result_write, readable=False)
            )
        finally:
            os._exit(0)

    def poll(self) -> int | None:
        if self._status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status = os.waitstatus_to_exitcode(status)
        return self._status

    def kill(self) -> None:
        if self._status is None:
            os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.01)
        return self._status  # type: ignore[return-value]


def _ipc(frame: pl.DataFrame) -> bytes:
    return frame.write_ipc(None, compression="uncompressed").getvalue()


def _serve(requests: Connection, results: Connection) -> None:
    from marketlake import quality

    quality.load_great_expectations()  # before the first request: that is the point
    while True:
        try:
            payload = requests.recv_bytes()
        except EOFError:
            return
        try:
            buffer, expectations = pickle.loads(payload)
            found = quality.validate_here(pl.read_ipc(buffer), expectations)
            answer = (True, {key: _plain_result(result) for key, result in found.items()})
        except Exception as error:  # sent back, raised in the parent
            answer = (False, _picklable(error))
        results.send_bytes(pickle.dumps(answer))


def _plain_result(result: Any) -> ExpectationResult:
    fields = result.result or {}
    return ExpectationResult(
        bool(result.success),
        {
            "unexpected_count": fields.get("unexpected_count"),
            "partial_unexpected_list": [
                _plain(v) for v in fields.get("partial_unexpected_list") or []
            ],
            "observed_value": _plain(fields.get("observed_value")),
        },
    )


def _plain(value: Any) -> Any:
    """JSON-friendly values for metadata (numpy scalars and timestamps become plain)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _picklable(error: Exception) -> Exception:
    try:
        pickle.dumps(error)
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def _die_with_parent() -> None:
    """Linux: be killed the moment the parent ends, rather than finish importing GE (4-5 s
    of CPU) for a command that has already exited (a refused argument, say)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends the child
        return
    if os.getppid() == 1:  # the parent ended before the line above
        os._exit(0)


if __name__ == "__main__":
    from marketlake import quality_process  # results pickle under the module's real name

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quality_process._serve(
        Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    )
