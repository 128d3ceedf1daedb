"""Every fault at once, on the whole pipeline, against the simulator's ground truth.

3 symbols x 2 days. Day 1 is history only: two overlapping backfills run at once (as two
`marketlake backfill` processes, the way two users in two terminals would), and BTCUSDT's
archive is served truncated, then with a bad checksum, then with well-formed repeated rows
under a valid checksum, then correctly. Day 2 is "today" on the market clock: the lander
(``python -m streaming``) streams it through websocket drops every 10 s, 1% of trades
skipped, 1% sent twice, 2% of frames malformed, one bogus trade id and a stall; it is
SIGKILLed twice and restarted, and its REST gap fills meet a 429 burst with Retry-After,
503s and one answer past the client's timeout. Day 2 is backfilled from REST and built
(`trades`, `quotes`, compaction of the live tables) while the lander still appends.

Shortened from the issue so the scenario stays a few minutes: the stall is 6 s (not 30 s),
and the lander streams only while the backfills and the first build run; every fault still
happens, and the test asserts it did.
Backfills and builds other than the concurrent pair call the functions `marketlake backfill`
and `marketlake build` call (`orchestration.partition_runs`), in-process, against the same lake and
Dagster instance: a CLI process costs seconds of start-up each.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console
from support.scenario import LanderProcess, audit_delta_history, market_clock
from support.waiting import wait_until

from marketlake.instruments import Instrument
from marketlake.lake import Lake
from marketlake.simulator import data
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator
from marketlake.simulator.websocket import WsSimulator
from orchestration import partition_runs
from orchestration.report import RunReport
from orchestration.settings import Settings
from streaming import StateStore

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
#: 5 trades a second per symbol: enough for every 1% fault to hit several times a minute,
#: small enough that a whole archive day builds and loads in seconds.
CONFIG = SimConfig(seed=11, trades_per_day=432_000, symbols=SYMBOLS)
INSTRUMENTS = [Instrument("binance", s) for s in SYMBOLS]
BTC = Instrument("binance", "BTCUSDT")
DAY1, DAY2 = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
START = dt.datetime.combine(DAY2, dt.time(0, 0, 10), tzinfo=dt.UTC)
RAW = ["trade_id", "price", "qty", "quote_qty", "ts", "is_buyer_maker"]
STALL_S = 6.0
#: Websocket drops the scenario sees at the least (one every 10 s while the lander runs).
MIN_DROPS = 3
#: One REST answer this late: past the lander's REST client timeout (10 s).
SLOW_ANSWER_S = 11.0
BOGUS_JUMP = 5_000_000
KILLS = 2


@dataclass
class Figures:
    """What the scenario did, printed at the end (``pytest -s``) and asserted."""

    kills: int = 0
    landers: list[LanderProcess] = field(default_factory=list)
    archive_attempts: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    trades_history_versions: list[int] = field(default_factory=list)


def quarantined_rows(lake: Lake) -> int:
    if not lake.exists("quarantine"):
        return 0
    return lake.scan("quarantine").select(pl.len()).collect().item()


def problems(report: RunReport) -> list[tuple[str, str | None, list[str]]]:
    """The partitions of a run that failed or had a failing check, and why."""
    return [
        (o.key, o.error, o.checks_failed) for o in report.outcomes if not o.ok or o.checks_failed
    ]


def quiet() -> Console:
    return Console(file=io.StringIO(), width=160)


def cli(*args: str, cwd: Path, http: Simulator) -> subprocess.Popen[str]:
    """`marketlake ...` as a user runs it, pointed at the simulator."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAKE_", "DAGSTER_"))},
        "MARKETLAKE_BINANCE_ARCHIVE_URL": http.base_url,
        "MARKETLAKE_BINANCE_REST_URL": http.base_url,
        "COLUMNS": "160",
    }
    command = [sys.executable, "-m", "orchestration.cli", *args]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


