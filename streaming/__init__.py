"""The live landing service: websockets -> columnar buffers -> Delta (ticks_*, quarantine,
stream_events), with reconnects, gap fills from REST and a checkpoint to resume from.

Runs with or without Dagster and knows no exchange by name: exchanges plug in through
`marketlake.exchanges.feed.Feed`.

    from streaming import StreamConfig, run_stream
    stats = run_stream(StreamConfig("binance", ["BTCUSDT"], ws_url, lake="./lake", duration_s=60))
"""

from streaming.config import StreamConfig, StreamStats, StreamStatus
from streaming.service import StreamRunner, run_stream
from streaming.state import StateStore

__all__ = [
    "StateStore",
    "StreamConfig",
    "StreamRunner",
    "StreamStats",
    "StreamStatus",
    "run_stream",
]
