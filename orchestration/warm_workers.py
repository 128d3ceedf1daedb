"""A warm process that forks the daemon's run workers, with Dagster, the project and Great
Expectations already imported.

Why: Dagster's own launcher has the code server spawn a fresh interpreter per run, which
imports Dagster and the project (~2-3 s) before the run's first step; the run then starts
Great Expectations in a process of its own, whose 4-5 s import the first checks wait for. A
month-long run hides that; a run of a few instrument-days was mostly that (a backfill of
6 symbols x 10 days through the daemon cost 2.9x its data work, docs/partitioning.md).
This process pays both imports once, when the daemon starts, and forks each run worker
from there: the child runs exactly what a container launcher runs (`dagster api
execute_run`), and forks its own GE process before anything else, from an interpreter that
has GE loaded already.

Fork is safe here because this process runs no Python thread: it imports, builds GE's
context, then serves one request at a time on a Unix socket (`serve`); `preload` checks
that nothing it imported started one, and serves nothing if something did. The native
threads its libraries start at import are idle and fork-aware: jemalloc's background purge
(Polars, deltalake; jemalloc locks itself across a fork), OpenBLAS's pool (numpy; it stops
and restarts around a fork) and Polars' spill-file cleaner. Polars' compute pool is not
started here (nothing computes), so a child starts its own on first use.

Edited project code is still what a run executes: each request first compares the
project's source files with what was imported, and if one changed the process replaces
itself (`exec`) with a fresh one before forking, as `dagster dev`'s reload does for the
code server.

`orchestration.run_launcher.WarmRunLauncher` is the client; `orchestration.daemon run`
starts this process beside Dagster's daemon. Linux and macOS (fork, Unix sockets).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

#: The folder holding the project's packages: modules under it are "project code".
PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: What a run worker imports, imported once here: the libraries, then the project.
PRELOAD = (
    "dagster",
    "dagster._cli",
    "dagster._cli.api",
    "polars",
    "deltalake",
    "orchestration.definitions",
)

#: A request: one line of JSON, {"run": <serialized ExecuteRunArgs>}; the answer: one line,
#: {"pid": <the run worker's pid>} or {"error": "..."}.
MAX_REQUEST_BYTES = 1 << 20


def address(home: Path) -> str:
    """The socket of the warm process serving the instance in `home`.

    Whoever can connect to it can have a run worker import and run code, so it sits in a
    folder only this user can enter (created so, checked if it exists). That folder is in
    the temporary one and the socket is named by a hash of `home`: a Unix socket's path is
    limited to ~100 bytes, which a `$DAGSTER_HOME` deep in a test's folder exceeds."""
    folder = Path(tempfile.gettempdir()) / f"marketlake-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    owned = folder.stat()
    if owned.st_uid != os.getuid() or owned.st_mode & 0o077:
        raise PermissionError(f"{folder} must belong to this user alone (mode 700)")
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
    return str(folder / f"runs-{digest}.sock")


def wait_until_serving(home: Path, timeout: float = 120) -> None:
    """Until a warm process serves `home` (its socket exists); TimeoutError after `timeout`."""
    where, deadline = Path(address(home)), time.monotonic() + timeout
    while not where.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no warm run-worker process at {where} within {timeout}s")
        time.sleep(0.2)


def start_run(where: str, serialized_args: str, *, timeout: float = 30.0) -> int:
    """Ask the warm process at `where` to fork a worker for one run; its pid.

    Raises OSError (ConnectionRefusedError, FileNotFoundError, ...) when no warm process
    answers there, and RuntimeError when it answered with an error."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(where)
        client.sendall(json.dumps({"run": serialized_args}).encode() + b"\n")
        answer = json.loads(_read_line(client) or b'{"error": "closed without answering"}')
    if "pid" not in answer:
        raise RuntimeError(f"the warm run-worker process at {where}: {answer.get('error')}")
    return int(answer["pid"])


def _read_line(connection: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < MAX_REQUEST_BYTES:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def preload() -> dict[str, int]:
    """Import what a run worker imports and load GE; the project's source files as imported
    (path -> mtime), to tell when they change."""
    import importlib

    from marketlake import quality

    for name in PRELOAD:
        importlib.import_module(name)
    quality.load_great_expectations()
    running = threading.enumerate()
    if len(running) > 1:
        raise RuntimeError(
            f"preloading started Python threads ({', '.join(t.name for t in running)}): "
            "forking run workers from here is unsafe"
        )
    return dict(_project_sources())


def _project_sources() -> Iterator[tuple[str, int]]:
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(PROJECT_ROOT) and ".venv" not in path:
            try:
                yield path, os.stat(path).st_mtime_ns
            except OSError:
                yield path, -1


def _changed(sources: dict[str, int]) -> bool:
    for path, mtime in sources.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


def serve(where: str) -> None:
    """Preload, then fork a run worker for each request at `where`, until killed."""
    sources = preload()
    if os.path.exists(where):
        os.unlink(where)  # a socket left by a process that was killed
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(where)
    server.listen(16)
    server.settimeout(1.0)
    print(f"warm run workers: ready at {where}", file=sys.stderr, flush=True)
    try:
        while True:
            _reap()
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(10)
                try:
                    request = json.loads(_read_line(connection))
                    if _changed(sources):
                        connection.sendall(b'{"error": "reloading: the project changed"}\n')
                        _reexec(where)
                    pid = _fork_worker(request["run"], server, connection)
                    connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                except (OSError, ValueError, KeyError) as error:
                    _answer_error(connection, error)
    finally:
        server.close()
        if os.path.exists(where):
            os.unlink(where)


def _answer_error(connection: socket.socket, error: Exception) -> None:
    with contextlib.suppress(OSError):
        connection.sendall(json.dumps({"error": f"{type(error).__name__}: {error}"}).encode())


def _reap() -> None:
    """Collect the run workers that ended (they are this process's children)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _reexec(where: str) -> None:
    os.unlink(where)  # until the new process serves, a launcher finds nobody and falls back
    os.execv(sys.executable, [sys.executable, "-m", __spec__.name, where])


def _fork_worker(serialized_args: str, *sockets: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid
    # The run worker. Nothing below may return into `serve`.
    code = 1
    try:
        for each in sockets:
            each.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as a fresh interpreter
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from marketlake import quality

        quality.fork_validator()  # before Dagster starts a thread, GE is ready already
        sys.argv = ["dagster", "api", "execute_run", serialized_args]
        from dagster._cli import main

        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    return 0  # unreachable


def _die_with_parent() -> None:
    """Linux: end when the daemon that started this process ends (its run workers, children
    of this one, go on: a run is never killed by the daemon stopping)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


if __name__ == "__main__":
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides; Ctrl-C reaches it too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave no socket behind
    serve(sys.argv[1])
