"""Partition values: validated once, then bound to the SQL as a one-row table.

A partition value reaches lake paths, Delta predicates and SQL, so it is checked before
anything reads or runs: the symbol by the exchange's own alphabet, the date as a real
calendar day, the exchange from the known list. The SQL never sees the text anyway
(`partition.symbol` compiles to `(SELECT symbol FROM __partition)`); validating first
means a bad value fails loudly instead of quietly selecting nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import polars as pl

from dbt_like_sql.errors import PartitionError
from dbt_like_sql.manifest import PARTITION_KEYS
from marketlake.schemas import EXCHANGES, InvalidSymbolError, normalize_symbol


def validate_partition(partition: Mapping[str, Any]) -> dict[str, Any]:
    """Return `{exchange, symbol, date}` normalized (symbol canonical, date a `date`).

    Raises PartitionError for a missing or extra key, an unknown exchange, a symbol outside
    the exchange's alphabet (`BTC'; DROP` included) or a date that is not a calendar day.
    """
    keys = set(partition)
    if keys != set(PARTITION_KEYS):
        raise PartitionError(
            f"a partition needs exactly {', '.join(PARTITION_KEYS)}; got {sorted(keys)}"
        )
    exchange = partition["exchange"]
    if exchange not in EXCHANGES:
        raise PartitionError(f"unknown exchange {exchange!r}; expected one of {EXCHANGES}")
    try:
        symbol = normalize_symbol(partition["symbol"], exchange)
    except InvalidSymbolError as exc:
        raise PartitionError(str(exc)) from exc
    return {"exchange": exchange, "symbol": symbol, "date": _as_date(partition["date"])}


def _as_date(value: Any) -> dt.date:
    """A `date`, or an ISO `YYYY-MM-DD` string naming a real day (not a datetime)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise PartitionError(f"invalid date {value!r}: expected a date or YYYY-MM-DD")


def partition_frame(partition: Mapping[str, Any]) -> pl.LazyFrame:
    """The one-row `__partition` table the compiled SQL reads partition values from."""
    return pl.LazyFrame(
        {key: [partition[key]] for key in PARTITION_KEYS},
        schema={"exchange": pl.String, "symbol": pl.String, "date": pl.Date},
    )