class Lander:
    """The lander's story on day 2, on a thread beside the backfills and builds."""

    def __init__(
        self, ws: WsSimulator, rest: Simulator, lake: Path, logs: Path, figures: Figures
    ) -> None:
        self.ws, self.rest, self.lake, self.logs, self.figures = ws, rest, lake, logs, figures
        self.last_running = threading.Event()
        self.finish = threading.Event()
        self.error: BaseException | None = None
        self.exit_status: int | None = None
        self._thread = threading.Thread(target=self._run, name="lander-story", daemon=True)

    def __enter__(self) -> Lander:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish.set()
        self._thread.join(900)
        for lander in self.figures.landers:
            lander.ensure_stopped()

    def join(self) -> None:
        self.finish.set()
        self._thread.join(900)
        assert not self._thread.is_alive(), "the lander's story did not end"
        if self.error is not None:
            raise self.error

    def _start(self) -> LanderProcess:
        number = len(self.figures.landers) + 1
        process = LanderProcess(
            SYMBOLS, self.ws.url, self.rest.base_url, self.lake, self.logs, number
        ).start()
        self.figures.landers.append(process)
        return process

    def _all_bad_frames_committed(self) -> None:
        """Stop sending bad frames and wait until each one sent is in `quarantine`, so a
        kill loses no bad frame the test counts (a kill loses the unflushed buffer)."""
        self.ws.faults.malformed_every = None
        stats = self.ws.stats
        lake = Lake(str(self.lake))

        def committed() -> bool:
            sent = len(stats.malformed_frames) + sum(map(len, stats.bogus.values()))
            return quarantined_rows(lake) == sent

        wait_until(committed, 600, "every bad frame sent to be committed to quarantine")

    def _kill(self, lander: LanderProcess) -> None:
        self._all_bad_frames_committed()
        lander.kill()
        self.figures.kills += 1
        time.sleep(1.0)  # the market goes on while nobody listens
        self.ws.faults.malformed_every = 50

    def _run(self) -> None:
        try:
            self._story()
        except BaseException as error:
            self.error = error

    def _story(self) -> None:
        ws, faults = self.ws, self.ws.faults
        faults.drop_every_s = 10.0
        faults.skip_every = 100
        faults.duplicate_every = 101
        faults.malformed_every = 50

        first = self._start()
        wait_until(lambda: checkpointed(self.lake), 120, "the lander's first checkpoint")
        faults.bogus_trades.append(("BTCUSDT", BOGUS_JUMP))
        wait_until(lambda: ws.stats.bogus, 60, "the bogus trade to be sent")
        time.sleep(3)
        self._kill(first)

        # The restarted lander's first connection stalls; its fills meet REST's faults.
        faults.stall_after_s, faults.stall_for_s = 0.0, STALL_S
        rest = self.rest.faults
        rest.slow_next, rest.slow_next_seconds = 1, SLOW_ANSWER_S
        rest.fail_429, rest.retry_after_s = 3, 1
        rest.fail_5xx = 2
        connections = ws.stats.connections
        second = self._start()
        wait_until(lambda: ws.stats.connections > connections, 60, "the second lander")
        time.sleep(STALL_S + 1)
        faults.stall_after_s = None
        wait_until(
            lambda: rest.slow_next == rest.fail_429 == rest.fail_5xx == 0,
            120,
            "the lander's gap fills to meet every REST fault",
        )
        time.sleep(2)
        self._kill(second)

        last = self._start()
        self.last_running.set()
        while not self.finish.wait(0.5):
            assert last.alive(), f"the last lander died:\n{last.error_text()}"
        # On a quick machine the backfills end before the drops (one every 10 s) add up:
        # the last lander streams on until the websocket has dropped it several times.
        wait_until(lambda: ws.stats.drops >= MIN_DROPS, 120, f"{MIN_DROPS} websocket drops")
        assert last.alive(), f"the last lander died:\n{last.error_text()}"
        self._all_bad_frames_committed()
        ws.paused = True
        time.sleep(1.0)
        self.exit_status = last.terminate(timeout=600)


def checkpointed(lake: Path) -> bool:
    try:
        state = StateStore(str(lake), "binance").read()
    except ValueError:
        return False
    return bool(state) and set(state["symbols"]) == set(SYMBOLS)


