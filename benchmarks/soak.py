"""Soak: the stream for minutes at ten times a busy market, the 24 h rollover every minute.

    uv run --frozen python -m benchmarks.soak              # 10 minutes
    uv run --frozen python -m benchmarks.soak --minutes 3

Not part of `python -m benchmarks` (one run takes minutes and proves flatness, not speed).
The websocket simulator runs in its own process with its max-rate sender paced at
`--rate` trades per second per symbol (`--max-rate --rate`), each trade with a bookTicker
and every tenth with a depth20. Ids are a function of time shared by every connection, so
two connections open at once (a rollover) carry the same trades, as Binance's do.

The rate: a busy market is Binance's busiest spot pair in a busy hour, about 100 trades a
second (BTCUSDT's busy 2024 days held 3-9M trades, 35-100 a second on average, with
bursts of 1,000). Ten times that is 1,000 trades/s per symbol; two symbols with their
bookTickers and depth make ~4,200 frames/s, far below the lander's ~120k msg/s ceiling
(benchmarks/RESULTS.md), so what a soak can show is drift, not saturation.

The rollover: the lander (StreamRunner, in this process) opens a replacement connection
`rollover_margin_s` before `max_connection_age_s` (Binance cuts at 24 h); both are
StreamConfig parameters, set here so the rollover comes every `--rollover-s` seconds.

Every `--sample-s` seconds it prints, for the trades committed in that window, landing
latency received_at -> commit and ts -> commit (p50/p99, ms) and the process's RSS; at the
end it checks that each symbol's trade ids in `ticks_trades` are contiguous (nothing lost
across a rollover), counts the rollovers from `stream_events`, and compares the first
minute with the last. Exit status 1 if an id was lost or no rollover happened.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.common import free_port
from marketlake.lake import Lake
from streaming.config import StreamConfig
from streaming.service import StreamRunner

ROOT = Path(__file__).resolve().parents[1]
#: Ten times a busy market (see the module docstring), trades per second per symbol.
DEFAULT_RATE = 1_000.0
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")


@dataclass
class Window:
    """Lags (ms) of the trades committed since the last sample."""

    received: list[np.ndarray] = field(default_factory=list)
    event: list[np.ndarray] = field(default_factory=list)
    rows: int = 0


@dataclass
class Sample:
    at_s: float
    rows: int
    received_p50: float
    received_p99: float
    event_p50: float
    event_p99: float
    rss_mib: float

    def line(self) -> str:
        return (
            f"{self.at_s:7.0f} s  {self.rows:>8,} trades  "
            f"received->commit p50 {self.received_p50:7.0f} ms  p99 {self.received_p99:7.0f} ms  "
            f"ts->commit p50 {self.event_p50:7.0f} ms  p99 {self.event_p99:7.0f} ms  "
            f"RSS {self.rss_mib:6.0f} MiB"
        )


class Recorder:
    """The commit hook: lags of every committed trade, gathered per sampling window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = Window()

    def on_commit(self, table: str, frame: pl.DataFrame, committed_us: int) -> None:
        if table != "ticks_trades" or frame.height == 0:
            return
        received = frame["received_at"].dt.epoch("us").to_numpy()
        event = frame["ts"].dt.epoch("us").to_numpy()
        with self._lock:
            self._window.received.append((committed_us - received) / 1000)
            self._window.event.append((committed_us - event) / 1000)
            self._window.rows += frame.height

    def take(self) -> Window:
        with self._lock:
            window, self._window = self._window, Window()
        return window


def rss_mib() -> float:
    """This process's resident set (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def sample(at_s: float, window: Window) -> Sample:
    def pct(parts: list[np.ndarray], q: float) -> float:
        return float(np.percentile(np.concatenate(parts), q)) if parts else float("nan")

    return Sample(
        at_s,
        window.rows,
        pct(window.received, 50),
        pct(window.received, 99),
        pct(window.event, 50),
        pct(window.event, 99),
        rss_mib(),
    )


def start_simulator(port: int, rate: float) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "marketlake.simulator.websocket",
        "--port", str(port), "--max-rate", "--rate", str(rate),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.readline()  # "websocket simulator at ..." once it listens
    return process


def contiguity(lake: Lake, symbols: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per symbol: ids landed, first, last and how many ids between are missing."""
    ids = lake.scan("ticks_trades").select("symbol", "trade_id").unique().collect()
    out = {}
    for symbol in symbols:
        mine = ids.filter(pl.col("symbol") == symbol)["trade_id"]
        first, last = int(mine.min()), int(mine.max())
        out[symbol] = {
            "ids": mine.len(),
            "first": first,
            "last": last,
            "missing": last - first + 1 - mine.len(),
        }
    return out


