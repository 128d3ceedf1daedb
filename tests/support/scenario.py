"""Pieces of the fault-injection scenario: the lander as a killable process, the market
clock both simulators share, and the Delta-history audit.

Kept out of the test so the test reads as the story of the scenario: what goes wrong, in
which order, and what a user finds in the lake afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[2]


def market_clock(start: dt.datetime) -> Callable[[], dt.datetime]:
    """A clock that starts at `start` now and runs at real speed."""
    began = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - began)


@dataclass
class LanderProcess:
    """``python -m streaming`` as its own process, its output kept in files (a full pipe
    would block it), killable with SIGKILL like a crash or stopped with SIGTERM."""

    symbols: Sequence[str]
    ws_url: str
    rest_url: str
    lake: Path
    logs: Path
    number: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def stdout(self) -> Path:
        return self.logs / f"lander-{self.number}.out"

    @property
    def stderr(self) -> Path:
        return self.logs / f"lander-{self.number}.err"

    def start(self) -> LanderProcess:
        command = [
            sys.executable, "-m", "streaming",
            "--symbols", ",".join(self.symbols),
            "--ws-url", self.ws_url,
            "--rest-url", self.rest_url,
            "--lake", str(self.lake),
            "--gap-grace", "0.2",
            "--flush-interval", "1.0",
            "--status-interval", "0.5",
        ]  # fmt: skip
        self.logs.mkdir(parents=True, exist_ok=True)
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no flush, no state written; what was buffered is lost with it."""
        assert self.process is not None and self.alive(), self.error_text()
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM: the clean shutdown (flush, state); the exit status."""
        assert self.process is not None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def ensure_stopped(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(30)

    def status_lines(self) -> list[dict]:
        """The JSON status lines the lander printed on stderr (log lines are skipped)."""
        lines = []
        text = self.stderr.read_text(errors="replace") if self.stderr.exists() else ""
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return lines

    def summary(self) -> dict:
        """The final summary a clean shutdown prints on stdout."""
        return json.loads(self.stdout.read_text().strip().splitlines()[-1])

    def error_text(self) -> str:
        return self.stderr.read_text(errors="replace")[-3000:] if self.stderr.exists() else ""


@dataclass
class VersionAudit:
    """Every version of a Delta table's history, checked partition by partition."""

    table: str
    versions: int = 0
    partitions_checked: int = 0
    failures: list[str] = field(default_factory=list)


def audit_delta_history(table_path: Path) -> VersionAudit:
    """Load every committed version of a trades-like table and check each (symbol, date)
    partition it held against the ERROR checks that must gate a commit: at least one row,
    every trade id once, ids contiguous, every ts on the partition's day.

    Reading each version whole is what a time-travel reader would see: if any commit ever
    held rows that failed a check, some version shows it.
    """
    from deltalake import DeltaTable

    audit = VersionAudit(table_path.name)
    latest = DeltaTable(str(table_path)).version()
    for version in range(latest + 1):
        frame = pl.read_delta(
            str(table_path), version=version, columns=["symbol", "date", "trade_id", "ts"]
        )
        audit.versions += 1
        per_partition = frame.group_by("symbol", "date").agg(
            rows=pl.len(),
            ids=pl.col("trade_id").n_unique(),
            span=pl.col("trade_id").max() - pl.col("trade_id").min() + 1,
            off_day=(pl.col("ts").dt.date() != pl.col("date")).sum(),
        )
        for row in per_partition.iter_rows(named=True):
            audit.partitions_checked += 1
            where = f"{audit.table} v{version} {row['symbol']} {row['date']}"
            if row["rows"] == 0:
                audit.failures.append(f"{where}: empty")
            if row["ids"] != row["rows"]:
                audit.failures.append(f"{where}: {row['rows'] - row['ids']} repeated trade ids")
            if row["span"] != row["ids"]:
                audit.failures.append(f"{where}: {row['span'] - row['ids']} ids missing")
            if row["off_day"]:
                audit.failures.append(f"{where}: {row['off_day']} rows from another day")
    return audit
