"""Great Expectations stays off a process's start: loaded on demand or in the background."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    import threading

    import polars as pl

    from marketlake import quality

    assert "great_expectations" not in sys.modules, "importing quality imported GE"
    quality.load_in_background()
    quality.load_in_background()
    loaders = [t for t in threading.enumerate() if t.name == "load-great-expectations"]
    assert len(loaders) <= 1, loaders

    positive = quality.Check(
        "positive",
        "x > 0",
        expectations=[
            quality.Expectation("ExpectColumnValuesToBeBetween", {"column": "x", "min_value": 1})
        ],
    )
    (good,) = quality.run_checks(pl.DataFrame({"x": [1, 2, 3]}), [positive])
    (bad,) = quality.run_checks(pl.DataFrame({"x": [1, -2, 3]}), [positive])
    print(good.passed, bad.passed, bad.failing_rows)
    """
)


def test_checks_run_the_same_whether_or_not_the_background_load_has_finished():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "1"]
