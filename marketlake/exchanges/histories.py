"""Where the venues without an archive serve their trade history: OKX and Deribit, by REST.

The `trades_history` asset gets this as a resource beside `BinanceEndpoints` (the real
exchanges or the simulator, by configuration only) and asks it for a venue's client.
Building it does no I/O; clients are made on demand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from marketlake.exchanges.feed import GapFiller
from marketlake.exchanges.paced import PagedTradesRest
from marketlake.exchanges.registry import DERIBIT, OKX, venue


class DayHistory(GapFiller, Protocol):
    """A venue's REST trade history as a backfill reads it (`BinanceRest`, `OkxRest`,
    `DeribitRest`): whole UTC days, and id ranges to fill an archive's holes."""

    def trades_for_day(self, symbol: str, date: dt.date) -> pl.DataFrame:
        """Every trade with ts inside the UTC day, as `marketlake.schemas.RAW_TRADES`."""
        ...


@dataclass(frozen=True)
class RestHistories:
    """The REST base URLs of OKX and Deribit (production unless configured)."""

    okx_rest_url: str = OKX.rest.default  # type: ignore[union-attr]
    deribit_rest_url: str = DERIBIT.rest.default  # type: ignore[union-attr]

    def client(self, exchange: str) -> PagedTradesRest:
        """The paced REST client of ``exchange``; a venue with no REST history is refused."""
        name = venue(exchange).name
        if name == "okx":
            from marketlake.exchanges.okx.rest import OkxRest

            return OkxRest(self.okx_rest_url)
        if name == "deribit":
            from marketlake.exchanges.deribit.rest import DeribitRest

            return DeribitRest(self.deribit_rest_url)
        raise ValueError(f"{venue(exchange).title} has no REST trade history here")