def run(minutes: float, rate: float, symbols: Sequence[str], rollover_s: float, every_s: float):
    port = free_port()
    simulator = start_simulator(port, rate)
    recorder = Recorder()
    samples: list[Sample] = []
    try:
        with tempfile.TemporaryDirectory(prefix="marketlake-soak-") as tmp:
            config = StreamConfig(
                exchange="binance",
                symbols=list(symbols),
                ws_url=f"ws://127.0.0.1:{port}",
                lake=str(Path(tmp) / "lake"),
                duration_s=minutes * 60,
                max_connection_age_s=rollover_s * 1.5,
                rollover_margin_s=rollover_s * 0.5,
                handle_signals=False,
            )
            runner = StreamRunner(config, on_commit=recorder.on_commit)
            outcome: dict[str, object] = {}
            thread = threading.Thread(
                target=lambda: outcome.setdefault("stats", runner.run()), daemon=True
            )
            started = time.monotonic()
            thread.start()
            print(
                f"soak: {len(symbols)} symbols x {rate:,.0f} trades/s for {minutes:g} min, "
                f"rollover every {rollover_s:g} s, a sample every {every_s:g} s",
                flush=True,
            )
            next_at = started + every_s
            while thread.is_alive():
                thread.join(max(0.0, next_at - time.monotonic()))
                if time.monotonic() >= next_at:
                    samples.append(sample(time.monotonic() - started, recorder.take()))
                    print(samples[-1].line(), flush=True)
                    next_at += every_s
            stats = outcome.get("stats")
            lake = Lake(config.lake)
            ids = contiguity(lake, symbols)
            events = lake.scan("stream_events").select("kind").collect()["kind"]
            rollovers = int((events == "rollover").sum())
    finally:
        simulator.terminate()
        simulator.wait(30)
    return samples, ids, rollovers, stats


def report(samples: list[Sample], ids: dict, rollovers: int, every_s: float) -> bool:
    per_minute = max(1, round(60 / every_s))
    first, last = samples[:per_minute], samples[-per_minute:]

    def mean(values: list[float]) -> float:
        finite = [v for v in values if v == v]
        return sum(finite) / len(finite) if finite else float("nan")

    print("first minute vs last minute (means of the samples):")
    for name in ("received_p50", "received_p99", "event_p99", "rss_mib"):
        a, b = mean([getattr(s, name) for s in first]), mean([getattr(s, name) for s in last])
        print(f"  {name:<13} {a:8.0f} -> {b:8.0f}")
    print(f"rollovers: {rollovers}")
    lost = False
    for symbol, seen in ids.items():
        print(
            f"  {symbol}: {seen['ids']:,} trade ids {seen['first']}..{seen['last']}, "
            f"{seen['missing']:,} missing"
        )
        lost |= seen["missing"] != 0
    print("nothing lost across the rollovers" if not lost else "TRADE IDS WERE LOST")
    return not lost and rollovers > 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="trades/s per symbol")
    parser.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS))
    parser.add_argument("--rollover-s", type=float, default=60.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.rollover_s <= 0 or args.sample_s <= 0:
        parser.error("--minutes, --rate, --rollover-s and --sample-s must be > 0")
    symbols = [s for s in args.symbols.split(",") if s]
    samples, ids, rollovers, _ = run(
        args.minutes, args.rate, symbols, args.rollover_s, args.sample_s
    )
    return 0 if report(samples, ids, rollovers, args.sample_s) else 1


if __name__ == "__main__":
    raise SystemExit(main())
