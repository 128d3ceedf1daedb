"""The simulator's websocket side: Binance, Coinbase, OKX and Deribit, and replay.

`WsSimulator` (server.py) serves, on loopback:

- ``/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth20@100ms``: Binance
  combined streams (binance.py). Trades are the **same deterministic universe** the archive
  and REST serve (`simulator.data`): every tick a connection sends the trades whose time has
  passed on the simulator clock, so a gap fill from REST can be checked against ground
  truth. bookTicker and depth come from the same book model (`simulator.book`), so quotes
  agree with trade prices.
- ``/coinbase``: Coinbase Advanced Trade (coinbase.py).
- ``/ws/v5/public``: OKX v5 public (okx.py): trades, bbo-tbt, books with seqId/prevSeqId
  and checksums; ``/ws/api/v2``: Deribit JSON-RPC (deribit.py): trades, quote, raw books
  with change ids, heartbeats. Both diff one consistent book (l2.py).
- **max rate** (``max_rate=True``, max_rate.py): pre-encoded Binance frames written as fast
  as the socket drains, for throughput benchmarks.
- **replay** (``replay=path``, replay.py): the frames of a recording at the recorded pace.

What the sessions share (fault injection, trade cursors) is in session.py; the fault knobs
(`WsFaults`: drop connections, skip trade ids, malformed frames, stalls, duplicates, a
server shutdown notice, a dropped book update, a spoiled checksum) in faults.py; the
command line in cli.py.
"""

from marketlake.simulator.websocket.cli import main
from marketlake.simulator.websocket.faults import WsFaults, WsStats
from marketlake.simulator.websocket.max_rate import raw_frame
from marketlake.simulator.websocket.server import WsSimulator

__all__ = ["WsFaults", "WsSimulator", "WsStats", "main", "raw_frame"]
