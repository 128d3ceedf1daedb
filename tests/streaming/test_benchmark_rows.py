"""The stream benchmark's latency rows from its children's results (benchmarks/stream.py)."""

from __future__ import annotations

import math

from benchmarks.stream import latency_rows


def result(**percentiles: float) -> dict:
    return {"flush_interval_s": 1.0, "event_to_commit_ms": {**percentiles, "max": None}}


def test_latency_rows_are_the_runs_percentiles_in_seconds() -> None:
    rows = latency_rows([result(p50=400.0, p95=900.0, p99=1200.0)], 2.0)
    assert [(r.case.split(", ")[1], r.samples, r.note) for r in rows] == [
        ("p50", [0.4], ""),
        ("p99", [1.2], ""),
    ]


def test_a_latency_run_that_timed_no_commit_gives_no_sample_and_the_rows_say_so() -> None:
    rows = latency_rows([result(), result(p50=500.0, p95=900.0, p99=1000.0)], 2.0)
    assert [r.samples for r in rows] == [[0.5], [1.0]]
    assert all(r.note.startswith("no latency samples in 1 of 2 runs") for r in rows)

    rows = latency_rows([result()], 2.0)
    assert all(r.samples == [] and math.isnan(r.median) and r.met is None for r in rows)
    assert "no trade was committed in its 2 s of streaming" in rows[0].note
