"""Which symbols are partitions: checked against the exchange, added to the instance.

The `symbols_sensor` and the CLI (`symbols add`, and every backfill or build before it
starts) both decide through these two functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from orchestration.errors import UsageError
from orchestration.partitions import symbol_partitions


def not_yet_partitions(instance: dg.DagsterInstance, symbols: Sequence[str]) -> list[str]:
    """The `symbols` that are not a `symbols` partition yet, in the order given."""
    existing = set(instance.get_dynamic_partitions(symbol_partitions.name))
    return [symbol for symbol in symbols if symbol not in existing]


def split_by_listing(
    binance: BinanceEndpoints, symbols: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(listed, unknown): `symbols` split by whether Binance's exchangeInfo lists them."""
    listed = binance.rest().symbols()
    return (
        [symbol for symbol in symbols if symbol in listed],
        [symbol for symbol in symbols if symbol not in listed],
    )


def register_symbols(
    instance: dg.DagsterInstance, binance: BinanceEndpoints, symbols: Sequence[str]
) -> list[str]:
    """Add `symbols` to the partitions, all or none: an unlisted one is a usage error."""
    listed, unknown = split_by_listing(binance, symbols)
    if unknown:
        raise UsageError(f"not listed on Binance ({binance.rest_url}): {', '.join(unknown)}")
    new = not_yet_partitions(instance, listed)
    if new:
        instance.add_dynamic_partitions(symbol_partitions.name, new)
    return new
