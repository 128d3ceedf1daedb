"""A backfill's first archive day, downloaded while Dagster loads (`assets.archive_prefetch`):
the run takes it instead of downloading it again, and lands exactly what it would have."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets.archive_prefetch import archive_day_prefetched

JOB = "trades_history_job"
DAY = dt.date(2024, 3, 1)
KEY = f"{DAY}|binance:BTCUSDT"
RAW_COLUMNS = ["trade_id", "price", "qty", "quote_qty", "ts", "is_buyer_maker"]


def downloads(world) -> int:
    """Archive zips the simulator served (a refused one counts: it was downloaded)."""
    return sum(n for path, n in world.sim.stats.requests.items() if path.endswith(".zip"))


def landed(world, result: dg.ExecuteInProcessResult):
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    return world.rows("BTCUSDT", DAY).drop("ingested_at"), checks


def test_a_prefetched_day_is_downloaded_once_and_lands_the_same_rows_and_checks(world):
    rows, checks = landed(world, world.run(JOB, KEY))
    world.sim.reset()

    with archive_day_prefetched(world.settings.binance_archive_url, "BTCUSDT", DAY) as day:
        day.result()  # arrived before the run asks for it
        prefetched_rows, prefetched_checks = landed(world, world.run(JOB, KEY))

    assert downloads(world) == 1
    assert prefetched_rows.equals(rows)
    assert prefetched_checks == checks and all(checks.values()), checks


def test_a_failed_prefetch_falls_back_to_the_runs_own_download(world):
    world.sim.faults.wrong_checksum.add(("BTCUSDT", DAY))
    with archive_day_prefetched(world.settings.binance_archive_url, "BTCUSDT", DAY) as day:
        assert day.exception() is not None  # refused: the sha256 does not match
        world.sim.faults.clear()
        rows, checks = landed(world, world.run(JOB, KEY))

    assert downloads(world) == 2
    assert rows.select(RAW_COLUMNS).equals(world.truth("BTCUSDT", DAY))
    assert all(checks.values()), checks


def test_a_day_prefetched_for_a_command_that_ended_is_never_used(world):
    with archive_day_prefetched(world.settings.binance_archive_url, "BTCUSDT", DAY) as day:
        day.result()
    # the exchange's archive day changes after the command: a trade now missing from it
    missing = world.truth("BTCUSDT", DAY)["trade_id"][5]
    world.sim.faults.archive_gaps[("BTCUSDT", DAY)] = [(missing, missing)]

    rows, _checks = landed(world, world.run(JOB, KEY))

    assert downloads(world) == 2  # the run downloaded the day as the exchange has it now
    assert rows.filter(source="rest")["trade_id"].to_list() == [missing]
