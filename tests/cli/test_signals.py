"""Ctrl-C and SIGTERM on the long-running commands: real processes, real signals."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from deploy.loopback.processes import processes_with_env
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.instance import local_instance

ROOT = Path(__file__).resolve().parents[2]


def environment(sim: Simulator, home: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAKE_", "DAGSTER_"))},
        "MARKETLAKE_BINANCE_ARCHIVE_URL": sim.base_url,
        "MARKETLAKE_BINANCE_REST_URL": sim.base_url,
        "DAGSTER_HOME": str(home),
        "COLUMNS": "200",
    }


def wait_for(condition, process: subprocess.Popen, what: str, limit: float = 240) -> None:
    """Poll until `condition()`; a process that exits first, or a hang, fails the test."""
    deadline = time.monotonic() + limit
    while not condition():
        if process.poll() is not None:
            said = process.stderr.read()[-3000:] if process.stderr else ""
            raise AssertionError(f"exited ({process.returncode}) before {what}:\n{said}")
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.25)


def test_ctrl_c_stops_a_multi_day_backfill_at_once_and_says_what_finished(tmp_path):
    # the run logs its days' progress every 2 s: enough days to stop it midway (one run)
    days = 30
    with Simulator(SimConfig(trades_per_day=30_000, symbols=("BTCUSDT",))) as sim:
        lake, home = tmp_path / "lake", tmp_path / "home"
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestration.cli", "backfill", "BTCUSDT",
             "--start", "2024-03-01", "--end", f"2024-03-{days:02d}", "--lake", str(lake)],
            cwd=tmp_path, env=environment(sim, home),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=as_in_a_terminal,
        )  # fmt: skip
        # the days are one run; stop it once two of its days are fetched
        wait_for(lambda: len(checked(home)) >= 2, process, "two days of the run fetched")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stdout + stderr
    said = " ".join(stdout.split())
    finished = succeeded(home)
    # the days checked before Ctrl-C are committed and materialized, the others are not
    assert 2 <= len(finished) < days
    # what finished is named, what did not is listed, and the rest was never started
    assert f"interrupted: {len(finished)} of {days} partitions finished" in said
    assert all(key in said.split("not done")[0] for key in finished)
    assert f"2024-03-{days:02d}|binance:BTCUSDT" in said.split("not done")[1] or "more" in said
    landed = pl.read_delta(str(lake / "trades_history"))["date"].unique().to_list()
    assert len(landed) < days
    # no run is left STARTED in the instance the UI reads
    with dg.DagsterInstance.from_config(str(home)) as instance:
        statuses = {run.status for run in instance.get_runs()}
    assert not statuses & {dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING}


def as_in_a_terminal() -> None:
    """Ctrl-C's default action, as a command typed in a terminal has it, even when the suite
    itself runs where SIGINT is ignored (started in the background without job control)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def succeeded(home: Path) -> list[str]:
    """The instrument-days materialized, as the UI's instance records them."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        materialized = instance.get_materialized_partitions(dg.AssetKey("trades_history"))
        return sorted(str(key) for key in materialized)


def checked(home: Path) -> list[str]:
    """The days the running backfill has logged as checked (its progress, run by run)."""
    if not running(home):
        return []
    with local_instance(home) as instance:
        return [
            line
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
            for line in entry.user_message.splitlines()
            if " fetched in " in line
        ]


def running(home: Path) -> bool:
    if not (home / "history" / "runs.db").exists():
        return False
    # Through the CLI's own opener: it waits while the CLI is still creating the storages,
    # where a bare `DagsterInstance.from_config` would race it on their migrations.
    with local_instance(home) as instance:
        return bool(
            instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        )


def serving_processes(home: Path) -> list[int]:
    """Live processes started for this DAGSTER_HOME (the UI's webserver, daemon, servers)."""
    return processes_with_env("DAGSTER_HOME", str(home))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair() -> int:
    """A port free together with the next one (the simulator listens on both). Ports from
    `free_port()` alone are even (Linux binds port 0 to even ports), and the odd one above
    may be an outgoing connection's on a busy machine: `marketlake ui` then exits 1."""
    import socket

    while True:
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


def answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stopping_marketlake_ui_stops_the_webserver_and_daemon_too(tmp_path, signo):
    home = tmp_path / "home"
    port, sim_port = free_port(), free_port_pair()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAKE_", "DAGSTER_"))},
        "DAGSTER_HOME": str(home),
        "MARKETLAKE_LAKE": str(tmp_path / "lake"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "ui", "--port", str(port),
         "--sim-port", str(sim_port)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=as_in_a_terminal,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/server_info"
    try:
        wait_for(lambda: answers(url), process, "the UI answering")
        assert len(serving_processes(home)) >= 2  # dagster dev, its webserver and daemon
        process.send_signal(signo)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        for pid in serving_processes(home):  # whatever a failure left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert process.returncode == 0, stderr[-3000:]
    assert serving_processes(home) == []
    assert not answers(url)


def test_the_next_cli_start_fails_the_runs_a_killed_backfill_left_started(tmp_path):
    with Simulator(SimConfig(trades_per_day=30_000, symbols=("BTCUSDT",))) as sim:
        home, env = tmp_path / "home", environment(sim, tmp_path / "home")
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestration.cli", "backfill", "BTCUSDT",
             "--start", "2024-03-01", "--end", "2024-03-05", "--lake", str(tmp_path / "lake")],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: running(home), process, "a run in progress")
        process.kill()
        process.wait()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            (left,) = instance.get_runs(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
            )
        listed = subprocess.run(
            [sys.executable, "-m", "orchestration.cli", "symbols", "list"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    assert listed.returncode == 0, listed.stderr
    assert "binance:BTCUSDT" in listed.stdout
    said = " ".join(listed.stderr.split())
    assert f"marked 1 run(s) failed whose process is gone: {left.run_id[:8]}" in said
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(left.run_id).status == dg.DagsterRunStatus.FAILURE
        assert not instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
