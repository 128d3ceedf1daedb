"""OKX REST trade history: a gap of trade ids the websocket lost, and whole UTC days.

``GET /api/v5/market/history-trades?instId=&type=&after=&limit=100`` answers at most 100
trades, newest first, ``{"code": "0", "msg": "", "data": [{instId, side, sz, px, tradeId,
ts}]}`` with every number a string and ``ts`` in ms. ``type=1`` pages by trade id (``after``
= the ids below it), ``type=2`` by time (``after`` = the trades before that ms).

- A range ``first..last`` is walked down by id from ``after=last+1`` until ``first``.
- A day is found by time once: ``type=2&after=<next midnight>`` gives the day's last trades;
  from there it is walked down by id until a trade before midnight. Paging the whole day by
  time would lose trades: a page of 100 can end inside a millisecond, and ``after`` skips
  the rest of it.

OKX keeps about three months of history: a day whose pages run out before its first trade
is refused rather than stored short. Rate limit of the endpoint: 20 requests per 2 s per
IP (`marketlake.exchanges.registry.OKX`); the client keeps to 8 per second.
"""

from __future__ import annotations

from marketlake.exchanges.errors import ResponseFormatError, RestError
from marketlake.exchanges.okx.websocket import parse_trade
from marketlake.exchanges.paced import PagedTradesRest, trade_rows

HISTORY_TRADES = "/api/v5/market/history-trades"
PAGE = 100
BY_ID, BY_TIME = "1", "2"


class OkxRest(PagedTradesRest):
    """OKX's `marketlake.exchanges.feed.GapFiller`, and the source of its backfilled days."""

    VENUE = "OKX"

    def __init__(self, base_url: str, *, requests_per_s: float = 8.0) -> None:
        super().__init__(base_url, requests_per_s=requests_per_s)

    def _rows(self, symbol: str, first_id: int, last_id: int) -> list[tuple]:
        rows: list[tuple] = []
        after = last_id + 1
        while after > first_id:
            page = self._page(symbol, BY_ID, after)
            if not page:
                break
            rows += [r for r in page if first_id <= r[0] <= last_id]
            after = min(r[0] for r in page)
        return rows

    def _day_rows(self, symbol: str, start_ms: int, end_ms: int) -> list[tuple]:
        page = self._page(symbol, BY_TIME, end_ms)  # the day's last trades, newest first
        rows = list(page)
        while page and min(r[3] for r in page) >= start_ms * 1000:
            after = min(r[0] for r in page)
            page = self._page(symbol, BY_ID, after)
            if not page:
                raise ResponseFormatError(
                    f"OKX {self.url(HISTORY_TRADES)} {symbol}: the history ends at trade id "
                    f"{after}, inside the day (OKX keeps about three months of trades): the "
                    "day cannot be fetched whole"
                )
            rows += page
        return rows

    def _page(self, symbol: str, kind: str, after: int) -> list[tuple]:
        """One page below ``after`` (a trade id, or a ms time with ``kind`` BY_TIME)."""
        params = {"instId": symbol, "type": kind, "after": str(after), "limit": str(PAGE)}
        page = parse_page(self.http.get(HISTORY_TRADES, params), symbol, self.url(HISTORY_TRADES))
        if kind == BY_ID and any(r[0] >= after for r in page):
            raise ResponseFormatError(
                f"OKX {self.url(HISTORY_TRADES)} {symbol}: asked for the trades below id "
                f"{after}, got id {max(r[0] for r in page)}"
            )
        if kind == BY_TIME and any(r[3] >= after * 1000 for r in page):
            raise ResponseFormatError(
                f"OKX {self.url(HISTORY_TRADES)} {symbol}: asked for the trades before "
                f"{after} ms, got one at {max(r[3] for r in page) // 1000} ms"
            )
        return page


def parse_page(body: object, symbol: str, url: str = HISTORY_TRADES) -> list[tuple]:
    """A ``history-trades`` (or ``trades``) answer as `raw_trades_frame` rows; an error
    answer (OKX sends HTTP 200 with a non-zero ``code``) or a malformed one raises."""
    where = f"OKX {url} {symbol}"
    if type(body) is dict and body.get("code") not in ("0", None):
        code, msg = body.get("code"), str(body.get("msg"))[:200]
        raise RestError(
            f"{where}: OKX refused the request ({code}): {msg}",
            endpoint=HISTORY_TRADES,
            params={"instId": symbol},
            msg=msg,
        )
    if type(body) is not dict or type(body.get("data")) is not list:
        raise ResponseFormatError(f"{where}: not a trades answer: {str(body)[:200]}")
    return trade_rows(body["data"], symbol, where, parse_trade)
