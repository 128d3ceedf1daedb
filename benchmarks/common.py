"""What every benchmark shares: the result row, timing, the simulator, the machine, the table.

A benchmark module exposes `NAME` (for `--only`) and `run(ctx) -> list[Row]`. A row holds
every sample of one measurement, the bar it is held to and the comparison figure measured
in the same run; the runner prints the rows and writes RESULTS.md from them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import platform
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from deploy.loopback.graphql import Webserver
from marketlake import schemas
from marketlake.simulator import SimConfig, Simulator
from orchestration.instance import usable_cores

#: The day every benchmark backfills (before 2025: archive times in ms, as most history is).
DAY = dt.date(2024, 3, 1)
SYMBOL = "BTCUSDT"
EXCHANGE = "binance"


@dataclass
class Context:
    """Options of one benchmark session and the scratch space it may use."""

    quick: bool
    runs: int
    workdir: Path
    sim_cache: Path
    log: Callable[[str], None] = print

    def path(self, name: str) -> Path:
        """A fresh directory under the session's scratch space."""
        target = self.workdir / name
        target.mkdir(parents=True, exist_ok=True)
        return target

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


Direction = Literal["higher", "lower"]


@dataclass
class Row:
    """One measurement: its samples, its unit, the bar (goal) and what it is compared with."""

    benchmark: str
    case: str
    unit: str
    samples: list[float]
    bar: float | None = None
    better: Direction = "higher"
    compare: str = ""
    note: str = ""
    fmt: str = "{:,.0f}"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def met(self) -> bool | None:
        if self.bar is None or not self.samples:
            return None
        return self.median >= self.bar if self.better == "higher" else self.median <= self.bar

    def value(self, x: float) -> str:
        return self.fmt.format(x)

    @property
    def spread(self) -> str:
        """min..max of the samples and their count (one sample: just "n=1")."""
        if len(self.samples) < 2:
            return f"n={len(self.samples)}"
        low, high = self.value(min(self.samples)), self.value(max(self.samples))
        return f"{low} .. {high} (n={len(self.samples)})"

    @property
    def bar_text(self) -> str:
        if self.bar is None:
            return "–"
        return ("≥ " if self.better == "higher" else "≤ ") + self.value(self.bar) + f" {self.unit}"

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "–"}[self.met]


def repeat(runs: int, once: Callable[[], float], warmup: int = 0) -> list[float]:
    """Call `once` (which returns its own measurement) `warmup` + `runs` times; keep `runs`."""
    for _ in range(warmup):
        once()
    samples = []
    for _ in range(runs):
        gc.collect()
        samples.append(once())
    return samples


@contextlib.contextmanager
def simulator(ctx: Context, trades_per_day: int, symbols: tuple[str, ...] = (SYMBOL,), **kw: Any):
    """The local exchange on loopback, its built zips cached for the whole session."""
    config = SimConfig(trades_per_day=trades_per_day, symbols=symbols)
    with Simulator(config, cache_dir=ctx.sim_cache, **kw) as sim:
        yield sim


def lake_partition(symbol: str = SYMBOL, date: dt.date = DAY) -> dict[str, Any]:
    return {"exchange": EXCHANGE, "symbol": symbol, "date": date}


MARKET_KEYS = schemas.MARKET_PARTITION_COLUMNS


def human_count(n: float) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n / 1_000_000:.0f}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n / 1_000:.0f}k"
    return f"{n:,.0f}"


# --- servers on loopback: ports, dagster dev, its GraphQL ----------------------------------------


def free_port() -> int:
    """A loopback port free now, for a child server that takes its port as an argument."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of `repeat` calls of `fn`."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class GraphQL(Webserver):
    """`Webserver` (a response with errors raises) that can also time a query."""

    def __init__(self, url: str, timeout: float = 300):
        super().__init__(url, timeout)

    def timed(self, query: str, variables: dict, calls: int) -> float:
        """Median wall time of `calls` calls, in milliseconds (one untimed warm-up first)."""
        self(query, variables)
        return 1000 * median_seconds(lambda: self(query, variables), calls)


def stop_dev(process: subprocess.Popen) -> None:
    """Stop `dagster dev` started with `start_new_session=True`: its webserver, daemon and
    code servers, as Ctrl-C would; killed if it has not stopped within 60 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --- the machine --------------------------------------------------------------------------------

LIBRARIES = (
    "polars",
    "deltalake",
    "pyarrow",
    "great-expectations",
    "pandas",
    "dagster",
    "httpx",
    "websockets",
    "orjson",
    "numpy",
)


def machine() -> dict[str, str]:
    """Cores, memory, CPU model, OS, Python and the versions of the libraries on the path."""
    info = {
        "cores": str(os.cpu_count()),
        "usable cores": str(usable_cores()),
        "memory": _memory(),
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load average at the start": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
        if hasattr(os, "getloadavg")
        else "?",
    }
    versions = []
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{name} {metadata.version(name)}")
    info["libraries"] = ", ".join(versions)
    return info


def _memory() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return "?"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


# --- output -------------------------------------------------------------------------------------

HEADER = ("benchmark", "case", "median", "spread (min .. max)", "bar", "", "compared with")


def table_rows(rows: list[Row]) -> list[tuple[str, ...]]:
    return [
        (
            r.benchmark,
            r.case,
            f"{r.value(r.median)} {r.unit}",
            r.spread,
            r.bar_text,
            r.verdict,
            r.compare + (f" — {r.note}" if r.note else ""),
        )
        for r in rows
    ]


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for cells in table_rows(rows):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def print_table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="marketlake benchmarks", title_justify="left", show_lines=False)
    for name in HEADER:
        table.add_column(name, overflow="fold")
    for cells in table_rows(rows):
        table.add_row(*(c.replace("**", "") for c in cells))
    Console(width=220).print(table)
