"""``python -m streaming``: land one exchange's live stream until SIGTERM/SIGINT or --duration.

Exit status 0 after a clean shutdown (buffers flushed, state written), 1 if rows could not
be written to the lake (they are spilled to Parquet and listed on stderr).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from streaming.config import StreamConfig, StreamStatus
from streaming.service import run_stream


def _print_status(status: StreamStatus) -> None:
    line = {
        "elapsed_s": round(status.elapsed_s, 1),
        "msg_per_s": round(status.messages_per_s),
        "rows": status.rows_landed,
        "pending": status.pending_rows,
        "receive_lag_ms": status.receive_lag_ms,
        "land_lag_ms": status.land_lag_ms,
        "reconnects": status.reconnects,
        "gaps": status.gaps,
        "gaps_filled": status.gaps_filled,
        "quarantined": status.quarantined,
        "duplicates": status.duplicates,
        "outliers": status.outliers,
        "held": status.held,
        "book_breaks": status.book_breaks,
        "book_resyncs": status.book_resyncs,
        "last_error": status.last_error,
    }
    print(orjson.dumps(line).decode(), file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streaming", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--exchange", default="binance", help="binance, coinbase, okx, deribit")
    parser.add_argument("--symbols", required=True, help="comma-separated")
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--rest-url", default=None)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--duration", type=float, default=None, help="seconds")
    parser.add_argument("--flush-interval", type=float, default=1.0)
    parser.add_argument("--flush-rows", type=int, default=100_000)
    parser.add_argument("--capture", type=Path, default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--status-interval", type=float, default=5.0)
    parser.add_argument("--gap-grace", type=float, default=1.0)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    config = StreamConfig(
        exchange=args.exchange,
        symbols=[s for s in args.symbols.split(",") if s],
        ws_url=args.ws_url,
        rest_url=args.rest_url,
        lake=args.lake,
        duration_s=args.duration,
        flush_interval_s=args.flush_interval,
        flush_rows=args.flush_rows,
        capture=args.capture,
        name=args.name,
        status_callback=_print_status,
        status_interval_s=args.status_interval,
        gap_grace_s=args.gap_grace,
    )
    stats = run_stream(config)
    summary = {
        "messages": stats.messages,
        "rows_landed": stats.rows_landed,
        "gaps": stats.gaps,
        "gaps_filled": stats.gaps_filled,
        "quarantined": stats.quarantined,
        "reconnects": stats.reconnects,
        "book_breaks": stats.book_breaks,
        "book_resyncs": stats.book_resyncs,
        "unwritten_rows": stats.unwritten_rows,
        "spilled": stats.spilled,
        "maybe_landed_rows": stats.maybe_landed_rows,
        "spilled_maybe_landed": stats.spilled_maybe_landed,
    }
    print(orjson.dumps(summary).decode(), flush=True)
    return 1 if stats.unwritten_rows else 0


if __name__ == "__main__":
    raise SystemExit(main())
