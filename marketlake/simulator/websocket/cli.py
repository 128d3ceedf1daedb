"""`python -m marketlake.simulator.websocket`: the websocket simulator until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from marketlake.simulator import data
from marketlake.simulator.websocket.server import WsSimulator

DESCRIPTION: Final = (
    "The simulator's websocket side: Binance, Coinbase, OKX and Deribit websockets, replay."
)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m marketlake.simulator.websocket``: serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m marketlake.simulator.websocket", description=DESCRIPTION
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--trades-per-day", type=int, default=data.SimConfig.trades_per_day)
    parser.add_argument("--seed", type=int, default=data.SimConfig.seed)
    parser.add_argument("--max-rate", action="store_true", help="push pre-encoded frames flat out")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="with --max-rate: trades per second per symbol (default: as fast as possible)",
    )
    parser.add_argument("--replay", type=Path, default=None, help="serve a recording instead")
    parser.add_argument("--replay-speed", type=float, default=1.0, help="0 = as fast as possible")
    args = parser.parse_args(argv)
    config = data.SimConfig(seed=args.seed, trades_per_day=args.trades_per_day)
    sim = WsSimulator(
        config,
        host=args.host,
        port=args.port,
        max_rate=args.max_rate,
        max_rate_trades_per_s=args.rate,
        replay=args.replay,
        replay_speed=args.replay_speed or None,
    )
    with sim:
        print(
            f"websocket simulator at {sim.url} "
            f"(Binance: {sim.url}/stream, Coinbase: {sim.coinbase_url}, "
            f"OKX: {sim.okx_url}, Deribit: {sim.deribit_url})",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0
