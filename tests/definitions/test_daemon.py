"""`orchestration.daemon`: Dagster's daemon with the backfill loop `marketlake ui` runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestration.daemon import BACKFILL_INTERVAL_S, backfill_interval, shorten_backfill_interval


@pytest.mark.parametrize(("value", "seconds"), [("", BACKFILL_INTERVAL_S), ("2.5", 2.5)])
def test_the_interval_is_the_setting_or_the_default(monkeypatch, value, seconds):
    monkeypatch.setenv("MARKETLAKE_BACKFILL_INTERVAL_S", value)
    assert backfill_interval() == seconds


@pytest.mark.parametrize("value", ["abc", "0", "-3", "7200"])
def test_a_bad_interval_is_refused_naming_the_setting(monkeypatch, value):
    monkeypatch.setenv("MARKETLAKE_BACKFILL_INTERVAL_S", value)
    with pytest.raises(SystemExit, match=f"MARKETLAKE_BACKFILL_INTERVAL_S='{value}'"):
        backfill_interval()


def test_dagsters_backfill_loop_reads_the_interval_it_is_given():
    """The loop imports the constant each time it starts: a pinned Dagster that stopped
    doing so would leave the daemon at 30 s without a word, so this reads its source."""
    import inspect

    import dagster._daemon.backfill as backfill
    import dagster._daemon.controller as controller

    before = controller.DEFAULT_DAEMON_INTERVAL_SECONDS
    try:
        shorten_backfill_interval(4)
        source = inspect.getsource(backfill.execute_backfill_iteration_loop)
        assert "from dagster._daemon.controller import DEFAULT_DAEMON_INTERVAL_SECONDS" in source
        assert controller.DEFAULT_DAEMON_INTERVAL_SECONDS == 4
    finally:
        controller.DEFAULT_DAEMON_INTERVAL_SECONDS = before


def test_a_bad_interval_stops_the_ui_before_it_starts_anything():
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.daemon", "dev", "-p", "1"],
        env={"MARKETLAKE_BACKFILL_INTERVAL_S": "soon", "PATH": ""},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "MARKETLAKE_BACKFILL_INTERVAL_S='soon'" in done.stderr
