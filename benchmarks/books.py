"""Order-book throughput on one core: book messages applied and verified per second.

Each venue's recorded session (the real captures in ``tests/data/real``) is looped through
the same code a live connection runs: the raw frame is decoded, checked, applied to the local
book, verified (OKX: CRC32 of the top 25 levels and, when sent, the ``seqId`` chain; Deribit:
the ``change_id`` chain; Binance: the ``U``/``u`` chain) and turned into a top-20 ``Depth``.
Each loop starts from the session's own snapshots, so every pass is verified again.
Messages are timed one by one in CPU time (``time.process_time``), so the figure is what one
core does even on a busy machine; snapshots are timed apart from updates.

Run: ``uv run --frozen python -m benchmarks.books [--seconds S] [--runs N]``.
It exposes ``NAME`` and ``run(ctx)`` like the other benchmarks, so it can join the table.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from benchmarks.common import Context, Row
from marketlake.exchanges.binance.depth_sync import (
    BinanceDepthSync,
    parse_depth_snapshot,
    parse_depth_update,
)
from marketlake.exchanges.book import BookEvent
from marketlake.exchanges.deribit.websocket import DeribitParser
from marketlake.exchanges.okx.websocket import OkxParser

NAME = "books"
REAL = Path(__file__).resolve().parents[1] / "tests" / "data" / "real"


def _incoming(path: Path) -> list[tuple[int, bytes]]:
    frames = []
    for line in path.read_bytes().split(b"\n"):
        if line[:1].isdigit():
            stamp, _, frame = line.partition(b": ")
            frames.append((round(float(stamp) * 1_000_000), frame))
    return frames


Pass = Callable[[], tuple[int, float, int, float]]


def _timed(
    apply: Callable[[int, bytes], list],
    frames: list[tuple[int, bytes]],
    venue: str,
    is_snapshot: list[bool] | None = None,
) -> Pass:
    """A pass over ``frames``: (updates, seconds in updates, messages, seconds in all).

    Snapshots are timed apart from updates: a snapshot replaces hundreds of levels at once
    and arrives once per (re)subscription, so it would hide the rate of the updates.
    """
    if is_snapshot is None:
        is_snapshot = [b'"snapshot"' in frame[:200] for _, frame in frames]

    def once() -> tuple[int, float, int, float]:
        updates, update_s, total_s = 0, 0.0, 0.0
        clock = time.process_time  # CPU time: the machine may be shared
        for (received_at_us, frame), snapshot in zip(frames, is_snapshot, strict=True):
            started = clock()
            records = apply(received_at_us, frame)
            elapsed = clock() - started
            total_s += elapsed
            if not snapshot:
                updates += 1
                update_s += elapsed
            for record in records:
                if type(record) is BookEvent:
                    raise AssertionError(f"{venue} book out of sync: {record}")
        return updates, update_s, len(frames), total_s

    return once


def okx_session() -> Pass:
    """The OKX session's 195 ``books`` messages (3 snapshots of 400 levels a side)."""
    frames = [
        f
        for f in _incoming(REAL / "okx" / "cryptofeed_OKX.ws.1.0.head.log")
        if f[1].startswith(b'{"arg":{"channel":"books"')
    ]
    parser = OkxParser(["BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"])
    return _timed(lambda t, frame: parser.parse(frame, t), frames, "OKX")


def deribit_session() -> Pass:
    """The Deribit session's 46 book messages (10 snapshots, 36 changes)."""
    path = REAL / "deribit" / "cryptofeed_DERIBIT.ws.1.0.log"
    frames = [f for f in _incoming(path) if b'"channel":"book.' in f[1]]
    sent = path.read_bytes().split(b"\n")[1].partition(b": ")[2]
    instruments = sorted({c.split(".")[1] for c in orjson.loads(sent)["params"]["channels"]})
    parser = DeribitParser(instruments)
    return _timed(lambda t, frame: parser.parse(frame, t), frames, "Deribit")


def binance_session() -> Pass:
    """The NKNUSDT REST snapshot (609 + 1,000 levels), then its 150 recorded diff events."""
    line = (REAL / "binance_rest" / "cryptofeed_BINANCE.http.0.0.head1.log").read_bytes()
    body = line.rstrip(b"\n").partition(b" -> ")[2].partition(b": ")[2]
    frames = [
        f
        for f in _incoming(REAL / "binance_ws" / "cryptofeed_BINANCE.ws.1.0.log")
        if f[1].startswith(b'{"stream":"nknusdt@depth@100ms"')
    ]
    state: dict[str, BinanceDepthSync] = {}

    def apply(received_at_us: int, frame: bytes) -> list:
        if frame is body:
            state["sync"] = BinanceDepthSync("NKNUSDT")
            return state["sync"].snapshot(parse_depth_snapshot(frame), received_at_us)
        event = parse_depth_update(orjson.loads(frame)["data"])
        return state["sync"].update(event, received_at_us)

    # The snapshot, marked as one, goes first: each pass starts the book again from it.
    return _timed(apply, [(0, body), *frames], "Binance", [True] + [False] * len(frames))


SESSIONS: dict[str, Callable[[], Pass]] = {
    "okx": okx_session,
    "deribit": deribit_session,
    "binance": binance_session,
}


def measure(once: Pass, seconds: float) -> tuple[float, float]:
    """(updates/s, messages/s incl. snapshots) over passes lasting about ``seconds``."""
    once()  # warm up
    gc.collect()
    updates = messages = 0
    update_s = total_s = 0.0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        u, us, m, ts = once()
        updates, update_s, messages, total_s = (
            updates + u,
            update_s + us,
            messages + m,
            total_s + ts,
        )
    return updates / update_s, messages / total_s


def run(ctx: Context) -> list[Row]:
    seconds = 0.05 if ctx.quick else 2.0
    rows = []
    for venue, session in SESSIONS.items():
        once = session()
        samples = [measure(once, seconds)[0] for _ in range(1 if ctx.quick else ctx.runs)]
        rows.append(
            Row(
                NAME,
                f"{venue}: book updates of the recorded session, looped",
                "updates/s",
                samples,
                note="decoded, applied, verified, top-20 Depth built; one core",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one sample")
    parser.add_argument("--runs", type=int, default=3, help="samples per venue")
    args = parser.parse_args(argv)
    print(
        f"{'venue':<8} {'updates/s (median, min..max)':>34} {'all messages/s incl. snapshots':>32}"
    )
    for venue, session in SESSIONS.items():
        once = session()
        samples = [measure(once, args.seconds) for _ in range(args.runs)]
        updates = [u for u, _ in samples]
        messages = [m for _, m in samples]
        print(
            f"{venue:<8} {statistics.median(updates):>12,.0f} "
            f"({min(updates):,.0f}..{max(updates):,.0f}) "
            f"{statistics.median(messages):>18,.0f}"
        )


if __name__ == "__main__":
    main()
