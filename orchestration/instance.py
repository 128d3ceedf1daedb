"""The local Dagster instance the CLI shares with `marketlake ui`: created on first use."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import TYPE_CHECKING

from orchestration.settings import dagster_home

if TYPE_CHECKING:
    import dagster as dg

#: The local instance: SQLite under $DAGSTER_HOME (deploy/dagster.yaml is the production one).
LOCAL_INSTANCE_YAML = """# Local Dagster instance for marketlake (SQLite storage in this folder).
telemetry:
  enabled: false
"""


def prepared_home(home: Path | None = None) -> Path:
    """`home` (default: `$DAGSTER_HOME` or `./.dagster_home`), with a dagster.yaml in it.

    An existing dagster.yaml (the production one from deploy/, say) is left as it is.
    """
    home = home or dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(LOCAL_INSTANCE_YAML)
    return home


def local_instance(home: Path | None = None) -> dg.DagsterInstance:
    """The instance in `prepared_home(home)`, the one the UI started from there reads.

    Dagster is imported here, not at the top: `marketlake ui` prepares the home and hands
    it to `dagster dev` without importing Dagster itself (seconds saved on every start).
    """
    import dagster as dg

    home = prepared_home(home)
    ready = home / ".marketlake-instance-ready"
    if ready.exists():
        return dg.DagsterInstance.from_config(str(home))
    # Two first-time processes on one fresh home (two backfills started at once) would both
    # create the SQLite storages and race on their migrations ("more than one head"): the
    # first creates them under a lock, the others wait for it and then open what it made.
    with open(home / ".marketlake-instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.from_config(str(home))
        if not ready.exists():
            instance.get_runs(limit=1)  # run storage
            instance.get_asset_keys()  # event log storage
            instance.all_instigator_state()  # schedule storage
            ready.touch()
    return instance
