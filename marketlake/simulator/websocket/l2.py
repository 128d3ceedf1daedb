"""Level-2 books for the OKX and Deribit sessions: one consistent book, diffed between pushes.

Both venues send a snapshot, then changes of price levels. The simulator's book at any
instant is `simulator.book.depth_at` (deterministic per 100 ms bucket, its best level the
quote the trades printed at), so a session keeps the last book it *sent* per instrument and
pushes the difference to the book now: a client that applies every push holds exactly
``depth_at(instrument, t, levels)`` after each one, which is what the tests compare the
landed ``ticks_depth`` rows with. A push the session drops (a fault) still moves what it
considers sent, so the client's book is then wrong until it resyncs, as on a real venue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marketlake.simulator import book
from marketlake.simulator.data import SimConfig

Side = dict[float, float]


def number(value: float) -> str:
    """The shortest decimal text of a price or size (``"60012.3"``, ``"0.00123"``, ``"5"``)."""
    return f"{value:.8f}".rstrip("0").rstrip(".")


def levels_at(symbol: str, t_us: int, cfg: SimConfig, levels: int) -> tuple[Side, Side]:
    """(bids, asks) of the simulator's book at ``t_us``, price -> size."""
    depth = book.depth_at(symbol, t_us, cfg, levels=levels)
    bids = dict(zip(depth.bid_prices.tolist(), depth.bid_qtys.tolist(), strict=True))
    asks = dict(zip(depth.ask_prices.tolist(), depth.ask_qtys.tolist(), strict=True))
    return bids, asks


def changes(before: Side, after: Side, descending: bool) -> list[tuple[float, float, bool]]:
    """(price, new size, level is new) of every level that differs; size 0 = removed.

    Best level first, as both venues order their sides.
    """
    out = [(p, q, p not in before) for p, q in after.items() if before.get(p) != q]
    out += [(p, 0.0, False) for p in before if p not in after]
    out.sort(key=lambda level: -level[0] if descending else level[0])
    return out


def best_first(side: Side, descending: bool) -> list[tuple[float, float]]:
    return sorted(side.items(), key=lambda level: -level[0] if descending else level[0])


@dataclass
class SentBook:
    """What a session has sent of one instrument's book (its client's book, if none was lost)."""

    bids: Side = field(default_factory=dict)
    asks: Side = field(default_factory=dict)
    #: The venue's id of the last push (OKX seqId, Deribit change_id).
    sequence: int = -1
    #: A fresh snapshot is due (a new or renewed subscription).
    snapshot_due: bool = True
