"""stream_supervisor against a real (temporary) Dagster instance and a real state file."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import dagster as dg
import orjson
import pytest

from marketlake.lake import Lake
from orchestration.definitions import build_definitions
from orchestration.live import JOB_NAME, stream_symbols, stream_window
from orchestration.settings import Settings


@pytest.fixture
def world(tmp_path):
    settings = dataclasses.replace(Settings(), lake=str(tmp_path / "lake"), stream_stale_after_s=60)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        yield defs, instance, tmp_path / "lake"


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, lake: Path):
    """One evaluation, the lake handed in as a resource (the twin of production's)."""
    sensor = defs.resolve_sensor_def("stream_supervisor")
    context = dg.build_sensor_context(
        instance=instance,
        repository_def=defs.get_repository_def(),
        resources={"lake": Lake(str(lake))},
    )
    return sensor.evaluate_tick(context)


def start_run(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.DagsterRun:
    job = defs.resolve_job_def(JOB_NAME)
    run = instance.create_run_for_job(job, run_config={})
    instance.handle_new_event(  # the run's process reports it started
        dg.EventLogEntry(
            error_info=None, level="debug", user_message="", run_id=run.run_id,
            timestamp=dt.datetime.now(dt.UTC).timestamp(), job_name=JOB_NAME,
            dagster_event=dg.DagsterEvent(
                event_type_value=dg.DagsterEventType.RUN_START.value, job_name=JOB_NAME
            ),
        )
    )  # fmt: skip
    return instance.get_run_by_id(run.run_id)


def beat(lake, seconds_ago: float) -> None:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
    path = lake / "_state" / "stream_binance.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    path.write_bytes(orjson.dumps({"version": 1, "updated_at": stamp, "last_flush_at": stamp}))


def alive(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    from orchestration.live import ALIVE

    return list(instance.get_runs(filters=dg.RunsFilter(job_name=JOB_NAME, statuses=ALIVE)))


def test_it_launches_a_run_when_none_is_running(world):
    defs, instance, lake = world
    result = tick(defs, instance, lake)
    assert len(result.run_requests) == 1


def test_it_does_nothing_beside_a_healthy_run(world):
    defs, instance, lake = world
    start_run(defs, instance)
    beat(lake, seconds_ago=5)
    result = tick(defs, instance, lake)
    assert result.run_requests == []
    assert "healthy" in result.skip_message


def test_it_replaces_a_run_whose_heartbeat_is_stale(world):
    defs, instance, lake = world
    stale = start_run(defs, instance)
    beat(lake, seconds_ago=600)
    first = tick(defs, instance, lake)
    assert first.run_requests == []
    assert "terminated stale run" in first.skip_message
    assert instance.get_run_by_id(stale.run_id).status not in (
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.STARTING,
    )
    assert alive(instance) == []
    second = tick(defs, instance, lake)
    assert len(second.run_requests) == 1


def test_a_new_run_gets_time_to_write_its_first_heartbeat(world):
    defs, instance, lake = world
    start_run(defs, instance)
    result = tick(defs, instance, lake)
    assert result.run_requests == []
    assert "starting" in result.skip_message


def test_a_stream_window_ends_at_the_next_utc_midnight_or_its_cap():
    now = dt.datetime(2024, 3, 1, 23, 0, tzinfo=dt.UTC)
    assert stream_window(now, None) == 3600
    assert stream_window(now, 60) == 60


def test_stream_symbols_default_to_the_venues_instrument_partitions():
    partitions = ["binance:ETHUSDT", "coinbase:BTC-USD", "binance:BTCUSDT", "okx:BTC-USD"]
    assert stream_symbols("binance", [], partitions) == ["BTCUSDT", "ETHUSDT"]
    assert stream_symbols("coinbase", [], partitions) == ["BTC-USD"]
    assert stream_symbols("okx", [], partitions) == ["BTC-USD"]  # the key says OKX, not the dash
    assert stream_symbols("deribit", [], partitions) == []
    assert stream_symbols("binance", ["SOLUSDT"], partitions) == ["SOLUSDT"]
