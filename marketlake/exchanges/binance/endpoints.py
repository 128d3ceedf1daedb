"""Where Binance is reached: the real exchange or the local simulator, by configuration only."""

from __future__ import annotations

from dataclasses import dataclass

from marketlake.exchanges.binance.archive import ARCHIVE_URL, BinanceArchive
from marketlake.exchanges.binance.rest import REST_URL, BinanceRest

WS_URL = "wss://stream.binance.com:9443"


@dataclass(frozen=True)
class BinanceEndpoints:
    """Base URLs and the REST weight budget; clients are made on demand, never at load time."""

    archive_url: str = ARCHIVE_URL
    rest_url: str = REST_URL
    ws_url: str = WS_URL
    weight_limit: int = 6000

    def archive(self) -> BinanceArchive:
        return BinanceArchive(self.archive_url)

    def rest(self) -> BinanceRest:
        return BinanceRest(self.rest_url, weight_limit=self.weight_limit)
