"""One bogus trade id must never make real trades disappear, now or after a restart.

A well-formed trade whose id is millions past the sequence used to be landed; the real
trades after it then sat below the watermark and were dropped as repeats, and the
checkpoint saved the bogus id so a restart dropped them too. Now a far jump is held until
later trades confirm it (a reconnect after an outage) or continue the old sequence (an
outlier: quarantined, recorded in `stream_events`, counted on the status line). Frames go
from a loopback websocket server through the real lander into Delta.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from support.scripted_server import ScriptedWebsocket
from support.waiting import wait_until

from marketlake.lake import Lake
from streaming import StreamConfig
from streaming.state import StateStore

SYMBOL = "BTCUSDT"
T0_MS = 1_786_309_548_000
BOGUS = 5_001_099


def trade(trade_id: int) -> bytes:
    return orjson.dumps(
        {
            "stream": "btcusdt@trade",
            "data": {
                "e": "trade",
                "E": T0_MS + trade_id % 100_000,
                "s": SYMBOL,
                "t": trade_id,
                "p": "100.00000000",
                "q": "1.00000000",
                "T": T0_MS + trade_id % 100_000,
                "m": True,
                "M": True,
            },
        }
    )


def config(ws: ScriptedWebsocket, lake: Path, **options: Any) -> StreamConfig:
    return StreamConfig(
        "binance",
        [SYMBOL],
        ws.url,
        lake=str(lake),
        flush_interval_s=0.1,
        gap_grace_s=0.1,
        feed_options={"channels": ("trade",)},
        **options,
    )


def land(ws: ScriptedWebsocket, lake: Path, landing: Callable[..., Any], frames: list[int]):
    """Land `frames` (trade ids) and stop once every one was received; (stats, status)."""
    run = landing(config(ws, lake))
    ws.send(*(trade(n) for n in frames))
    wait_until(lambda: run.runner.stats.messages >= len(frames), 20, "every frame received")
    status = run.runner.status()
    return run.stop(), status


def landed_ids(lake: Path) -> list[int]:
    return sorted(Lake(str(lake)).scan("ticks_trades").collect()["trade_id"].to_list())


def table(lake: Path, name: str) -> pl.DataFrame:
    return Lake(str(lake)).scan(name).collect()


def checkpoint(lake: Path) -> int:
    state = StateStore(str(lake), "binance").read()
    assert state is not None
    return state["symbols"][SYMBOL]["last_trade_id"]


def test_a_bogus_trade_id_is_quarantined_and_every_real_trade_lands_then_and_after_a_restart(
    tmp_path: Path, landing: Callable[..., Any]
):
    with ScriptedWebsocket() as ws:
        stats, status = land(ws, tmp_path, landing, [*range(1000, 1100), BOGUS, *range(1100, 1200)])
        assert landed_ids(tmp_path) == list(range(1000, 1200))
        assert (stats.outliers, stats.duplicates) == (1, 0)
        assert status.outliers == 1 and "1 id outliers" in status.drops
        assert checkpoint(tmp_path) == 1199

        quarantined = table(tmp_path, "quarantine")
        assert quarantined.height == 1
        assert quarantined["reason"][0].startswith(
            f"trade id outlier: {BOGUS} is 5,000,000 ids past BTCUSDT's sequence at 1099"
        )
        assert orjson.loads(quarantined["payload"][0])["trade_id"] == BOGUS
        kinds = table(tmp_path, "stream_events")["kind"].to_list()
        assert kinds.count("id_jump_held") == 1 and kinds.count("id_outlier") == 1
        assert "gap" not in kinds

        land(ws, tmp_path, landing, list(range(1200, 1290)))
    assert landed_ids(tmp_path) == list(range(1000, 1290))
    assert checkpoint(tmp_path) == 1289


def test_a_real_jump_is_confirmed_by_the_trades_after_it_and_lands_with_its_gap(
    tmp_path: Path, landing: Callable[..., Any]
):
    """A reconnect after an outage: the ids go on from the new one."""
    after = list(range(2_000_000, 2_000_050))
    with ScriptedWebsocket() as ws:
        stats, _ = land(ws, tmp_path, landing, [*range(1000, 1100), *after])
    assert landed_ids(tmp_path) == [*range(1000, 1100), *after]
    assert stats.outliers == 0 and stats.gaps == 1
    events = table(tmp_path, "stream_events")
    confirmed = events.filter(pl.col("kind") == "id_jump_confirmed")["detail"].to_list()
    assert [orjson.loads(d)["trade_id"] for d in confirmed] == [2_000_000]
    gap = orjson.loads(events.filter(pl.col("kind") == "gap")["detail"][0])
    assert (gap["first_id"], gap["last_id"]) == (1100, 1_999_999)
    assert checkpoint(tmp_path) == 2_000_049


def test_a_jump_still_unconfirmed_at_stop_is_quarantined_and_not_checkpointed(
    tmp_path: Path, landing: Callable[..., Any]
):
    with ScriptedWebsocket() as ws:
        stats, status = land(ws, tmp_path, landing, [*range(1000, 1100), BOGUS])
    assert status.held == 1 and "(1 held)" in status.drops
    assert landed_ids(tmp_path) == list(range(1000, 1100))
    assert stats.outliers == 1 and checkpoint(tmp_path) == 1099
    reason = table(tmp_path, "quarantine")["reason"][0]
    assert "not confirmed by later trades before the stream stopped" in reason


def test_repeats_of_landed_trades_do_not_refute_a_held_jump(
    tmp_path: Path, landing: Callable[..., Any]
):
    """During a rollover both connections repeat old ids; only new ids in the old sequence
    count against a held jump."""
    frames = [*range(1000, 1100), 50_000, *range(1090, 1100), 50_001, 50_002]
    with ScriptedWebsocket() as ws:
        stats, _ = land(ws, tmp_path, landing, frames)
    assert landed_ids(tmp_path) == [*range(1000, 1100), 50_000, 50_001, 50_002]
    assert stats.outliers == 0 and stats.duplicates == 10