@pytest.fixture
def exchange() -> Iterator[tuple[Simulator, Simulator, WsSimulator]]:
    """The exchange on a market clock a few seconds into day 2: archive and REST for the
    backfills and builds, a second REST endpoint (same universe) for the lander's gap fills
    (so its faults meet the lander and nothing else), and the websocket."""
    clock = market_clock(START)
    with (
        Simulator(CONFIG, clock=clock) as http,
        Simulator(CONFIG, clock=clock) as lander_rest,
        WsSimulator(CONFIG, clock=clock) as ws,
    ):
        yield http, lander_rest, ws


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a bound on a hang only: a loaded 2-core machine takes minutes
def test_under_every_fault_at_once_trades_equal_the_truth_and_quarantine_holds_the_bad_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange
) -> None:
    http, lander_rest, ws = exchange
    began = time.perf_counter()
    lake_path = tmp_path / "lake"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / ".dagster_home"))
    settings = replace(
        Settings(),
        lake=str(lake_path),
        binance_archive_url=http.base_url,
        binance_rest_url=http.base_url,
        binance_ws_url=ws.url,
    )
    lake = Lake(str(lake_path))
    figures = Figures()

    with Lander(ws, lander_rest, lake_path, tmp_path / "logs", figures) as lander:
        # Day 1: two users backfill overlapping partitions at once (SOLUSDT in both), while
        # the archive answers its first two requests with 503.
        http.faults.archive_fail_5xx = 2
        # On a fresh $DAGSTER_HOME: the two also race to create the Dagster instance.
        both = [
            cli("backfill", "ETHUSDT,SOLUSDT", "--start", str(DAY1), "--lake", "lake",
                cwd=tmp_path, http=http),
            cli("backfill", "SOLUSDT", "--start", str(DAY1), "--lake", "lake",
                cwd=tmp_path, http=http),
        ]  # fmt: skip
        try:
            for process in both:
                out, err = process.communicate(timeout=900)
                assert process.returncode == 0, f"{out}\n{err}"
        finally:
            for process in both:
                if process.poll() is None:
                    process.kill()
                    process.wait(30)
        assert http.stats.statuses[503] == 2

        # BTCUSDT day 1: three bad archives are refused and write nothing, the good one lands.
        key = ("BTCUSDT", DAY1)
        for fault, knob in (
            ("truncated zip", http.faults.corrupt_zip),
            ("wrong checksum", http.faults.wrong_checksum),
            ("repeated rows, valid checksum", http.faults.repeated_rows),
        ):
            before = lake.version("trades_history")
            knob.add(key)
            report = partition_runs.backfill(settings, [BTC], DAY1, DAY1, console=quiet())
            knob.discard(key)
            (outcome,) = report.outcomes
            figures.archive_attempts.append(
                (fault, report.ok, outcome.checks_failed or [outcome.error or ""])
            )
            assert not report.ok, fault
            assert lake.version("trades_history") == before, f"{fault}: a commit was made"
            held = lake.scan("trades_history", symbol="BTCUSDT", date=DAY1).collect()
            assert held.height == 0, f"{fault}: rows were written"
        report = partition_runs.backfill(settings, [BTC], DAY1, DAY1, console=quiet())
        assert problems(report) == []
        figures.archive_attempts.append(("served correctly", True, []))

        # Day 2, the day so far, from REST; then a build beside the lander's appends.
        report = partition_runs.backfill(
            settings, INSTRUMENTS, DAY2, DAY2, source="rest", console=quiet()
        )
        assert problems(report) == []
        wait_until(lander.last_running.is_set, 600, "the lander's second restart")
        time.sleep(3)
        report = partition_runs.build(settings, [BTC], DAY2, DAY2, console=quiet())
        assert problems(report) == []
        time.sleep(2)  # the lander appends after the compaction too
        lander.join()
    assert lander.exit_status == 0, figures.landers[-1].error_text()

    report = partition_runs.build(settings, INSTRUMENTS, DAY1, DAY2, console=quiet())
    assert problems(report) == []

    # `trades` is the ground truth: day 1 whole, day 2 from its first trade to the last
    # trade the websocket sent; every id once, every value exact.
    expected = landed = duplicated = 0
    for symbol in SYMBOLS:
        day1 = lake.scan("trades", symbol=symbol, date=DAY1).collect().sort("trade_id")
        truth1 = data.day_raw_trades(symbol, DAY1, CONFIG)
        assert day1.select(RAW).equals(truth1.select(RAW)), f"{symbol} {DAY1}"

        last_sent = max(ws.stats.sent_trade_ids[symbol])
        day2 = lake.scan("trades", symbol=symbol, date=DAY2).collect().sort("trade_id")
        truth2 = data.day_raw_trades(symbol, DAY2, CONFIG).filter(pl.col("trade_id") <= last_sent)
        assert day2.select(RAW).equals(truth2.select(RAW)), f"{symbol} {DAY2}"
        expected += truth1.height + truth2.height
        landed += day1["trade_id"].n_unique() + day2["trade_id"].n_unique()
        duplicated += day1.height + day2.height - day1["trade_id"].n_unique()
        duplicated -= day2["trade_id"].n_unique()

        # The lander's own table: whatever was sent twice or re-fetched may repeat (at least
        # once), but from its first id to the last sent nothing is missing, nothing is
        # made up (no bogus id) and every value is the truth's.
        ticks = lake.scan("ticks_trades", symbol=symbol, date=DAY2).collect()
        unique = ticks.unique("trade_id").sort("trade_id")
        first_id = unique["trade_id"][0]
        assert unique["trade_id"].to_list() == list(range(first_id, last_sent + 1)), symbol
        truth_ticks = truth2.filter(pl.col("trade_id") >= first_id)
        assert unique.select(RAW).equals(truth_ticks.select(RAW)), symbol

    # `quarantine` holds exactly the bad frames: each malformed frame sent, once, and the
    # bogus trade as an id outlier.
    quarantine = lake.scan("quarantine").collect()
    outliers = quarantine.filter(pl.col("reason").str.starts_with("trade id outlier"))
    bogus_ids = [i for ids in ws.stats.bogus.values() for i in ids]
    assert outliers.height == len(bogus_ids) == 1
    assert str(bogus_ids[0]) in outliers["payload"][0]
    malformed = quarantine.filter(~pl.col("reason").str.starts_with("trade id outlier"))
    sent_bad = collections.Counter(frame.decode() for frame in ws.stats.malformed_frames)
    assert collections.Counter(malformed["payload"].to_list()) == sent_bad
    reasons = malformed.group_by("reason").agg(pl.len(), pl.col("payload").n_unique()).sort("len")
    assert (reasons["reason"].str.len_chars() > 0).all()

    # No Delta commit ever held rows that failed an ERROR check.
    audits = [audit_delta_history(lake_path / t) for t in ("trades_history", "trades")]
    for audit in audits:
        assert audit.failures == []

    # Every fault happened.
    assert figures.kills == KILLS
    assert ws.stats.drops >= MIN_DROPS
    assert lander_rest.stats.statuses[429] >= 3 and lander_rest.stats.statuses[503] >= 2
    stalled_or_skipped = sum(map(len, ws.stats.skipped_trade_ids.values()))
    statuses = [p.status_lines()[-1] for p in figures.landers if p.status_lines()]
    summary = figures.landers[-1].summary()
    print_figures(
        figures,
        ws,
        lander_rest,
        expected=expected,
        landed=landed,
        duplicated=duplicated,
        skipped=stalled_or_skipped,
        quarantine=quarantine,
        reasons=reasons,
        statuses=statuses,
        summary=summary,
        audits=audits,
        seconds=time.perf_counter() - began,
    )


