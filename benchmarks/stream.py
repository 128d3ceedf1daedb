"""Stream landing and stream latency: the hook for `streaming.benchmark`.

The lander's own benchmark (`python -m streaming.benchmark throughput|latency`, owned by
the streaming service) runs in a child process (it pins itself to one core) and prints
JSON; its numbers become rows here. The comparison for throughput is measured here, in
the same run: a bare `websockets` client (permessage-deflate off) receiving and
`orjson.loads`-ing the same pre-encoded frames from the same simulator, on one core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Context, Row, free_port
from streaming.benchmark import SYMBOLS

NAME = "stream"
ROOT = Path(__file__).resolve().parents[1]
BAR_MSGS = 100_000
PUBLISHED_WS_TO_KAFKA = 10_000
STREAM_KINDS = ("trade", "bookTicker", "depth20@100ms")


def _json_children(commands: list[list[str]], *, timeout: float) -> list[dict]:
    """Run `python ARGS...` children one after another and parse the JSON each prints last.

    One at a time, `--quick` too: run at once, the max-rate throughput child starves the
    others on a small machine, and a starved latency child times no commit at all.
    """
    results: list[dict] = []
    for args in commands:
        child = subprocess.run(
            [sys.executable, *args], cwd=ROOT, text=True, capture_output=True, timeout=timeout
        )
        if child.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {child.stderr[-2000:]}")
        results.append(json.loads(child.stdout[child.stdout.index("{") :]))
    return results


def bare_client(seconds: float, symbols: list[str]) -> dict:
    """Child side: frames/s a bare websockets client receives and parses on one core."""
    import orjson
    from websockets.sync.client import connect

    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    port = free_port()
    pin = ["taskset", "-c", "1"] if (os.cpu_count() or 1) > 1 else []
    sim = subprocess.Popen(
        [*pin, sys.executable, "-m", "marketlake.simulator.websocket", "--port", str(port),
         "--max-rate"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        sim.stdout.readline()  # type: ignore[union-attr]  # "websocket simulator at ..."
        streams = "/".join(f"{s.lower()}@{k}" for s in symbols for k in STREAM_KINDS)
        url = f"ws://127.0.0.1:{port}/stream?streams={streams}"
        frames = 0
        with connect(url, compression=None, max_size=None) as ws:
            for _ in range(2000):  # warm up
                orjson.loads(ws.recv())
            started = time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                for _ in range(1000):
                    orjson.loads(ws.recv())
                frames += 1000
    finally:
        sim.terminate()
        sim.wait(10)
    return {"frames_per_s": frames / elapsed}


def run(ctx: Context) -> list[Row]:
    available = list(SYMBOLS)
    # the lander reports once a second: --quick needs two reports after the warm-up
    seconds, bare_s, latency_s, warmup = (3.0, 1.0, 2.0, 0.5) if ctx.quick else (20, 10, 20, 3)
    runs = 1 if ctx.quick else max(1, ctx.runs - 1)
    counts = [2] if ctx.quick else [2, 50]
    symbols = {n: min(n, len(available)) for n in counts}
    commands = []
    for n in counts:
        for _ in range(runs):
            commands.append(
                [
                    "-m",
                    "streaming.benchmark",
                    "throughput",
                    "--seconds",
                    str(seconds),
                    "--symbols",
                    str(symbols[n]),
                    "--warmup",
                    str(warmup),
                ]
            )
            commands.append(
                ["-m", "benchmarks.stream", "bare", str(bare_s), *available[: symbols[n]]]
            )
    for _ in range(runs):
        commands.append(["-m", "streaming.benchmark", "latency", "--seconds", str(latency_s),
                         "--trades-per-s", "500", "--symbols", "2"])  # fmt: skip
    results = iter(_json_children(commands, timeout=seconds * 4 + 120))

    rows = []
    for n in counts:
        landed, bare = [], []
        for _ in range(runs):
            landed.append(next(results))
            bare.append(next(results)["frames_per_s"])
            ctx.log(f"  stream landing {symbols[n]} symbols: {landed[-1]}; bare {bare[-1]:,.0f}/s")
        rows.append(
            Row(
                "stream landing",
                f"{symbols[n]} symbols, trade + bookTicker + depth20, parsed and landed, one core",
                "msg/s",
                [float(r["frames_per_s"]) for r in landed],
                bar=BAR_MSGS,
                compare=(
                    f"bare websockets + orjson.loads client {sorted(bare)[len(bare) // 2]:,.0f} "
                    f"msg/s; published websocket→Kafka producer {PUBLISHED_WS_TO_KAFKA:,} msg/s"
                ),
                note=""
                if symbols[n] == n
                else f"streaming.benchmark offers {len(available)} symbols, not {n}",
            )
        )
    latency = [next(results) for _ in range(runs)]
    for result in latency:
        ctx.log(f"  stream latency: {result}")
    return [*rows, *latency_rows(latency, latency_s)]


def latency_rows(latency: list[dict], seconds: float) -> list[Row]:
    """The p50 and p99 rows of the latency children's results, seconds.

    A run that timed no commit (no trade landed while it streamed: a starved child on a
    loaded machine) has no percentiles; it gives no sample and the rows say how many runs
    that was, rather than a number that was never measured.
    """
    timed = [r for r in latency if "p50" in r["event_to_commit_ms"]]
    p50 = [float(r["event_to_commit_ms"]["p50"]) / 1000 for r in timed]
    p99 = [float(r["event_to_commit_ms"]["p99"]) / 1000 for r in timed]
    compare = f"the flush interval {latency[0].get('flush_interval_s')} s (the floor)"
    untimed = len(latency) - len(timed)
    note = (
        f"no latency samples in {untimed} of {len(latency)} runs: no trade was committed "
        f"in its {seconds:g} s of streaming"
        if untimed
        else ""
    )
    return [
        Row("stream latency", "event → readable in Delta, p50, 1,000 trades/s", "s", p50,
            bar=1.0, better="lower", fmt="{:.2f}", compare=compare, note=note),
        Row("stream latency", "event → readable in Delta, p99, 1,000 trades/s", "s", p99,
            bar=2.0, better="lower", fmt="{:.2f}", compare=compare, note=note),
    ]  # fmt: skip


if __name__ == "__main__" and sys.argv[1:2] == ["bare"]:
    print(json.dumps(bare_client(float(sys.argv[2]), sys.argv[3:])))
