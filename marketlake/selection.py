"""What a reader asked for (instruments, days), checked and resolved against a table.

An instrument is a symbol on `exchange=` (Binance unless told), or qualified
(`"okx:BTC-USDT"`), spelled as its venue spells it (`marketlake.instruments`): the venue is
never guessed from the symbol, since two venues can list the same text. One the table does
not hold is an error listing what it has. Nothing here reads a Delta log: the partition
values come from the lake's per-version index.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from deltalake.exceptions import TableNotFoundError

from marketlake.errors import LakeError
from marketlake.exchanges.registry import VENUES
from marketlake.instruments import DEFAULT_VENUE, Instrument
from marketlake.lake import Lake
from marketlake.schemas import MARKET_PARTITION_COLUMNS, InvalidSymbolError

Day = str | dt.date
Symbols = str | Sequence[str]

#: Shown when a symbol is unknown; a year of 50 symbols names them all.
_LISTED = 60


@dataclass(frozen=True)
class Selection:
    """Symbols with their exchanges, and the inclusive range of UTC days."""

    instruments: tuple[tuple[str, str], ...]  # (exchange, symbol)
    start: dt.date
    end: dt.date

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def partitions(self) -> list[dict[str, str | dt.date]]:
        """Every (exchange, symbol, date) asked for: symbols in the order given, then days."""
        days = self.days()
        return [
            {"exchange": exchange, "symbol": symbol, "date": day}
            for exchange, symbol in self.instruments
            for day in days
        ]


def parse_day(value: Day, name: str) -> dt.date:
    """A UTC day from a `date` or an ISO `YYYY-MM-DD` string."""
    if isinstance(value, dt.datetime):
        raise LakeError(
            f"{name} must be a day (a date or 'YYYY-MM-DD'), got the datetime {value!r}: "
            "read whole days and filter `ts` for a time window"
        )
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise LakeError(
                f"{name} {value!r} is not a date: expected YYYY-MM-DD, like 2024-03-01"
            ) from None
    raise LakeError(f"{name} must be a date or 'YYYY-MM-DD', got {type(value).__name__}")


def parse_days(start: Day, end: Day | None) -> tuple[dt.date, dt.date]:
    """`start`..`end` inclusive; no `end` is the one day `start`."""
    first = parse_day(start, "start")
    last = first if end is None else parse_day(end, "end")
    if last < first:
        raise LakeError(f"end {last.isoformat()} is before start {first.isoformat()}")
    return first, last


def parse_symbols(symbols: Symbols, exchange: str = DEFAULT_VENUE) -> list[tuple[str, str]]:
    """(exchange, symbol) of one instrument or a list of them, each in its venue's spelling
    (`btcusdt` -> `BTCUSDT`; a Deribit strike keeps its `d`), in the order given, each once."""
    values = [symbols] if isinstance(symbols, str) else list(symbols)
    if not values:
        raise LakeError("no symbols given")
    if not isinstance(exchange, str) or exchange.strip().lower() not in VENUES:
        raise LakeError(f"no exchange {exchange!r}: expected one of {', '.join(VENUES)}")
    parsed: list[tuple[str, str]] = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise LakeError(f"a symbol must be a non-empty string, got {value!r}")
        try:
            instrument = Instrument.parse(value, exchange.strip().lower())
        except InvalidSymbolError as error:
            raise LakeError(str(error)) from None
        if (instrument.venue, instrument.symbol) not in parsed:
            parsed.append((instrument.venue, instrument.symbol))
    return parsed


def table_instruments(lake: Lake, table: str) -> frozenset[tuple[str, str]]:
    """The (exchange, symbol) pairs `table` holds; a clear error when there is no table."""
    try:
        return lake.partition_values(table, ("exchange", "symbol"))
    except TableNotFoundError:
        raise LakeError(f"no table {table!r} in the lake at {lake.uri}") from None
    except ValueError as error:  # partitioned otherwise: not a market-data table
        raise LakeError(
            f"table {table!r} is not partitioned by {', '.join(MARKET_PARTITION_COLUMNS)}: {error}"
        ) from None


def resolve(
    lake: Lake,
    table: str,
    symbols: Symbols,
    start: Day,
    end: Day | None = None,
    exchange: str = DEFAULT_VENUE,
) -> Selection:
    """Check the arguments, then that `table` holds each instrument asked for."""
    first, last = parse_days(start, end)
    wanted = parse_symbols(symbols, exchange)
    held = table_instruments(lake, table)
    for venue, symbol in wanted:
        if (venue, symbol) not in held:
            _refuse(venue, symbol, table, held)
    return Selection(tuple(wanted), first, last)


def _refuse(exchange: str, symbol: str, table: str, held: Iterable[tuple[str, str]]) -> None:
    """An instrument `table` does not hold: say where the symbol is, and what is there."""
    held = sorted(held)
    found = [e for e, s in held if s == symbol]
    where = f" (it is on {', '.join(found)}: pass exchange=)" if found else ""
    raise LakeError(
        f"unknown symbol {symbol!r} on {exchange} in table {table!r}{where}; "
        f"it holds {_listing(held, pairs=True)}"
    )


def _listing(items: Iterable, pairs: bool = False) -> str:
    """Names for a message: `SYMBOL` or, for (exchange, symbol) pairs, `SYMBOL (exchange)`."""
    names = sorted(f"{s} ({e})" for e, s in items) if pairs else sorted(items)
    if not names:
        return "none"
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
