"""A throwaway PostgreSQL server on loopback, for the production instance (deploy/dagster.yaml).

A cluster is created in a temporary directory (initdb, password auth over TCP on 127.0.0.1,
its unix socket inside the directory, fsync off: the data is throwaway), with one database
owned by the `dagster` role. The tests of deploy/ and the loopback rehearsal
(`python -m deploy.loopback`) both use it.

PostgreSQL refuses to run as root; when started as root the server runs as the `postgres`
system account (present wherever the PostgreSQL packages are installed), or `nobody`, by
dropping privileges in the child process.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "marketlake-loopback-password"


class PostgresMissing(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def postgres_bin() -> Path | None:
    """The directory holding initdb and pg_ctl: $PG_BIN, Debian's layout, or $PATH."""
    candidates = [os.environ.get("PG_BIN", "")]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    initdb = shutil.which("initdb")
    candidates.append(str(Path(initdb).parent) if initdb else "")
    for candidate in candidates:
        if candidate and all((Path(candidate) / tool).is_file() for tool in ("initdb", "pg_ctl")):
            return Path(candidate)
    return None


@dataclass
class Postgres:
    """How to reach the running server: what `DAGSTER_PG_*` point a Dagster instance at."""

    host: str
    port: int
    user: str
    password: str
    db: str
    startup_s: float

    @property
    def env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads (deploy/README.md, Environment)."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db,
        }

    def connect(self, db: str | None = None):
        import psycopg2  # comes with dagster-postgres

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=db or self.db,
        )

    def create_database(self, name: str) -> Postgres:
        """A new database on this server owned by the same role (one per instance)."""
        admin = self.connect(db="postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        return dataclasses.replace(self, db=name)

    def query(self, sql: str, *params) -> list[tuple]:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        connection.close()
        return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """One PostgreSQL cluster in a temporary directory; `with LocalPostgres() as server:`."""

    def __init__(self, db: str = "dagster") -> None:
        self.db = db
        self.bin_dir = postgres_bin()
        if self.bin_dir is None:
            raise PostgresMissing(
                "PostgreSQL server binaries (initdb, pg_ctl) not found in $PG_BIN, "
                "/usr/lib/postgresql/*/bin or $PATH: apt-get install postgresql"
            )
        self.workdir: Path | None = None
        self._run_as: dict = {}
        self._started = False

    def start(self) -> Postgres:
        started = time.perf_counter()
        as_root = os.geteuid() == 0
        # Under root the server needs an unprivileged account; /tmp is traversable by it.
        self.workdir = Path(
            tempfile.mkdtemp(prefix="marketlake-pg-", dir="/tmp" if as_root else None)
        )
        if as_root:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                account = pwd.getpwnam("nobody")
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
            self._run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if as_root:
            os.chown(pwfile, self._run_as["user"], self._run_as["group"])
        port = free_port()
        try:
            self._pg("initdb", "-D", str(self.data), "-U", "dagster", f"--pwfile={pwfile}",
                     "-E", "UTF8", "--locale=C", "--auth-local=trust",
                     "--auth-host=scram-sha-256", "--no-sync")  # fmt: skip
            options = f"-p {port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
            self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                     "-w", "-t", "30", "start")  # fmt: skip
            self._started = True
            server = Postgres("127.0.0.1", port, "dagster", PASSWORD, "postgres", 0.0)
            server = server.create_database(self.db)
        except BaseException:
            self.stop()
            raise
        server.startup_s = time.perf_counter() - started
        return server

    def stop(self) -> None:
        if self.workdir is None:
            return
        try:
            if self._started:
                self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            self._started = False
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def data(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "data"

    @property
    def log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "postgres.log"

    def _pg(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        assert self.bin_dir is not None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        result = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            cwd=self.workdir, env=env, capture_output=True, text=True, timeout=timeout,
            **self._run_as,
        )  # fmt: skip
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed:\n{result.stdout}\n{result.stderr}\n{log}")
        return result
