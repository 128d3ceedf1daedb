"""Which symbols are partitions: checked against the exchange, added to the instance.

The `symbols_sensor` and the CLI (`symbols add`, and every backfill or build before it
starts) both decide through these two functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.exchanges.binance.rest import BinanceRest
from marketlake.exchanges.errors import ExchangeError
from orchestration.errors import CommandFailed, UsageError, one_line
from orchestration.partitions import symbol_partitions


def not_yet_partitions(instance: dg.DagsterInstance, symbols: Sequence[str]) -> list[str]:
    """The `symbols` that are not a `symbols` partition yet, in the order given."""
    existing = set(instance.get_dynamic_partitions(symbol_partitions.name))
    return [symbol for symbol in symbols if symbol not in existing]


def split_by_listing(rest: BinanceRest, symbols: Sequence[str]) -> tuple[list[str], list[str]]:
    """(listed, unknown): `symbols` split by whether Binance's exchangeInfo lists them."""
    listed = rest.symbols()
    return (
        [symbol for symbol in symbols if symbol in listed],
        [symbol for symbol in symbols if symbol not in listed],
    )


#: The pre-flight check gives up sooner than a backfill's REST calls: a person is waiting.
PREFLIGHT_TIMEOUT_S = 10.0
PREFLIGHT_RETRIES = 2


def register_symbols(
    instance: dg.DagsterInstance,
    binance: BinanceEndpoints,
    symbols: Sequence[str],
    *,
    timeout_s: float = PREFLIGHT_TIMEOUT_S,
) -> list[str]:
    """Add `symbols` to the partitions, all or none: an unlisted one is a usage error.

    This is the command's pre-flight: an exchange that does not answer properly stops it
    here, with the URL, before anything is downloaded or written.
    """
    url = f"{binance.rest_url.rstrip('/')}{BinanceRest.EXCHANGE_INFO}"
    rest = BinanceRest(
        binance.rest_url,
        weight_limit=binance.weight_limit,
        timeout=timeout_s,
        max_retries=PREFLIGHT_RETRIES,
    )
    try:
        with rest:
            listed, unknown = split_by_listing(rest, symbols)
    except (ExchangeError, ValueError) as error:
        raise CommandFailed(
            f"could not check the symbols against Binance at {url}: {one_line(error)}"
        ) from None
    if unknown:
        raise UsageError(f"not listed on Binance ({binance.rest_url}): {', '.join(unknown)}")
    new = not_yet_partitions(instance, listed)
    if new:
        instance.add_dynamic_partitions(symbol_partitions.name, new)
    return new
