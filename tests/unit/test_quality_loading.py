"""Great Expectations stays off a process's critical path: it runs in a process of its own."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys

    import polars as pl

    from marketlake import quality

    quality.load_in_background()
    quality.load_in_background()  # a second call starts nothing more

    positive = quality.Check(
        "positive",
        "x > 0",
        expectations=[
            quality.Expectation("ExpectColumnValuesToBeBetween", {"column": "x", "min_value": 1})
        ],
    )
    (good,) = quality.run_checks(pl.DataFrame({"x": [1, 2, 3]}), [positive])
    (bad,) = quality.run_checks(pl.DataFrame({"x": [1, -2, 3]}), [positive])
    assert "great_expectations" not in sys.modules, "the checking process imported GE"
    print(good.passed, bad.passed, bad.failing_rows, bad.metadata["failures"])
    """
)


def test_checks_run_in_the_ge_process_and_report_their_failing_rows_and_sample():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    good, bad, failing, failures = done.stdout.split(maxsplit=3)
    assert (good, bad, failing) == ("True", "False", "1")
    assert "-2" in failures  # the failing value itself, sampled back from GE


def test_a_bad_expectation_is_raised_in_the_caller_with_ges_own_message():
    script = textwrap.dedent(
        """
        import polars as pl
        from marketlake import quality

        check = quality.Check(
            "odd", "", expectations=[quality.Expectation("ExpectNoSuchThing", {"column": "x"})]
        )
        try:
            quality.run_checks(pl.DataFrame({"x": [1]}), [check])
        except Exception as error:
            print(type(error).__name__, "ExpectNoSuchThing" in str(error))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[1] == "True", done.stdout


def test_a_killed_ge_process_fails_the_validation_naming_it():
    script = textwrap.dedent(
        """
        import os, signal
        import polars as pl
        from marketlake import quality
        from marketlake.quality_process import ValidationProcessDied

        quality.wait_until_loaded()
        child = quality._validator()._child
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        between = quality.Expectation("ExpectColumnValuesToNotBeNull", {"column": "x"})
        check = quality.Check("positive", "", expectations=[between])
        try:
            quality.run_checks(pl.DataFrame({"x": [1]}), [check])
        except ValidationProcessDied as error:
            print(str(child.pid) in str(error), "-9" in str(error))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"], done.stdout
