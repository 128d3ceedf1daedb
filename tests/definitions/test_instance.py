"""The local Dagster instance the CLI creates on first use, under concurrency."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OPEN_AND_LIST = (
    "import sys; from pathlib import Path; from orchestration.instance import local_instance;"
    "print(len(local_instance(Path(sys.argv[1])).get_runs()))"
)


def test_first_time_processes_started_together_share_one_new_instance(tmp_path: Path) -> None:
    # Two backfills started at once on a fresh $DAGSTER_HOME used to race on the SQLite
    # migrations ("more than one head") and one of them died with a traceback.
    home = tmp_path / "home"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_LIST, str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [(p.wait(timeout=240), *p.communicate()) for p in processes]
    for code, out, err in outcomes:
        assert (code, out.strip()) == (0, "0"), err[-2000:]
