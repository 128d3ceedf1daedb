"""The instrument-day key every partitioned asset shares, as Dagster spells it.

Plain Python (no Dagster): the CLI plans runs and starts a command's first day ahead of
its run (`assets.ahead`) before Dagster is imported.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from marketlake.instruments import Instrument
from marketlake.schemas import InvalidSymbolError


@dataclass(frozen=True)
class PartitionKey:
    """One instrument-day: `2024-03-01|okx:BTC-USDT`. The venue is part of the key, never
    read from the symbol's shape (`BTC-USD` is a Coinbase and an OKX spelling)."""

    date: dt.date
    instrument: Instrument

    @property
    def venue(self) -> str:
        return self.instrument.venue

    @property
    def exchange(self) -> str:
        """The lake's `exchange` partition value: the venue."""
        return self.instrument.venue

    @property
    def symbol(self) -> str:
        """The venue's spelling of the instrument."""
        return self.instrument.symbol

    @classmethod
    def parse(cls, key: str) -> "PartitionKey":
        """`2024-03-01|binance:BTCUSDT` -> PartitionKey (Dagster sorts the date dimension
        first); the symbol is checked against its venue's syntax."""
        date_text, _, instrument = str(key).partition("|")
        try:
            date = dt.date.fromisoformat(date_text)
        except ValueError:
            raise ValueError(
                f"malformed partition key {key!r}: expected YYYY-MM-DD|VENUE:SYMBOL, "
                "like 2024-03-01|binance:BTCUSDT"
            ) from None
        try:
            return cls(date, Instrument.from_key(instrument))
        except InvalidSymbolError as error:
            raise ValueError(f"malformed partition key {key!r}: {error}") from None

    def lake_partition(self) -> dict[str, Any]:
        """The Delta partition values of this instrument-day."""
        return {"exchange": self.exchange, "symbol": self.symbol, "date": self.date}

    def __str__(self) -> str:
        return f"{self.date.isoformat()}|{self.instrument}"
