"""deploy/dagster.yaml against a real PostgreSQL server on loopback.

The `postgres` fixture (tests/deploy/conftest.py) is a PostgreSQL cluster in a temporary
directory; the instance config is copied into a temporary DAGSTER_HOME with the DAGSTER_PG_*
variables pointing at it, and the instance is used the way production uses it: a partition
materialized against the exchange simulator, symbols added, the CLI reading them back in
another process.

The tests are skipped only when the PostgreSQL server binaries are not installed.
"""

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from marketlake.instruments import Instrument
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from orchestration.definitions import build_definitions
from orchestration.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INSTANCE_YAML = ROOT / "deploy" / "dagster.yaml"
DAY = dt.date(2024, 3, 1)
KEY = f"{DAY}|binance:BTCUSDT"
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def home(postgres, tmp_path_factory) -> Iterator[Path]:
    """A DAGSTER_HOME holding deploy/dagster.yaml, the DAGSTER_PG_* variables set."""
    directory = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(INSTANCE_YAML, directory / "dagster.yaml")
    env = {"DAGSTER_HOME": str(directory), **postgres.env}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield directory


@pytest.fixture(scope="module")
def instance(home) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.get() as current:
        yield current


def test_the_instance_keeps_runs_events_and_schedules_in_postgres(instance, postgres):
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    tables = {
        row[0]
        for row in postgres.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {"runs", "event_logs", "dynamic_partitions", "jobs", "job_ticks"} <= tables


def test_a_materialized_partition_is_recorded_in_postgres(instance, postgres, tmp_path):
    with Simulator(SimConfig(trades_per_day=2_000, symbols=tuple(SYMBOLS))) as sim:
        settings = Settings(
            lake=str(tmp_path / "lake"),
            binance_archive_url=sim.base_url,
            binance_rest_url=sim.base_url,
            start_date=dt.date(2024, 1, 1),
            instruments=tuple(Instrument("binance", s) for s in SYMBOLS),
        )
        instance.add_dynamic_partitions("instruments", ["binance:BTCUSDT"])
        # The asset as the Definitions bind it (lake and binance resources included).
        asset = build_definitions(settings).resolve_assets_def("trades_history")
        result = dg.materialize(
            [asset],
            partition_key=KEY,
            instance=instance,
            raise_on_error=False,
            tags={"marketlake/launched_by": "test"},
        )
    assert result.success, [e.message for e in result.all_events if e.is_failure]

    ((status, job_name),) = postgres.query(
        "SELECT status, pipeline_name FROM runs WHERE run_id = %s", result.run_id
    )
    assert status == "SUCCESS"
    assert job_name == "__ephemeral_asset_job__"  # what dg.materialize names its run
    assert postgres.query(
        "SELECT value FROM run_tags WHERE run_id = %s AND key = 'dagster/partition'",
        result.run_id,
    ) == [(KEY,)]
    ((materializations,),) = postgres.query(
        "SELECT count(*) FROM event_logs WHERE run_id = %s"
        " AND dagster_event_type = 'ASSET_MATERIALIZATION' AND partition = %s",
        result.run_id,
        KEY,
    )
    assert materializations == 1
    ((check_rows,),) = postgres.query(
        "SELECT count(*) FROM asset_check_executions WHERE run_id = %s", result.run_id
    )
    assert check_rows >= 1
    # The instance reads back what it wrote: the partition shows as materialized.
    assert KEY in instance.get_materialized_partitions(dg.AssetKey("trades_history"))


def test_dynamic_instrument_partitions_persist_in_postgres(instance, postgres, home):
    instruments = [f"binance:{s}" for s in SYMBOLS]
    instance.add_dynamic_partitions("instruments", instruments)
    rows = postgres.query(
        "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'instruments'"
    )
    assert {row[0] for row in rows} >= set(instruments)
    # Another process (the `marketlake` command) on the same DAGSTER_HOME sees them.
    listed = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "symbols", "list"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert set(instruments) <= set(listed.stdout.split())


def test_the_run_queue_limits_streams_and_backfills(instance):
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    assert queue.max_concurrent_runs == 12
    limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
    assert limits["marketlake/stream"]["limit"] == 1
    assert limits["marketlake/stream"]["value"] == {"applyLimitPerUniqueValue": True}
    assert limits["dagster/backfill"]["limit"] == 6


PROBE_LOCATION = """\
import dagster as dg


@dg.op
def probe() -> None:
    pass


@dg.job
def queue_probe() -> None:
    probe()


defs = dg.Definitions(jobs=[queue_probe])
"""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning")
def test_the_daemon_dequeues_only_what_the_limits_allow(instance, home, tmp_path):
    """`dagster dev` on this instance, one binance stream and six backfill runs in progress:
    runs submitted through the GraphQL client leave the queue only where the limits allow."""
    from dagster_graphql import DagsterGraphQLClient

    marker = {"marketlake/test": tmp_path.name}
    binance = {"marketlake/stream": "binance"}
    in_progress = [{**binance}] + [{"dagster/backfill": f"b{i % 2}"} for i in range(6)]
    for tags in in_progress:
        instance.add_run(
            dg.DagsterRun(
                job_name="queue_probe", status=dg.DagsterRunStatus.STARTED, tags={**tags, **marker}
            )
        )
    location = tmp_path / "probe_location.py"
    location.write_text(PROBE_LOCATION)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestration.daemon", "dev", "-h", "127.0.0.1", "-p", str(port),
         "-f", str(location)],
        cwd=tmp_path, env=dict(os.environ), stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "dev.log").open("w"), start_new_session=True,
    )  # fmt: skip
    try:
        client = _wait_for_client(DagsterGraphQLClient, port, server)
        queued = {
            name: client.submit_job_execution("queue_probe", tags={**tags, **marker})
            for name, tags in {
                "second binance stream": binance,
                "coinbase stream": {"marketlake/stream": "coinbase"},
                "seventh backfill run": {"dagster/backfill": "b2"},
                "schedule run": {"dagster/schedule_name": "daily"},
            }.items()
        }

        def status(name: str) -> dg.DagsterRunStatus:
            return instance.get_run_by_id(queued[name]).status

        deadline = time.monotonic() + 180
        allowed = ("coinbase stream", "schedule run")
        while time.monotonic() < deadline and server.poll() is None:
            if all(status(name) == dg.DagsterRunStatus.SUCCESS for name in allowed):
                break
            time.sleep(0.5)
        outcome = {name: status(name) for name in queued}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        for run in instance.get_runs(filters=dg.RunsFilter(tags=marker)):
            instance.delete_run(run.run_id)
    log = (tmp_path / "dev.log").read_text()[-3000:]
    assert outcome == {
        "second binance stream": dg.DagsterRunStatus.QUEUED,
        "coinbase stream": dg.DagsterRunStatus.SUCCESS,
        "seventh backfill run": dg.DagsterRunStatus.QUEUED,
        "schedule run": dg.DagsterRunStatus.SUCCESS,
    }, log


def _wait_for_client(client_type, port: int, server: subprocess.Popen):
    """The GraphQL client, once `dagster dev` answers on `port`."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert server.poll() is None, "dagster dev exited early"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return client_type("127.0.0.1", port_number=port)
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"dagster dev did not listen on 127.0.0.1:{port}")


def test_monitoring_retention_and_telemetry_are_configured(instance):
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_start_timeout_seconds == 300
    assert instance.run_monitoring_max_runtime_seconds == 0  # streams run for days
    assert "MONITORING" in instance.get_required_daemon_types()
    assert instance.run_retries_enabled
    sensor_retention = instance.get_settings("retention")["sensor"]["purge_after_days"]
    assert sensor_retention["skipped"] == 7
    assert sensor_retention["failure"] == 30
    assert not instance.telemetry_enabled


def test_an_unset_credential_is_named_when_the_instance_loads(home, monkeypatch):
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    with pytest.raises(dg.DagsterInvalidConfigError, match="DAGSTER_PG_PASSWORD"):
        dg.DagsterInstance.get()
