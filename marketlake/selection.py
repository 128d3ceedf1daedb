"""What a reader asked for (symbols, days, exchange), checked and resolved against a table.

Symbols are resolved to their exchange from the table's own partitions: a symbol held by
one exchange needs no `exchange=`, one held by several does, and one held by none is an
error listing what the table has. Nothing here reads a Delta log: the partition values
come from the lake's per-version index.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from deltalake.exceptions import TableNotFoundError

from marketlake.errors import LakeError
from marketlake.lake import Lake
from marketlake.schemas import MARKET_PARTITION_COLUMNS

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


def parse_symbols(symbols: Symbols) -> list[str]:
    """One symbol or a list of them, upper-cased, in the order given, each once."""
    values = [symbols] if isinstance(symbols, str) else list(symbols)
    if not values:
        raise LakeError("no symbols given")
    parsed: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise LakeError(f"a symbol must be a non-empty string, got {value!r}")
        symbol = value.strip().upper()
        if symbol not in parsed:
            parsed.append(symbol)
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
    exchange: str | None = None,
) -> Selection:
    """Check the arguments, then give each symbol its exchange from `table`'s partitions."""
    first, last = parse_days(start, end)
    wanted = parse_symbols(symbols)
    held = table_instruments(lake, table)
    exchanges_of: dict[str, list[str]] = {}
    for held_exchange, symbol in sorted(held):
        exchanges_of.setdefault(symbol, []).append(held_exchange)
    if exchange is not None:
        exchange = exchange.strip().lower()
        known = sorted({e for e, _ in held})
        if exchange not in known:
            raise LakeError(
                f"no exchange {exchange!r} in table {table!r}; it holds "
                f"{', '.join(known) or 'nothing yet'}"
            )
    instruments = [
        (_exchange_of(symbol, exchange, exchanges_of, table, held), symbol) for symbol in wanted
    ]
    return Selection(tuple(instruments), first, last)


def _exchange_of(
    symbol: str,
    exchange: str | None,
    exchanges_of: dict[str, list[str]],
    table: str,
    held: Iterable[tuple[str, str]],
) -> str:
    found = exchanges_of.get(symbol, [])
    if exchange is not None:
        if exchange in found:
            return exchange
        where = f" (it is on {', '.join(found)})" if found else ""
        raise LakeError(
            f"unknown symbol {symbol!r} on {exchange} in table {table!r}{where}; "
            f"{exchange} symbols there: {_listing(s for e, s in held if e == exchange)}"
        )
    if len(found) == 1:
        return found[0]
    if found:
        raise LakeError(
            f"symbol {symbol!r} is on several exchanges in table {table!r} "
            f"({', '.join(found)}): pass exchange= one of them"
        )
    raise LakeError(
        f"unknown symbol {symbol!r} in table {table!r}; it holds {_listing(held, pairs=True)}"
    )


def _listing(items: Iterable, pairs: bool = False) -> str:
    """Names for a message: `SYMBOL` or, for (exchange, symbol) pairs, `SYMBOL (exchange)`."""
    names = sorted(f"{s} ({e})" for e, s in items) if pairs else sorted(items)
    if not names:
        return "none"
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
