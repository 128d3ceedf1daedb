"""Deribit REST trade history: a gap of ``trade_seq`` the websocket lost, and whole UTC days.

Both answers are ``{"jsonrpc": "2.0", "result": {"trades": [...], "has_more"}, "usIn",
"usOut", "usDiff", "testnet"}`` with the websocket's trade fields (``trade_seq`` the id,
``timestamp`` in ms, numbers as JSON numbers), at most 1000 trades a page, oldest first
with ``sorting=asc``.

- A range: ``GET /api/v2/public/get_last_trades_by_instrument?instrument_name=&start_seq=
  &end_seq=&count=1000&sorting=asc``, each page following the last one received.
- A day: ``GET /api/v2/public/get_last_trades_by_instrument_and_time?instrument_name=
  &start_timestamp=&end_timestamp=&count=1000&sorting=asc`` (both bounds inclusive, in
  ms). A page can end inside a millisecond, so the next one starts *at* the last page's
  last millisecond and the trades already held are dropped by ``trade_seq``; a full page
  of a single millisecond could not be passed that way and is refused.

Public requests are credit-limited (about 20 per second sustained,
`marketlake.exchanges.registry.DERIBIT`); the client keeps to 10.
"""

from __future__ import annotations

from marketlake.exchanges.deribit.websocket import parse_trade
from marketlake.exchanges.errors import ResponseFormatError
from marketlake.exchanges.paced import PagedTradesRest, trade_rows

LAST_TRADES = "/api/v2/public/get_last_trades_by_instrument"
LAST_TRADES_BY_TIME = "/api/v2/public/get_last_trades_by_instrument_and_time"
PAGE = 1000


class DeribitRest(PagedTradesRest):
    """Deribit's `marketlake.exchanges.feed.GapFiller`, and the source of its backfilled days."""

    VENUE = "Deribit"

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
            page, _ = parse_page(self.http.get(LAST_TRADES, params), symbol, self.url(LAST_TRADES))
            if not page:
                break
            rows += [r for r in page if first_id <= r[0] <= last_id]
            start = max(r[0] for r in page) + 1
        return rows

    def _day_rows(self, symbol: str, start_ms: int, end_ms: int) -> list[tuple]:
        url = self.url(LAST_TRADES_BY_TIME)
        rows: list[tuple] = []
        since, last_seq = start_ms, -1
        while True:
            params = {
                "instrument_name": symbol,
                "start_timestamp": str(since),
                "end_timestamp": str(end_ms - 1),
                "count": str(PAGE),
                "sorting": "asc",
            }
            page, has_more = parse_page(self.http.get(LAST_TRADES_BY_TIME, params), symbol, url)
            new = [r for r in page if r[0] > last_seq]
            rows += new
            if not has_more or not page:
                return rows
            if not new:
                raise ResponseFormatError(
                    f"Deribit {url} {symbol}: a full page of trades at {since} ms, and more "
                    "to come at the same millisecond: paging by time cannot pass it"
                )
            last_seq = max(r[0] for r in new)
            since = max(r[3] for r in page) // 1000


def parse_page(body: object, symbol: str, url: str = LAST_TRADES) -> tuple[list[tuple], bool]:
    """A trades answer as (`raw_trades_frame` rows, ``has_more``); an error answer or a
    malformed one raises, naming the URL."""
    where = f"Deribit {url} {symbol}"
    if type(body) is dict and type(body.get("error")) is dict:
        raise ResponseFormatError(f"{where}: Deribit answered an error: {str(body['error'])[:200]}")
    result = body.get("result") if type(body) is dict else None
    trades = result.get("trades") if type(result) is dict else None
    if type(trades) is not list:
        raise ResponseFormatError(f"{where}: not a trades answer: {str(body)[:200]}")
    has_more = result.get("has_more", len(trades) >= PAGE)  # type: ignore[union-attr]
    if type(has_more) is not bool:
        raise ResponseFormatError(f"{where}: has_more is not a boolean: {str(has_more)[:40]}")
    return trade_rows(trades, symbol, where, parse_trade), has_more