def print_figures(figures: Figures, ws: WsSimulator, rest: Simulator, **f) -> None:
    duplicated_sent = sum(
        1 for ids in ws.stats.sent_trade_ids.values() for i in ids if i % 101 == 0
    )
    lines = [
        "fault scenario figures",
        f"  trades expected {f['expected']:,}  landed {f['landed']:,}  "
        f"duplicated {f['duplicated']:,}  missing {f['expected'] - f['landed']:,}",
        f"  websocket: {ws.stats.connections} connections ({ws.stats.drops} drops), "
        f"{f['skipped']:,} trades not sent (1% skipped + the {STALL_S:g} s stall), "
        f"{duplicated_sent:,} sent twice, {len(ws.stats.malformed_frames)} malformed frames, "
        f"bogus ids {dict(ws.stats.bogus)}",
        f"  lander REST: {dict(rest.stats.statuses)}",
        f"  quarantined {f['quarantine'].height} rows:",
        *(f"    {row['len']:>4} x {row['reason']}" for row in f["reasons"].iter_rows(named=True)),
        "  lander processes (last status line each): "
        + "; ".join(
            f"reconnects {s['reconnects']}, gaps {s['gaps']}, filled {s['gaps_filled']}, "
            f"duplicates {s['duplicates']}, quarantined {s['quarantined']}"
            for s in f["statuses"]
        ),
        f"  last lander summary: {f['summary']}",
        f"  kills survived {figures.kills}",
        f"  archive attempts: {figures.archive_attempts}",
        *(
            f"  {a.table}: {a.versions} versions, {a.partitions_checked} partition-versions "
            f"checked, {len(a.failures)} failing"
            for a in f["audits"]
        ),
        f"  run time {f['seconds']:.1f} s",
    ]
    print("\n".join(lines))
