"""Child servers that are stopped as a whole and die with the process that started them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Runs a command with PR_SET_PDEATHSIG, so the kernel kills it if its starter dies without
#: stopping it (SIGKILL, OOM, a hung CI job cancelled). Done in a tiny exec wrapper rather
#: than `preexec_fn`, which is unsafe in a process with threads (Dagster starts some).
DIE_WITH_PARENT = """
import ctypes, os, signal, sys
parent = int(sys.argv[1])
if sys.platform == "linux":
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the prctl took effect
        sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none is handed out twice)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def spawn(
    command: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    """`command` in its own process group (stopped with `stop_group`), output to `log`.

    The first process of the group dies with this one; its children (a code server's run
    workers) are in its group, which `stop_group` ends.
    """
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", DIE_WITH_PARENT, str(os.getpid()), *command],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def group_members(group: int) -> list[int]:
    """The live (not zombie) processes of process group `group` (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")"
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == group and state != "Z":
            members.append(int(entry.name))
    return members


def stop_group(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM `process`'s group, SIGKILL what is left after `grace_s`, then reap.

    The leader is reaped only after the group is gone, so the group id can never have been
    reused by someone else's processes when it is signalled.
    """
    group = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and group_members(group):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait(timeout=30)


def processes_with_env(name: str, value: str) -> list[int]:
    """Pids of the live processes whose environment holds `name=value` (Linux /proc); an
    exited one not yet reaped (a zombie) is not running, so not among them.

    How a rehearsal proves it left nothing running: every process it starts carries its
    own DAGSTER_HOME.
    """
    wanted = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if wanted in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found
