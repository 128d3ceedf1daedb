"""A small JSON-over-HTTP GET client for the venues whose trades come from REST alone (OKX,
Deribit: gap fills and whole days): requests spaced to the venue's rate, 429/5xx/transport
errors retried with capped jittered backoff (``Retry-After`` honoured), any other refusal a
`RestError` naming the URL. Blocking: the lander runs gap fills in a thread.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson
import polars as pl

from marketlake.exchanges.binance.ratelimit import backoff_delay
from marketlake.exchanges.errors import ResponseFormatError, RestError
from marketlake.exchanges.feed import Trade
from marketlake.exchanges.fields import Refused
from marketlake.schemas import RAW_TRADES


class PacedJsonClient:
    """GETs JSON from one base URL, at most ``requests_per_s`` of them, retrying failures;
    errors name ``venue`` and the URL."""

    def __init__(
        self,
        base_url: str,
        *,
        requests_per_s: float,
        venue: str = "",
        attempts: int = 5,
        timeout_s: float = 10.0,
        backoff_base_s: float = 0.25,
        backoff_cap_s: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.venue = venue
        self.spacing_s = 1.0 / requests_per_s
        self.attempts = attempts
        self.backoff_base_s, self.backoff_cap_s = backoff_base_s, backoff_cap_s
        self._client = httpx.Client(timeout=timeout_s, headers={"Accept": "application/json"})
        self._lock = threading.Lock()
        self._next_at = 0.0
        #: Requests sent, and retried.
        self.requests = 0
        self.retries = 0

    def close(self) -> None:
        self._client.close()

    def _pace(self) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._next_at - now
            self._next_at = max(now, self._next_at) + self.spacing_s
        if wait > 0:
            time.sleep(wait)

    def get(self, path: str, params: Mapping[str, Any]) -> Any:
        """The decoded JSON body of ``GET path?params`` (status 200), or `RestError`."""
        url = f"{self.base_url}{path}"
        where = f"{self.venue} {url}".lstrip()
        status: int | None = None
        for attempt in range(self.attempts):
            self._pace()
            self.requests += 1
            try:
                response = self._client.get(url, params=dict(params))
            except httpx.TransportError as error:
                reason = f"{type(error).__name__}: {error}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return orjson.loads(response.content)
                    except orjson.JSONDecodeError as error:
                        raise ResponseFormatError(
                            f"{where}: response is not JSON ({error}): {response.content[:200]!r}"
                        ) from None
                if status != 429 and status < 500:
                    raise RestError(
                        f"{where} refused the request ({status}): {response.text[:300]}",
                        endpoint=path,
                        params=params,
                        status=status,
                    )
                reason = f"status {status}"
                later = response.headers.get("Retry-After", "")
                if later.isdigit():
                    time.sleep(min(float(later), self.backoff_cap_s))
                    continue
            if attempt + 1 < self.attempts:
                self.retries += 1
                time.sleep(backoff_delay(attempt, base=self.backoff_base_s, cap=self.backoff_cap_s))
        raise RestError(
            f"{where} failed {self.attempts} times, last: {reason}",
            endpoint=path,
            params=params,
            status=status,
        )


class PagedTradesRest:
    """A `marketlake.exchanges.feed.GapFiller` over a `PacedJsonClient`: the venues differ
    only in how they page a range of trade ids (`_rows`)."""

    #: The venue's name in messages.
    VENUE = ""

    def __init__(self, base_url: str, *, requests_per_s: float) -> None:
        self.http = PacedJsonClient(base_url, requests_per_s=requests_per_s, venue=self.VENUE)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PagedTradesRest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def trades_between_ids(self, symbol: str, first_id: int, last_id: int) -> pl.DataFrame:
        """Trades ``first_id..last_id`` (inclusive) as `RAW_TRADES`, ascending; what the venue
        has."""
        if last_id < first_id:
            raise ValueError(f"last_id {last_id} < first_id {first_id}")
        return raw_trades_frame(self._rows(symbol, first_id, last_id))

    def _rows(self, symbol: str, first_id: int, last_id: int) -> list[tuple]:
        raise NotImplementedError

    def trades_for_day(self, symbol: str, date: dt.date) -> pl.DataFrame:
        """Every trade of the UTC day ``date`` as `RAW_TRADES`, ascending by id: exactly the
        trades whose ``ts`` lies inside the day (a page straddling midnight is cut)."""
        start_ms, end_ms = day_bounds_ms(date)
        rows = self._day_rows(symbol, start_ms, end_ms)
        return raw_trades_frame([r for r in rows if start_ms * 1000 <= r[3] < end_ms * 1000])

    def _day_rows(self, symbol: str, start_ms: int, end_ms: int) -> list[tuple]:
        """Rows covering every trade with ``start_ms <= ts < end_ms`` (more may come along)."""
        raise NotImplementedError

    def url(self, path: str) -> str:
        return f"{self.http.base_url}{path}"


def day_bounds_ms(date: dt.date) -> tuple[int, int]:
    """[start, end) of the UTC day in epoch milliseconds, the unit of both venues' ``ts``."""
    start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
    start_ms = int(start.timestamp()) * 1000
    return start_ms, start_ms + 86_400_000


def trade_rows(
    items: list, symbol: str, where: str, parse: Callable[[str, dict, int], Trade]
) -> list[tuple]:
    """A REST page's trades, read by the venue's websocket parser ``parse``, as rows for
    `raw_trades_frame`; one bad trade refuses the page, naming ``where``."""
    rows = []
    for item in items:
        try:
            if type(item) is not dict:
                raise Refused("not an object")
            trade = parse(symbol, item, 0)
        except Refused as refused:
            raise ResponseFormatError(f"{where}: {refused}: {str(item)[:200]}") from None
        rows.append((trade.trade_id, trade.price, trade.qty, trade.ts_us, trade.is_buyer_maker))
    return rows


def raw_trades_frame(rows: list[tuple]) -> pl.DataFrame:
    """(trade_id, price, qty, ts_us, is_buyer_maker) rows as `RAW_TRADES`, one per id,
    ascending; ``quote_qty`` = round(price * qty, 8), as the lander derives it live."""
    if not rows:
        return RAW_TRADES.to_frame()
    frame = pl.DataFrame(
        rows, schema=["trade_id", "price", "qty", "ts", "is_buyer_maker"], orient="row"
    )
    return (
        frame.with_columns(
            pl.col("ts").cast(pl.Int64).cast(RAW_TRADES["ts"]),
            (pl.col("price") * pl.col("qty")).round(8).alias("quote_qty"),
        )
        .unique("trade_id", keep="first")
        .sort("trade_id")
        .select(RAW_TRADES.names())
        .cast(dict(RAW_TRADES))  # type: ignore[arg-type]
    )
