"""Deribit REST trade history, for filling a gap of ``trade_seq`` the websocket lost.

``GET /api/v2/public/get_last_trades_by_instrument?instrument_name=&start_seq=&end_seq=
&count=1000&sorting=asc`` returns up to 1000 trades of a ``trade_seq`` range, oldest first;
pages follow from the last one received. Public requests are credit-limited (about 20 per
second sustained); the client keeps to 10.
"""

from __future__ import annotations

import polars as pl

from marketlake.exchanges.deribit.websocket import _trade
from marketlake.exchanges.errors import ResponseFormatError
from marketlake.exchanges.fields import Refused
from marketlake.exchanges.paced import PacedJsonClient, raw_trades_frame

LAST_TRADES = "/api/v2/public/get_last_trades_by_instrument"
PAGE = 1000


class DeribitRest:
    """The `marketlake.exchanges.feed.GapFiller` of Deribit."""

    def __init__(self, base_url: str, *, requests_per_s: float = 10.0) -> None:
        self.http = PacedJsonClient(base_url, requests_per_s=requests_per_s)

    def close(self) -> None:
        self.http.close()

    def trades_between_ids(self, symbol: str, first_id: int, last_id: int) -> pl.DataFrame:
        """Trades ``first_id..last_id`` of ``trade_seq`` as `RAW_TRADES`; what Deribit has."""
        if last_id < first_id:
            raise ValueError(f"last_id {last_id} < first_id {first_id}")
        rows: list[tuple] = []
        start = first_id
        while start <= last_id:
            params = {
                "instrument_name": symbol,
                "start_seq": str(start),
                "end_seq": str(last_id),
                "count": str(PAGE),
                "sorting": "asc",
            }
            page = _page(self.http.get(LAST_TRADES, params), symbol)
            if not page:
                break
            rows += [r for r in page if first_id <= r[0] <= last_id]
            start = max(r[0] for r in page) + 1
        return raw_trades_frame(rows)


def _page(body: object, symbol: str) -> list[tuple]:
    where = f"Deribit {LAST_TRADES} {symbol}"
    result = body.get("result") if type(body) is dict else None
    trades = result.get("trades") if type(result) is dict else None
    if type(trades) is not list:
        raise ResponseFormatError(f"{where}: not a trades answer: {str(body)[:200]}")
    rows = []
    for item in trades:
        try:
            if type(item) is not dict:
                raise Refused("not an object")
            trade = _trade(symbol, item, 0)
        except Refused as refused:
            raise ResponseFormatError(f"{where}: {refused}: {str(item)[:200]}") from None
        rows.append((trade.trade_id, trade.price, trade.qty, trade.ts_us, trade.is_buyer_maker))
    return rows
