"""The local exchange simulator: deterministic trades, archive zips and REST on loopback.

`data` is the pure universe (trades, quotes, depth as functions of time); `server` serves
it over HTTP with Binance's paths, shapes, weights and faults. See docs/design.md.
"""

from marketlake.simulator.data import SimConfig
from marketlake.simulator.faults import Faults, Stats
from marketlake.simulator.server import Simulator, main, run

__all__ = ["Faults", "SimConfig", "Simulator", "Stats", "main", "run"]
