"""Measure the lander: sustained frames/s on one core, and event time -> readable latency.

    uv run python -m streaming.benchmark throughput --seconds 20 --symbols 2
    uv run python -m streaming.benchmark throughput --exchange okx      # or deribit
    uv run python -m streaming.benchmark latency --seconds 20 --trades-per-s 200

``throughput``: the websocket simulator runs in its own process (pinned to another core when
there is one) in max-rate mode, pushing pre-encoded frames as fast as the socket drains:
per trade a best bid/ask, and every 10th a book (Binance trade + bookTicker + depth20;
OKX trades + bbo-tbt + a checksummed ``books`` update; Deribit trades + quote + a chained
``book`` change, so the lander keeps, verifies and cuts a top 20 of a real book); the
lander (pinned to one core) lands them into a temporary lake with the default flush
settings. Reported: frames/s received and rows/s committed over the steady part of the
run, and frames per CPU-second of the lander (its figure for a core of its own).

``latency``: the live simulator at a realistic rate; for every trade, commit time of its
Delta version minus the exchange's trade time (``T``, ms precision): what a reader polling
the table waits for a trade. p50/p95/p99/max over all trades, at the default 1 s flush.
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import polars as pl

from marketlake.simulator.data import SimConfig
from marketlake.simulator.websocket import WsSimulator
from streaming.config import StreamConfig, StreamStatus
from streaming.service import StreamRunner

#: Instruments of the other venues for ``--exchange`` (any name has a market).
VENUE_SYMBOLS = {
    "okx": tuple(f"{s[:-4]}-USDT" for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")),
    "deribit": ("BTC-PERPETUAL", "ETH-PERPETUAL", "SOL_USDC-PERPETUAL", "XRP_USDC-PERPETUAL"),
}
#: The venues' websocket paths on the simulator.
VENUE_PATHS = {"binance": "", "okx": "/ws/v5/public", "deribit": "/ws/api/v2"}

#: Fifty Binance spot USDT pairs (the simulator makes a market for any name).
SYMBOLS = (
    "BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "TRXUSDT",
    "AVAXUSDT", "LINKUSDT", "DOTUSDT", "LTCUSDT", "BCHUSDT", "XLMUSDT", "UNIUSDT", "ATOMUSDT",
    "ETCUSDT", "FILUSDT", "APTUSDT", "ARBUSDT", "OPUSDT", "NEARUSDT", "ICPUSDT", "AAVEUSDT",
    "SUIUSDT", "SEIUSDT", "INJUSDT", "TIAUSDT", "HBARUSDT", "VETUSDT", "ALGOUSDT", "SANDUSDT",
    "MANAUSDT", "AXSUSDT", "EGLDUSDT", "THETAUSDT", "FTMUSDT", "GRTUSDT", "RUNEUSDT", "MKRUSDT",
    "LDOUSDT", "CRVUSDT", "SNXUSDT", "COMPUSDT", "DYDXUSDT", "PEPEUSDT", "SHIBUSDT", "WLDUSDT",
    "JUPUSDT", "ENAUSDT",
)  # fmt: skip


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def _start_simulator_process(port: int, extra: list[str]) -> subprocess.Popen[str]:
    cpus = os.cpu_count() or 1
    prefix = ["taskset", "-c", "1"] if cpus > 1 and _has("taskset") else []
    command = [
        *prefix,
        sys.executable,
        "-m",
        "marketlake.simulator.websocket",
        "--port",
        str(port),
        *extra,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.readline()  # "websocket simulator at ..."
    return process


def _has(program: str) -> bool:
    return any(Path(d, program).exists() for d in os.environ.get("PATH", "").split(os.pathsep))


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of another process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def throughput(
    seconds: float, symbols: int, warmup: float, exchange: str = "binance"
) -> dict[str, object]:
    _pin(0)
    port = _free_port()
    sim = _start_simulator_process(port, ["--max-rate"])
    samples: list[tuple[float, int, int, float]] = []

    def status(s: StreamStatus) -> None:
        cpu = os.times()
        rows = sum(s.rows_landed.values())
        samples.append((time.monotonic(), s.messages, rows, cpu.user + cpu.system))

    try:
        with tempfile.TemporaryDirectory() as lake:
            config = StreamConfig(
                exchange=exchange,
                symbols=VENUE_SYMBOLS.get(exchange, SYMBOLS)[:symbols],
                ws_url=f"ws://127.0.0.1:{port}{VENUE_PATHS[exchange]}",
                lake=lake,
                duration_s=seconds,
                status_callback=status,
                status_interval_s=1.0,
                handle_signals=False,
            )
            runner = StreamRunner(config)
            stats = runner.run()
    finally:
        sim_cpu = None if not samples else _process_cpu_s(sim.pid)
        sim.terminate()
        sim.wait(10)
    steady = [s for s in samples if s[0] - samples[0][0] >= warmup] if samples else []
    if len(steady) >= 2:
        (t0, m0, r0, c0), (t1, m1, r1, c1) = steady[0], steady[-1]
        frames_per_s = (m1 - m0) / (t1 - t0)
        rows_per_s = (r1 - r0) / (t1 - t0)
        cpu_percent = 100 * (c1 - c0) / (t1 - t0)
    else:
        frames_per_s = rows_per_s = cpu_percent = float("nan")
    wall = (samples[-1][0] - samples[0][0]) if len(samples) > 1 else float("nan")
    return {
        "mode": "throughput",
        "exchange": exchange,
        "symbols": symbols,
        "seconds": seconds,
        "frames_per_s": round(frames_per_s),
        "rows_committed_per_s": round(rows_per_s),
        "messages": stats.messages,
        "rows_landed": stats.rows_landed,
        "flushes": stats.flushes,
        "commits": stats.commits,
        "flushes_grouped": stats.flushes_grouped,
        "unwritten_rows": stats.unwritten_rows,
        "lander_cpu_percent": round(cpu_percent),
        # What one core would land if the lander had it to itself (a shared machine gives
        # it less): frames per CPU-second the lander used.
        "frames_per_cpu_s": round(frames_per_s * 100 / cpu_percent) if cpu_percent > 0 else None,
        "simulator_cpu_s_per_s": round(sim_cpu / wall, 2) if sim_cpu is not None else None,
        "duplicates": stats.duplicates,
        "gaps": stats.gaps,
        "quarantined": stats.quarantined,
        "book_breaks": stats.book_breaks,
    }


def latency(seconds: float, trades_per_s: float, symbols: int) -> dict[str, object]:
    config = SimConfig(trades_per_day=int(trades_per_s * 86400), symbols=SYMBOLS[:symbols])
    lags: list[np.ndarray] = []
    lock = threading.Lock()

    def on_commit(table: str, frame: pl.DataFrame, committed_us: int) -> None:
        if table == "ticks_trades":
            ts = frame.get_column("ts").dt.epoch("us").to_numpy()
            with lock:
                lags.append((committed_us - ts) / 1000)

    with WsSimulator(config) as sim, tempfile.TemporaryDirectory() as lake:
        stream = StreamConfig(
            exchange="binance",
            symbols=config.symbols,
            ws_url=sim.url,
            lake=lake,
            handle_signals=False,
        )
        runner = StreamRunner(stream, on_commit=on_commit)
        threading.Thread(target=_stop_once_flowed, args=(runner, seconds), daemon=True).start()
        stats = runner.run()
    values = np.concatenate(lags) if lags else np.array([])
    pct = (
        {f"p{q}": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}
        if values.size
        else {}
    )
    return {
        "mode": "latency",
        "trades": int(values.size),
        "trades_per_s": trades_per_s * symbols,
        "flush_interval_s": stream.flush_interval_s,
        "event_to_commit_ms": {
            **pct,
            "max": round(float(values.max()), 1) if values.size else None,
        },
        "messages": stats.messages,
    }


def _stop_once_flowed(runner: StreamRunner, seconds: float, connect_s: float = 60.0) -> None:
    """Stop ``runner`` ``seconds`` after its first frame (or after ``connect_s`` without one).

    Timed from the first frame, not from the start: a child starved on a loaded machine can
    take seconds to connect, and a short run timed from the start could then land no trade
    at all. Connecting is no part of the latency measured.
    """
    deadline = time.monotonic() + connect_s
    while runner.stats.messages == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(seconds)
    runner.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--seconds", type=float, default=20.0)
    t.add_argument("--symbols", type=int, default=2)
    t.add_argument("--warmup", type=float, default=3.0)
    t.add_argument("--exchange", choices=tuple(VENUE_PATHS), default="binance")
    lat = sub.add_parser("latency")
    lat.add_argument("--seconds", type=float, default=20.0)
    lat.add_argument("--trades-per-s", type=float, default=200.0, help="per symbol")
    lat.add_argument("--symbols", type=int, default=2)
    args = parser.parse_args(argv)
    if args.mode == "throughput":
        result = throughput(args.seconds, args.symbols, args.warmup, args.exchange)
    else:
        result = latency(args.seconds, args.trades_per_s, args.symbols)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
