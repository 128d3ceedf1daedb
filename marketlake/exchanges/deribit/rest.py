"""Deribit REST trade history, for filling a gap of ``trade_seq`` the websocket lost.

``GET /api/v2/public/get_last_trades_by_instrument?instrument_name=&start_seq=&end_seq=
&count=1000&sorting=asc`` returns up to 1000 trades of a ``trade_seq`` range, oldest first;
pages follow from the last one received. Public requests are credit-limited (about 20 per
second sustained); the client keeps to 10.
"""

from __future__ import annotations

from marketlake.exchanges.deribit.websocket import _trade
from marketlake.exchanges.errors import ResponseFormatError
from marketlake.exchanges.paced import PagedTradesRest, trade_rows

LAST_TRADES = "/api/v2/public/get_last_trades_by_instrument"
PAGE = 1000


class DeribitRest(PagedTradesRest):
    """The `marketlake.exchanges.feed.GapFiller` of Deribit: ranges of ``trade_seq``."""

    def __init__(self, base_url: str, *, requests_per_s: float = 10.0) -> None:
        super().__init__(base_url, requests_per_s=requests_per_s)

    def _rows(self, symbol: str, first_id: int, last_id: int) -> list[tuple]:
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
        return rows


def _page(body: object, symbol: str) -> list[tuple]:
    where = f"Deribit {LAST_TRADES} {symbol}"
    result = body.get("result") if type(body) is dict else None
    trades = result.get("trades") if type(result) is dict else None
    if type(trades) is not list:
        raise ResponseFormatError(f"{where}: not a trades answer: {str(body)[:200]}")
    return trade_rows(trades, symbol, where, _trade)
