"""An instrument is a venue and that venue's symbol: ``okx:BTC-USDT``, never ``BTC-USDT`` alone.

Two venues can list the same symbol text (``BTC-USD`` is a Coinbase product and an OKX spot
instrument), so wherever an instrument is named for more than one venue at once (the
instrument-day partition keys, the CLI, the configured instruments) it carries its venue.
A user may still type a bare symbol where a command has a venue to default to
(``--exchange``, Binance unless told); the qualified text is what is stored and printed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from marketlake.exchanges.registry import VENUES, venue
from marketlake.schemas import InvalidSymbolError

#: Between the venue and the symbol. Dagster allows ":" in a partition key (it reserves
#: "|", ",", "[", "]" and "..."), and no venue's symbol syntax holds one.
SEPARATOR = ":"
DEFAULT_VENUE = "binance"


@dataclass(frozen=True, order=True)
class Instrument:
    """A venue of `marketlake.exchanges.registry` and its spelling of one instrument."""

    venue: str
    symbol: str

    @property
    def exchange(self) -> str:
        """The lake's name for the venue (its ``exchange`` partition column)."""
        return self.venue

    @classmethod
    def parse(cls, text: str, default_venue: str | None = DEFAULT_VENUE) -> Instrument:
        """``okx:btc-usdt`` or (with a default venue) ``btcusdt``, normalized by the venue.

        A user's spelling is normalized (``ethusdt`` -> ``ETHUSDT``); an unknown venue or a
        symbol outside the venue's syntax is refused naming both.
        """
        if not isinstance(text, str):
            raise InvalidSymbolError(f"instrument must be a string, got {type(text).__name__}")
        name, separator, symbol = text.strip().rpartition(SEPARATOR)
        if not separator:
            if default_venue is None:
                raise InvalidSymbolError(
                    f"instrument {text!r} names no venue: expected VENUE{SEPARATOR}SYMBOL, "
                    f"like binance{SEPARATOR}BTCUSDT ({', '.join(VENUES)})"
                )
            name = default_venue
        try:
            chosen = venue(name)
        except ValueError:
            raise InvalidSymbolError(
                f"unknown venue {name!r} in instrument {text!r}: expected one of "
                f"{', '.join(VENUES)}"
            ) from None
        return cls(chosen.name, chosen.normalize_symbol(symbol))

    @classmethod
    def from_key(cls, text: str) -> Instrument:
        """The instrument of a stored key (``binance:BTCUSDT``): qualified, and already in
        the venue's spelling, so that one instrument never has two keys."""
        found = cls.parse(text, default_venue=None)
        if str(found) != text:
            raise InvalidSymbolError(
                f"instrument {text!r} is not in {venue(found.venue).title}'s spelling: "
                f"expected {found}"
            )
        return found

    def __str__(self) -> str:
        return f"{self.venue}{SEPARATOR}{self.symbol}"


def parse_instruments(values: Iterable[str], exchange: str = DEFAULT_VENUE) -> list[Instrument]:
    """Comma- or space-separated instruments, bare symbols on ``exchange``; first-seen order."""
    venue(exchange)  # an unknown --exchange is refused even if every value is qualified
    found: list[Instrument] = []
    for value in values:
        for part in re.split(r"[,\s]+", value):
            if part and (instrument := Instrument.parse(part, exchange)) not in found:
                found.append(instrument)
    if not found:
        raise InvalidSymbolError("no instruments given")
    return found


__all__ = ["DEFAULT_VENUE", "SEPARATOR", "Instrument", "parse_instruments"]
