"""`python -m benchmarks`: run the benchmarks, print the table, rewrite RESULTS.md."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.common import Context, Row, machine, markdown_table, print_table

#: In the order they run (and appear in the table).
BENCHMARKS = (
    "archive_backfill",
    "backfill_memory",
    "rest_backfill",
    "stream",
    "daily_build",
    "chart_queries",
    "compaction",
    "dagster_overhead",
    "fleet",
    "fixed_cost",
)
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def run_benchmarks(
    names: Sequence[str] = BENCHMARKS,
    *,
    quick: bool = False,
    runs: int | None = None,
    log: Callable[[str], None] = print,
) -> list[Row]:
    """Run `names` in order; a benchmark that raises yields one row saying so."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="marketlake-bench-") as scratch:
        root = Path(scratch)
        (root / "sim-cache").mkdir()
        for name in names:
            ctx = Context(
                quick=quick,
                runs=runs or (1 if quick else 3),
                workdir=root / name,
                sim_cache=root / "sim-cache",
                log=log,
            )
            ctx.workdir.mkdir()
            log(f"[{name}]")
            started = time.perf_counter()
            try:
                module = importlib.import_module(f"benchmarks.{name}")
                rows += module.run(ctx)
            except Exception as error:
                traceback.print_exc()
                rows.append(Row(name, "error", "", [], note=f"{type(error).__name__}: {error}"))
            log(f"[{name}] {time.perf_counter() - started:.1f}s")
    return rows


def write_results(
    path: Path, rows: list[Row], argv: Sequence[str], seconds: float, info: dict[str, str]
) -> None:
    command = "uv run python -m benchmarks" + ("" if not argv else " " + shlex.join(argv))
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC "
        f"in {seconds / 60:.1f} min. Every benchmark runs against the local simulator on "
        "loopback; median and spread (min .. max, n runs) of each measurement, the bar it is "
        "held to, and the comparison figure measured in the same run. Not tests: the numbers "
        "depend on the machine. How each is measured: the docstring of its module in "
        "`benchmarks/`.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in info.items()),
        "",
        markdown_table(rows),
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="each benchmark once, tiny sizes")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME",
        help=f"run only these (repeat or comma-separate): {', '.join(BENCHMARKS)}",
    )  # fmt: skip
    parser.add_argument("--runs", type=int, default=None, help="runs per benchmark (default 3)")
    parser.add_argument(
        "--output", type=Path, default=None,
        help="results file (default benchmarks/RESULTS.md; --quick and --only write none "
        "unless given)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    names = [n for value in args.only for n in value.split(",") if n] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    info = machine()  # before the benchmarks load the machine
    started = time.perf_counter()
    rows = run_benchmarks(names, quick=args.quick, runs=args.runs)
    seconds = time.perf_counter() - started
    print_table(rows)
    output = args.output or (None if args.quick or args.only else RESULTS)
    if output is not None:
        write_results(output, rows, argv, seconds, info)
        print(f"wrote {output}")
    return 1 if any(r.case == "error" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
