"""The live tables the streaming lander appends to, as assets Dagster shows and tracks.

The lander (streaming/) writes them; the `stream_ticks` job reports what it landed as
materializations of these keys, so they sit in the asset graph upstream of the daily tables.
"""

import dagster as dg

LIVE_TABLES = {
    "ticks_trades": "Live trades as landed (at-least-once), plus REST gap fills.",
    "ticks_quotes": "Live best bid/ask (bookTicker / ticker) as landed.",
    "ticks_depth": "Live top-20 book snapshots (depth20 / level2) as landed.",
    "stream_events": "Disconnects, reconnects, gaps found and how each was filled.",
    "quarantine": "Records refused, with the reason and the raw payload.",
}

live_specs = [
    dg.AssetSpec(
        name,
        description=description,
        group_name="live",
        kinds={"deltalake"},
        metadata={"table": name},
    )
    for name, description in LIVE_TABLES.items()
]
