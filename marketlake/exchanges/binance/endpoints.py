"""Where Binance is reached: the real exchange or the local simulator, by configuration only."""

from __future__ import annotations

from dataclasses import dataclass, field

from marketlake.exchanges.binance.archive import ARCHIVE_URL, BinanceArchive
from marketlake.exchanges.binance.rest import REST_URL, BinanceRest
from marketlake.exchanges.waits import WaitNotice, log_wait

WS_URL = "wss://stream.binance.com:9443"


@dataclass(frozen=True)
class BinanceEndpoints:
    """Base URLs and the REST weight budget; clients are made on demand, never at load time.

    `on_wait` hears every wait of the clients (a Retry-After, a retry, a full weight window)
    before it happens; the log by default.
    """

    archive_url: str = ARCHIVE_URL
    rest_url: str = REST_URL
    ws_url: str = WS_URL
    weight_limit: int = 6000
    on_wait: WaitNotice = field(default=log_wait, compare=False)

    def archive(self) -> BinanceArchive:
        return BinanceArchive(self.archive_url, on_wait=self.on_wait)

    def rest(self) -> BinanceRest:
        return BinanceRest(self.rest_url, weight_limit=self.weight_limit, on_wait=self.on_wait)
