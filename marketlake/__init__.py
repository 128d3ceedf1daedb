"""marketlake: crypto market data in Delta Lake; `import marketlake as ml` to read it.

    lake = ml.Lake()                                   # $MARKETLAKE_LAKE or ./lake
    ml.bars(["BTCUSDT", "ETHUSDT"], "2024-03-01", freq="5m", lake=lake).collect()

The readers (`trades`, `quotes`, `bars`, `spread`, `summary`, `depth`, `read`) return
Polars LazyFrames; the analytics (`trades_with_quotes`, `effective_spread`,
`realized_volatility`) are pure functions over them. The rest of the package (schemas,
the Delta store, exchanges, the simulator) is the platform's own core and never imports
Dagster.

The public names load on first use: the platform's own processes import submodules such
as `marketlake.schemas` or `marketlake.simulator`, and should not pay for deltalake and
pyarrow when they never read the lake.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marketlake.analytics import effective_spread, realized_volatility, trades_with_quotes
    from marketlake.api import bars, depth, quotes, read, spread, summary, trades
    from marketlake.errors import LakeError
    from marketlake.lake import Lake
    from marketlake.resampling import resample_bars

_PUBLIC = {
    "Lake": "marketlake.lake",
    "LakeError": "marketlake.errors",
    "bars": "marketlake.api",
    "depth": "marketlake.api",
    "quotes": "marketlake.api",
    "read": "marketlake.api",
    "spread": "marketlake.api",
    "summary": "marketlake.api",
    "trades": "marketlake.api",
    "resample_bars": "marketlake.resampling",
    "effective_spread": "marketlake.analytics",
    "realized_volatility": "marketlake.analytics",
    "trades_with_quotes": "marketlake.analytics",
}

__all__ = [
    "Lake",
    "LakeError",
    "bars",
    "depth",
    "effective_spread",
    "quotes",
    "read",
    "realized_volatility",
    "resample_bars",
    "spread",
    "summary",
    "trades",
    "trades_with_quotes",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'marketlake' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
