"""Which instruments are partitions: checked against their venue, added to the instance.

The `symbols_sensor` and the CLI (`symbols add`, and every backfill or build before it
starts) both decide through these functions. Binance instruments are checked against
Binance's exchangeInfo (its archive and REST are what a backfill reads); other venues'
instruments are checked against their venue's syntax when they are parsed.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.exchanges.binance.rest import BinanceRest
from marketlake.exchanges.errors import ExchangeError
from marketlake.instruments import Instrument
from orchestration.errors import CommandFailed, UsageError, one_line
from orchestration.partitions import check_migrated, instrument_partitions


def not_yet_partitions(
    instance: dg.DagsterInstance, instruments: Sequence[Instrument]
) -> list[Instrument]:
    """The `instruments` that are not an `instruments` partition yet, in the order given."""
    existing = set(instance.get_dynamic_partitions(instrument_partitions.name))
    return [i for i in instruments if str(i) not in existing]


def split_by_listing(
    rest: BinanceRest, instruments: Sequence[Instrument]
) -> tuple[list[Instrument], list[Instrument]]:
    """(listed, unknown): Binance instruments split by whether Binance's exchangeInfo lists
    them; other venues' pass (nothing here can ask them)."""
    binance = [i for i in instruments if i.venue == "binance"]
    listed = rest.symbols() if binance else set()
    return (
        [i for i in instruments if i.venue != "binance" or i.symbol in listed],
        [i for i in binance if i.symbol not in listed],
    )


#: The pre-flight check gives up sooner than a backfill's REST calls: a person is waiting.
PREFLIGHT_TIMEOUT_S = 10.0
PREFLIGHT_RETRIES = 2


def register_instruments(
    instance: dg.DagsterInstance,
    binance: BinanceEndpoints,
    instruments: Sequence[Instrument],
    *,
    timeout_s: float = PREFLIGHT_TIMEOUT_S,
) -> list[Instrument]:
    """Add `instruments` to the partitions, all or none: an unlisted one is a usage error.

    This is the command's pre-flight: an instance still to migrate, or an exchange that
    does not answer properly, stops it here, before anything is downloaded or written.
    """
    check_migrated(instance)
    listed = list(instruments)
    if any(i.venue == "binance" for i in listed):
        url = f"{binance.rest_url.rstrip('/')}{BinanceRest.EXCHANGE_INFO}"
        rest = BinanceRest(
            binance.rest_url,
            weight_limit=binance.weight_limit,
            timeout=timeout_s,
            max_retries=PREFLIGHT_RETRIES,
        )
        try:
            with rest:
                listed, unknown = split_by_listing(rest, listed)
        except (ExchangeError, ValueError) as error:
            raise CommandFailed(
                f"could not check the symbols against Binance at {url}: {one_line(error)}"
            ) from None
        if unknown:
            raise UsageError(
                f"not listed on Binance ({binance.rest_url}): {', '.join(map(str, unknown))}"
            )
    new = not_yet_partitions(instance, listed)
    if new:
        instance.add_dynamic_partitions(instrument_partitions.name, [str(i) for i in new])
    return new
