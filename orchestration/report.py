"""What the CLI prints after its runs: one row per partition, then the totals."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

#: The tables the build summary shows, the way data flows (every table is in the metadata).
BUILD_SHOWN = ("trades", "quotes", "bars_1m", "spread_1m", "daily_summary")


@dataclass
class PartitionOutcome:
    key: str
    ok: bool
    seconds: float
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Materialization metadata per asset name."""
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    error: str | None = None
    interrupted: bool = False
    """Stopped by Ctrl-C while running: nothing of it was committed."""
    collateral: bool = False
    """Not built because its run failed for another instrument-day (retried on its own)."""


@dataclass
class RunReport:
    title: str
    outcomes: list[PartitionOutcome]
    seconds: float
    not_started: list[str] = field(default_factory=list)
    """Partitions never run because the command was interrupted."""
    interrupted: bool = False
    runs: int = 0
    """Dagster runs the partitions were grouped into."""
    jobs: int = 1
    """Runs executed at a time."""

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(o.ok and not o.checks_failed for o in self.outcomes)

    def print(self, console: Console) -> None:
        if self.title == "backfill":
            self._print_history(console)
        else:
            self._print_build(console)
        failed = [o.key for o in self.outcomes if not o.ok and not o.interrupted]
        console.print(
            f"{_count(len(self.outcomes), 'partition')} in {self.seconds:.1f}s"
            + (f" ({_count(self.runs, 'run')})" if self.runs else "")
            + (f"; [red]{len(failed)} failed[/]" if failed else "")
        )
        if self.interrupted:
            self._print_interruption(console)

    def _print_interruption(self, console: Console) -> None:
        done = [o.key for o in self.outcomes if not o.interrupted]
        stopped = [o.key for o in self.outcomes if o.interrupted] + self.not_started
        console.print(
            f"[yellow]interrupted[/]: {len(done)} of {len(done) + len(stopped)} partitions "
            f"finished ({_keys(done)}); not done: {_keys(stopped)}",
            highlight=False,
        )

    def _checks(self, o: PartitionOutcome) -> str:
        if not o.ok:
            return f"[red]{o.error}[/]"
        if o.checks_failed:
            return f"[red]failed: {', '.join(o.checks_failed)}[/]"
        return f"{o.checks_passed} passed"

    def _print_history(self, console: Console) -> None:
        table = Table(title="trades_history", title_justify="left")
        for column in ("partition", "rows", "first id", "last id", "vwap", "source", "checks", "s"):
            table.add_column(
                column, justify="left" if column in ("partition", "source") else "right"
            )
        for o in self.outcomes:
            m = o.metadata.get("trades_history", {})
            table.add_row(
                o.key,
                f"{m['rows']:,}" if "rows" in m else "-",
                str(m.get("first_trade_id", "-")),
                str(m.get("last_trade_id", "-")),
                f"{m['vwap']:.4f}" if m.get("vwap") is not None else "-",
                str(m.get("source", "-")),
                self._checks(o),
                f"{o.seconds:.2f}",
            )
        console.print(table)
        rows = sum(o.metadata.get("trades_history", {}).get("rows", 0) for o in self.outcomes)
        console.print(f"{rows:,} rows")

    def _print_build(self, console: Console) -> None:
        seen = {name for o in self.outcomes for name in o.metadata}
        assets = [a for a in BUILD_SHOWN if a in seen]
        table = Table(title="daily build: rows per table", title_justify="left")
        for column in ("partition", *assets, "checks", "s"):
            table.add_column(
                column, justify="left" if column == "partition" else "right", no_wrap=True
            )
        for o in self.outcomes:
            cells = [str(o.metadata.get(a, {}).get("rows", "-")) for a in assets]
            table.add_row(o.key, *cells, self._checks(o), f"{o.seconds:.2f}")
        console.print(table)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _keys(keys: list[str], shown: int = 4) -> str:
    if not keys:
        return "none"
    if len(keys) <= shown:
        return ", ".join(keys)
    return f"{', '.join(keys[:shown])} and {len(keys) - shown} more"


def cell(value: object) -> str:
    """One table cell for people: no trailing zeros, times of day for the day's timestamps."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.6f}".rstrip("0").rstrip(".")
    if isinstance(value, dt.datetime):
        return value.strftime("%H:%M:%S.%f")
    return str(value)
