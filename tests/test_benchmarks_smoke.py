"""The benchmarks never rot: `--quick` runs every one of them once, on tiny sizes.

No wall-clock assertions (numbers depend on the machine): each benchmark must run and give
at least one row with a measurement, and a quick run writes no RESULTS.md.
"""

from __future__ import annotations

import math

import pytest

from benchmarks.__main__ import BENCHMARKS, RESULTS, main, run_benchmarks


@pytest.mark.slow
def test_every_benchmark_runs_in_quick_mode_and_gives_a_row():
    before = RESULTS.stat().st_mtime if RESULTS.exists() else None
    rows = run_benchmarks(BENCHMARKS, quick=True, log=lambda _: None)

    errors = [f"{r.benchmark}: {r.note}" for r in rows if r.case == "error"]
    assert not errors, errors
    produced = {r.benchmark for r in rows}
    assert len(produced) >= len(BENCHMARKS) - 1  # "stream landing"/"stream latency" share one
    for row in rows:
        assert row.samples, row
        assert all(not math.isnan(x) for x in row.samples), row
    assert (RESULTS.stat().st_mtime if RESULTS.exists() else None) == before


def test_an_unknown_benchmark_name_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--only", "no_such_benchmark"])
    assert exit_.value.code == 2
    assert "unknown benchmark" in capsys.readouterr().err
