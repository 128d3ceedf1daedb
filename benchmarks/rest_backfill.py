"""REST backfill: a whole day through historicalTrades under the simulator's weight limit.

The simulator enforces Binance's fixed-window request weight (429 with Retry-After, then
418 bans) with the minute scaled down to `WINDOW_S` seconds. The limit is 1,000 per window
(the run takes ~15 s): like Binance's 6,000, 90% of it is a whole number of 25-weight
pages. `BinanceRest.trades_for_day` (searches the day's first and last ids, then pages
1,000 trades per request) runs as shipped, told the same window and limit; its budget
keeps 10% of every window in reserve (`WeightBudget.max_fraction=0.9`) for other clients
on the same IP. The last row is the same client with no reserve, for comparison.

The server's side is recorded: the weight it accepted in which window. Utilization counts
only the windows the run covered completely (the first and last are partial); the
theoretical maximum is limit ÷ 25 pages of 1,000 trades per window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter

from benchmarks.common import DAY, SYMBOL, Context, Row, human_count, simulator
from marketlake.exchanges.binance.ratelimit import WeightBudget
from marketlake.exchanges.binance.rest import BinanceRest

NAME = "rest_backfill"
PAGE_WEIGHT = 25
PAGE_TRADES = 1000
BAR_UTILIZATION = 90.0


def _record(sim) -> list[tuple[float, int, int]]:
    """Wrap the server's limiter: every decision as (time, weight, status)."""
    log: list[tuple[float, int, int]] = []
    lock = threading.Lock()
    acquire = sim.limiter.acquire

    def recording(weight: int, limit: int | None = None):
        decision = acquire(weight, limit)
        with lock:
            log.append((time.time(), weight, decision.status))
        return decision

    sim.limiter.acquire = recording
    return log


def run_once(ctx: Context, n: int, limit: int, window_s: float, fraction: float | None) -> dict:
    """One day through REST; `fraction` None is the shipped budget, else its max_fraction."""
    with simulator(ctx, n, weight_limit=limit, window_seconds=window_s) as sim:
        log = _record(sim)
        budget = (
            None
            if fraction is None
            else WeightBudget(limit, window_seconds=window_s, max_fraction=fraction)
        )
        client = BinanceRest(
            sim.base_url, weight_limit=limit, window_seconds=window_s, budget=budget
        )
        with client as rest:
            started = time.time()
            frame = rest.trades_for_day(SYMBOL, DAY)
            ended = time.time()
    if frame.height != n:
        raise RuntimeError(f"REST backfill got {frame.height} trades, expected {n}")
    statuses = Counter(status for _, _, status in log)
    first = math.floor(started / window_s) + 1  # first window the run covered completely
    last = math.floor(ended / window_s) - 1
    full = [w for t, w, s in log if s == 200 and first <= math.floor(t / window_s) <= last]
    windows = max(last - first + 1, 0)
    return {
        "seconds": ended - started,
        "utilization": 100 * sum(full) / (limit * windows) if windows else math.nan,
        "http_418": statuses[418],
        "http_429": statuses[429],
        "requests": len(log),
        "trades_per_s": n / (ended - started),
        "windows": windows,
    }


def _median(results: list[dict], key: str) -> float:
    return sorted(r[key] for r in results)[len(results) // 2]


def run(ctx: Context) -> list[Row]:
    n = ctx.size(300_000, 20_000)
    window_s, limit = (2.0, 1000) if not ctx.quick else (0.5, 250)
    shipped, unreserved = [], []
    for _ in range(ctx.runs):
        shipped.append(run_once(ctx, n, limit, window_s, None))
        ctx.log(f"  REST backfill {human_count(n)}: {shipped[-1]}")
    for _ in range(1 if ctx.quick else ctx.runs):
        unreserved.append(run_once(ctx, n, limit, window_s, 1.0))
        ctx.log(f"  REST backfill {human_count(n)}, no reserve: {unreserved[-1]}")
    theoretical = limit / PAGE_WEIGHT * PAGE_TRADES / window_s
    setting = f"limit {limit:,} weight per {window_s:g} s window (the minute scaled down)"

    def rate(results: list[dict]) -> str:
        achieved = _median(results, "trades_per_s")
        return (
            f"{achieved:,.0f} trades/s vs the theoretical max {theoretical:,.0f} trades/s "
            f"({100 * achieved / theoretical:.0f}%)"
        )

    return [
        Row(
            "REST backfill",
            f"{human_count(n)}-trade day, weight used ÷ allowed, full windows",
            "%",
            [r["utilization"] for r in shipped],
            bar=BAR_UTILIZATION,
            fmt="{:.1f}",
            compare=f"{rate(shipped)}; {setting}",
            note="the client keeps 10% in reserve (WeightBudget.max_fraction=0.9)",
        ),
        Row(
            "REST backfill",
            "HTTP 418 (bans)",
            "",
            [r["http_418"] for r in shipped],
            bar=0,
            better="lower",
            compare=f"{_median(shipped, 'requests'):.0f} requests per run",
        ),
        Row(
            "REST backfill",
            "HTTP 429",
            "",
            [r["http_429"] for r in shipped],
            bar=0,
            better="lower",
            compare="the server forces none: one client, no faults injected",
        ),
        Row(
            "REST backfill",
            "same, client without the 10% reserve (max_fraction=1.0; not shipped)",
            "%",
            [r["utilization"] for r in unreserved],
            fmt="{:.1f}",
            compare=(
                f"{rate(unreserved)}; 429s {[r['http_429'] for r in unreserved]}, "
                f"418s {[r['http_418'] for r in unreserved]}"
            ),
        ),
    ]
