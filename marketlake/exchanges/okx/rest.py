"""OKX REST trade history, for filling a gap of trade ids the websocket lost.

``GET /api/v5/market/history-trades?instId=&type=1&after=&limit=100`` pages by trade id
(``type=1``): ``after`` returns the ids below it, newest first. A range ``first..last`` is
walked down from ``after=last+1`` until ``first``. Rate limit: 20 requests per 2 s per IP;
the client keeps to 8 per second.
"""

from __future__ import annotations

from marketlake.exchanges.errors import ResponseFormatError, RestError
from marketlake.exchanges.okx.websocket import _trade
from marketlake.exchanges.paced import PagedTradesRest, trade_rows

HISTORY_TRADES = "/api/v5/market/history-trades"
PAGE = 100


class OkxRest(PagedTradesRest):
    """The `marketlake.exchanges.feed.GapFiller` of OKX: ranges of trade ids, newest first."""

    def __init__(self, base_url: str, *, requests_per_s: float = 8.0) -> None:
        super().__init__(base_url, requests_per_s=requests_per_s)

    def _rows(self, symbol: str, first_id: int, last_id: int) -> list[tuple]:
        rows: list[tuple] = []
        after = last_id + 1
        while after > first_id:
            params = {"instId": symbol, "type": "1", "after": str(after), "limit": str(PAGE)}
            body = self.http.get(HISTORY_TRADES, params)
            page = _page(body, symbol)
            if not page:
                break
            rows += [r for r in page if first_id <= r[0] <= last_id]
            after = min(r[0] for r in page)
        return rows


def _page(body: object, symbol: str) -> list[tuple]:
    where = f"OKX {HISTORY_TRADES} {symbol}"
    if type(body) is dict and body.get("code") not in ("0", None):  # OKX answers 200 + code
        code, msg = body.get("code"), str(body.get("msg"))[:200]
        raise RestError(
            f"{where}: OKX refused the request ({code}): {msg}",
            endpoint=HISTORY_TRADES,
            params={"instId": symbol},
            msg=msg,
        )
    if type(body) is not dict or type(body.get("data")) is not list:
        raise ResponseFormatError(f"{where}: not a trades answer: {str(body)[:200]}")
    return trade_rows(body["data"], symbol, where, _trade)
