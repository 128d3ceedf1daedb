"""Which instruments are partitions: checked against their venue, added to the instance.

The `symbols_sensor` and the CLI (`symbols add`, and every backfill or build before it
starts) both decide through these functions. Binance instruments are checked against
Binance's exchangeInfo (its archive and REST are what a backfill reads); other venues'
instruments are checked against their venue's syntax when they are parsed.

The check against the venue needs no Dagster, and imports none: a backfill makes it, and
starts its first download, before Dagster has loaded. Adding partitions does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.exchanges.binance.rest import BinanceRest
from marketlake.exchanges.errors import ExchangeError
from marketlake.instruments import Instrument
from orchestration.errors import CommandFailed, UsageError, one_line

if TYPE_CHECKING:
    import dagster as dg


def not_yet_partitions(
    instance: dg.DagsterInstance, instruments: Sequence[Instrument]
) -> list[Instrument]:
    """The `instruments` that are not an `instruments` partition yet, in the order given."""
    from orchestration.partitions import instrument_partitions

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


def check_listed(
    instruments: Sequence[Instrument],
    rest_url: str,
    *,
    weight_limit: int,
    timeout_s: float = PREFLIGHT_TIMEOUT_S,
) -> None:
    """Refuse an instrument Binance (its REST API at `rest_url`) does not list (a usage
    error), or an exchange that does not answer properly, before anything is downloaded."""
    if not any(i.venue == "binance" for i in instruments):
        return
    url = f"{rest_url.rstrip('/')}{BinanceRest.EXCHANGE_INFO}"
    rest = BinanceRest(
        rest_url, weight_limit=weight_limit, timeout=timeout_s, max_retries=PREFLIGHT_RETRIES
    )
    try:
        with rest:
            _listed, unknown = split_by_listing(rest, instruments)
    except (ExchangeError, ValueError) as error:
        raise CommandFailed(
            f"could not check the symbols against Binance at {url}: {one_line(error)}"
        ) from None
    if unknown:
        raise UsageError(f"not listed on Binance ({rest_url}): {', '.join(map(str, unknown))}")


def add_partitions(
    instance: dg.DagsterInstance, instruments: Sequence[Instrument]
) -> list[Instrument]:
    """Add the `instruments` that are not partitions yet; return them. An instance still to
    migrate is refused first (`check_migrated`): new partitions would hide its legacy ones."""
    from orchestration.partitions import check_migrated

    check_migrated(instance)
    return _add_missing(instance, instruments)


def _add_missing(
    instance: dg.DagsterInstance, instruments: Sequence[Instrument]
) -> list[Instrument]:
    from orchestration.partitions import instrument_partitions

    new = not_yet_partitions(instance, instruments)
    if new:
        instance.add_dynamic_partitions(instrument_partitions.name, [str(i) for i in new])
    return new


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
    from orchestration.partitions import check_migrated

    check_migrated(instance)
    check_listed(
        instruments, binance.rest_url, weight_limit=binance.weight_limit, timeout_s=timeout_s
    )
    return _add_missing(instance, instruments)
