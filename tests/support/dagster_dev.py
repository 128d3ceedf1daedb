"""`dagster dev` (webserver + daemon) on loopback against the simulator, for the UI tests.

The GraphQL test and the browser test both need what a user has after `make demo`: a lake
and a Dagster home of their own, the exchange simulator as Binance, the symbols added as
partitions and the real workspace served by a real webserver and daemon.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from orchestration import warm_workers
from orchestration.serve import stop_process_group

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def marketlake_env(base_url: str, tmp_path: Path, symbols: tuple[str, ...]) -> dict[str, str]:
    """The environment of a user pointed at the simulator, with a fresh lake and Dagster home."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MARKETLAKE_")},
        "DAGSTER_HOME": str(home),
        "MARKETLAKE_LAKE": str(tmp_path / "lake"),
        "MARKETLAKE_BINANCE_ARCHIVE_URL": base_url,
        "MARKETLAKE_BINANCE_REST_URL": base_url,
        "MARKETLAKE_SYMBOLS": ",".join(symbols),
    }


def marketlake_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `marketlake ARGS...` as a user would; fail with its stderr when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"marketlake {' '.join(args)} failed:\n{done.stderr}"
    return done


@contextmanager
def dagster_dev(env: dict[str, str], log: Path) -> Iterator[str]:
    """`dagster dev` with the repository's workspace on a free port; yields its URL.

    The webserver's and daemon's output goes to `log`, so a failure can show it.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestration.daemon", "dev", "-h", "127.0.0.1", "-p", str(port),
         "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until_serving(url, server)
        yield url
    finally:
        stop_process_group(server)


def wait_until_warm(env: dict[str, str], server_log: Path) -> None:
    """Until the daemon's warm process (`orchestration.warm_workers`) serves the home in
    `env`: a run launched before it is ready starts as Dagster starts it instead."""
    try:
        warm_workers.wait_until_serving(Path(env["DAGSTER_HOME"]))
    except TimeoutError as error:
        raise TimeoutError(f"{error}:\n{server_log.read_text()[-3000:]}") from None


def graphql(url: str, query: str, variables: dict) -> dict:
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "dagster dev exited early"
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"dagster dev did not serve {url} within {timeout}s")
