"""The local exchange simulator: deterministic trades, archive zips, REST and websockets.

`data` is the pure universe (trades as functions of time), `book` the quotes and depth
consistent with it, `archive_csv` a day's archive file as bytes; `server` serves them over
HTTP with Binance's paths, shapes, weights and faults, and `websocket` as Binance and
Coinbase streams (or replays a recording), all on loopback. See docs/design.md.
"""

from marketlake.simulator.data import SimConfig
from marketlake.simulator.faults import Faults, Stats
from marketlake.simulator.server import Simulator, main, run

__all__ = ["Faults", "SimConfig", "Simulator", "Stats", "main", "run"]
