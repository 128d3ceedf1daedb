"""The archive's CSV bytes: a day of trades exactly as data.binance.vision writes them.

`{SYMBOL}-trades-{DATE}.csv` has no header, 8 decimals and `True`/`False`; the simulator
adds the faults real archives have (id holes, a file cut mid-line). The bytes come out
hour by hour, so a 5M-trade day never sits in memory whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Final

import polars as pl

from marketlake.simulator import data, formats
from marketlake.simulator.data import DEFAULT_CONFIG, SimConfig

#: With `truncate`, the archive CSV stops mid-line inside the first non-empty block from here.
_TRUNCATE_FROM_HOUR: Final = 16


def _without_ids(frame: pl.DataFrame, gaps: Iterable[tuple[int, int]]) -> pl.DataFrame:
    if frame.height == 0:
        return frame
    lo, hi = frame["trade_id"][0], frame["trade_id"][-1]
    hits = [pl.col("trade_id").is_between(a, b) for a, b in gaps if a <= hi and b >= lo]
    return frame.filter(~pl.any_horizontal(hits)) if hits else frame


def _cut_mid_line(chunk: bytes) -> bytes:
    cut = len(chunk) // 2
    while cut < len(chunk) - 1 and chunk[cut - 1 : cut] == b"\n":
        cut += 1
    return chunk[: max(cut, 1)]


def iter_archive_csv(
    symbol: str,
    date: dt.date | str,
    cfg: SimConfig = DEFAULT_CONFIG,
    *,
    gaps: Iterable[tuple[int, int]] = (),
    truncate: bool = False,
    repeat: bool = False,
) -> Iterator[bytes]:
    """The day's archive CSV in hourly chunks.

    `gaps`: inclusive id ranges left out (real archives have such holes). `truncate`: the
    file ends mid-line, as after a broken upload. `repeat`: the first non-empty hour comes
    again at the end, well-formed rows whose ids are already in the file (a bad upload
    that no checksum or parser catches).
    """
    gaps = list(gaps)
    if repeat:
        first = b""
        for hour in range(24):
            chunk = formats.csv_bytes(
                _without_ids(data.block_trades(symbol, date, hour, cfg, cache=False), gaps)
            )
            first = first or chunk
            yield chunk
        yield first
        return

    def chunks() -> Iterator[tuple[int, bytes]]:
        for hour in range(24):
            trades = data.block_trades(symbol, date, hour, cfg, cache=False)
            yield hour, formats.csv_bytes(_without_ids(trades, gaps))

    if not truncate:
        yield from (chunk for _, chunk in chunks())
        return
    pending = b""
    for hour, chunk in chunks():
        if not chunk:
            continue
        if pending:
            yield pending
        pending = chunk
        if hour >= _TRUNCATE_FROM_HOUR:
            break
    if pending:
        yield _cut_mid_line(pending)


def archive_csv_bytes(
    symbol: str,
    date: dt.date | str,
    cfg: SimConfig = DEFAULT_CONFIG,
    *,
    gaps: Iterable[tuple[int, int]] = (),
    truncate: bool = False,
    repeat: bool = False,
) -> bytes:
    """The whole `{SYMBOL}-trades-{DATE}.csv` (no header, 8 decimals, `True`/`False`)."""
    chunks = iter_archive_csv(symbol, date, cfg, gaps=gaps, truncate=truncate, repeat=repeat)
    return b"".join(chunks)
