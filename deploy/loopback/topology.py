"""The production topology on one machine: each part its own process, as on Kubernetes.

- the code server (`dagster api grpc`) serves the Definitions; it alone needs the lake and
  exchange settings (`MARKETLAKE_*`, the S3 keys), and it starts each run as a child
  process (the DefaultRunLauncher; on Kubernetes a pod per run, deploy/k8s);
- the webserver and the daemon load nothing themselves: workspace.yaml points them at the
  code server (a `grpc_server` location);
- every process shares the instance, deploy/dagster.yaml on PostgreSQL: runs are queued
  there and the daemon dequeues them within the run queue's limits.

Each process runs in its own process group, its output in `logs/<name>.log`, and dies with
the process that started it; `stop()` ends each group, run workers included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from deploy.loopback.graphql import LOCATION, Webserver
from deploy.loopback.processes import free_ports, processes_with_env, spawn, stop_group

ROOT = Path(__file__).resolve().parents[2]
INSTANCE_YAML = ROOT / "deploy" / "dagster.yaml"
#: The module the code server loads (workspace.yaml's `python_module` in development).
DEFINITIONS_MODULE = "orchestration.definitions"
#: Variables a child must not inherit from whoever started the rehearsal: the topology
#: sets its own instance, lake and exchange.
FOREIGN = ("DAGSTER_", "MARKETLAKE_", "AWS_")


def workspace_yaml(host: str, port: int) -> str:
    """A workspace of one `grpc_server` location: the processes that load no code."""
    location = {"grpc_server": {"host": host, "port": port, "location_name": LOCATION}}
    return yaml.safe_dump({"load_from": [location]}, sort_keys=False)


def script(name: str) -> str:
    """A console script of this environment (`dagster-webserver`, `dagster-daemon`)."""
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(directory, name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"`{name}` not found beside {sys.executable} or on PATH")
    return found


@dataclass
class Part:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


class TopologyFailed(RuntimeError):
    """A part did not come up; the message holds the end of its log."""


class Topology:
    """Code server, webserver and daemon on `host`, sharing one Dagster instance.

    `instance_env` reaches every process (the `DAGSTER_PG_*` of deploy/dagster.yaml);
    `code_env` only the code server and its runs (the lake, the exchange, the S3 keys).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        instance_env: Mapping[str, str],
        code_env: Mapping[str, str],
        host: str = "127.0.0.1",
        ui_port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.home = workdir / "dagster_home"
        self.logs = workdir / "logs"
        self.host = host
        grpc_port, free_ui_port = free_ports(2)
        self.grpc_port = grpc_port
        self.ui_port = ui_port or free_ui_port
        base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        self.instance_env = {**base, **instance_env, "DAGSTER_HOME": str(self.home)}
        self.code_env = {**self.instance_env, **code_env}
        self.parts: list[Part] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.ui_port}"

    @property
    def workspace(self) -> Path:
        return self.home / "workspace.yaml"

    def webserver(self) -> Webserver:
        return Webserver(self.url)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 300) -> Topology:
        """Start the parts in the order their clients need them; return once all serve."""
        if self.parts:
            raise RuntimeError("the topology is already started")
        try:
            self.start_code_server(timeout)
            self.start_webserver(timeout)
            self.start_daemon(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_code_server(self, timeout: float = 300) -> None:
        """The instance's files, the code server, and the instance's tables created (or
        upgraded) once while it loads, as a deployment does before it starts the webserver
        and the daemon, so that these two never race to create them."""
        deadline = time.monotonic() + timeout
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        shutil.copy(INSTANCE_YAML, self.home / "dagster.yaml")
        self.workspace.write_text(workspace_yaml(self.host, self.grpc_port))
        self._spawn(
            "code-server",
            [sys.executable, "-m", "dagster", "api", "grpc", "-h", self.host,
             "-p", str(self.grpc_port), "-m", DEFINITIONS_MODULE, "--location-name", LOCATION],
            self.code_env,
        )  # fmt: skip
        self._migrate(deadline)
        self._wait_for_code_server(deadline)

    def start_webserver(self, timeout: float = 300) -> None:
        """The UI and its GraphQL API; returns once it has loaded the code server's location."""
        deadline = time.monotonic() + timeout
        self._spawn(
            "webserver",
            [script("dagster-webserver"), "-h", self.host, "-p", str(self.ui_port),
             "-w", str(self.workspace)],
            self.instance_env,
        )  # fmt: skip
        self._wait_for_webserver(deadline)

    def start_daemon(self, timeout: float = 300) -> None:
        """Schedules, sensors, backfills, the run queue and run monitoring; returns once every
        daemon has reported in (read through the webserver)."""
        deadline = time.monotonic() + timeout
        self._spawn(
            "daemon",
            [script("dagster-daemon"), "run", "-w", str(self.workspace)],
            self.instance_env,
        )
        client = self.webserver()
        try:
            while True:
                self._check_alive(deadline, "daemon's first heartbeats")
                if not client.unhealthy_daemons():
                    return
                time.sleep(0.5)
        finally:
            client.close()

    def stop(self, grace_s: float = 30) -> None:
        """Daemon first (nothing new is launched), then the webserver, then the code server
        and the runs it started. Each group gets SIGTERM, then SIGKILL after `grace_s`."""
        while self.parts:
            part = self.parts.pop()
            stop_group(part.process, grace_s)

    def leftovers(self) -> list[int]:
        """Processes still carrying this topology's DAGSTER_HOME (none once stopped)."""
        return processes_with_env("DAGSTER_HOME", str(self.home))

    def __enter__(self) -> Topology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- helpers ---------------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str], env: Mapping[str, str]) -> None:
        log = self.logs / f"{name}.log"
        process = spawn(command, env=env, cwd=ROOT, log=log)
        self.parts.append(Part(name, process, log))

    def _migrate(self, deadline: float) -> None:
        log = self.logs / "instance-migrate.log"
        with open(log, "ab") as out:
            done = subprocess.run(
                [sys.executable, "-m", "dagster", "instance", "migrate"],
                env=self.instance_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                timeout=max(1.0, deadline - time.monotonic()),
            )  # fmt: skip
        if done.returncode != 0:
            raise TopologyFailed(f"dagster instance migrate failed:\n{_tail(log)}")

    def _wait_for_code_server(self, deadline: float) -> None:
        """Until the gRPC health service says SERVING (what a readiness probe asks)."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        request = health_pb2.HealthCheckRequest(service="DagsterApi")
        with grpc.insecure_channel(f"{self.host}:{self.grpc_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                self._check_alive(deadline, "code server answering its health check")
                try:
                    status = stub.Check(request, timeout=2).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.5)

    def _wait_for_webserver(self, deadline: float) -> None:
        """Until the webserver has loaded the code server's location."""
        client = self.webserver()
        try:
            while True:
                self._check_alive(deadline, "webserver loading the code location")
                try:
                    if httpx.get(f"{self.url}/server_info", timeout=2).status_code == 200:
                        (entry,) = client.locations()
                        if entry["loadStatus"] == "LOADED":
                            error = entry["locationOrLoadError"]
                            if error and error["__typename"] == "PythonError":
                                raise TopologyFailed(
                                    f"location {entry['name']} failed to load: {error['message']}"
                                )
                            return
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
        finally:
            client.close()

    def _check_alive(self, deadline: float, what: str) -> None:
        for part in self.parts:
            if part.process.poll() is not None:
                raise TopologyFailed(
                    f"the {part.name} exited ({part.process.returncode}):\n{_tail(part.log)}"
                )
        if time.monotonic() >= deadline:
            logs = "\n".join(f"--- {p.name} ---\n{_tail(p.log)}" for p in self.parts)
            raise TopologyFailed(f"timed out waiting for the {what}\n{logs}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def code_environment(
    *, lake: str, s3_env: Mapping[str, str], http_url: str, ws_url: str, symbols: list[str]
) -> dict[str, str]:
    """What the code server and its runs read (orchestration/settings.py): an `s3://` lake
    with its endpoint and keys, and the exchange (the simulator's archive, REST and
    websockets)."""
    return {
        **s3_env,
        "MARKETLAKE_LAKE": lake,
        "MARKETLAKE_BINANCE_ARCHIVE_URL": http_url,
        "MARKETLAKE_BINANCE_REST_URL": http_url,
        "MARKETLAKE_BINANCE_WS_URL": ws_url,
        "MARKETLAKE_COINBASE_WS_URL": f"{ws_url}/coinbase",
        "MARKETLAKE_SYMBOLS": ",".join(symbols),
    }
