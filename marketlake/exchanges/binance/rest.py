"""Binance spot REST client: market-data endpoints and the trade-history load modes.

Every request goes through `_get`, which takes weight from a `WeightBudget` before sending
(so the client slows down instead of being refused), honours 429/418 Retry-After for every
client sharing the budget, and retries 5xx and transport errors with capped exponential
backoff and full jitter. The load modes build on `historicalTrades`, the only endpoint
that pages by trade id:

1. `trades_from_id`: forward from an id (0 for "everything"), to an id or a time;
2. `first_trade_id_at` / `trades_for_day`: from a date, by searching the id for a time;
3. `trades_back_to`: backward from the latest trade to a date;
plus `trades_between_ids` for filling a gap exactly.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

import httpx
import orjson
import polars as pl

from marketlake.exchanges.binance.parsing import (
    parse_agg_trades,
    parse_exchange_info,
    parse_rest_trades,
)
from marketlake.exchanges.binance.ratelimit import (
    ENDPOINT_WEIGHTS,
    Reservation,
    WaitTooLong,
    WeightBudget,
    backoff_delay,
    depth_weight,
)
from marketlake.exchanges.binance.search import TradeIdSearch
from marketlake.exchanges.errors import ResponseFormatError, RestError
from marketlake.exchanges.waits import (
    TransferDeadline,
    TransferTooSlow,
    WaitNotice,
    log_wait,
    read_within,
    retry_after,
)
from marketlake.schemas import RAW_TRADES, normalize_symbol

REST_URL: Final = "https://api.binance.com"
#: Most rows one historicalTrades / aggTrades response carries.
PAGE_LIMIT: Final = 1000
USED_WEIGHT_HEADER: Final = "x-mbx-used-weight-1m"
#: One REST response: pages are at most ~150 KB, so a minute is generous; one averaging
#: under 2 KB/s after 10 s is a server dripping bytes, not a slow network.
REST_DEADLINE: Final = TransferDeadline(total_s=60.0, min_bytes_per_s=2_000, rate_grace_s=10.0)


@dataclass
class RestStats:
    """What a client did, for metadata and for tests that bound the request count."""

    requests: int = 0
    weight_used: int = 0
    sleeps: int = 0
    sleep_seconds: float = 0.0
    retries: int = 0
    http_429: int = 0
    http_418: int = 0
    http_5xx: int = 0
    transport_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


class BinanceRest:
    """A synchronous, rate-limit-aware client of Binance's public spot REST API.

    Pass one `budget` to several clients that share an IP; otherwise each client gets its
    own budget of `weight_limit` per `window_seconds`. Constructing a client does no I/O.
    Every wait is bounded and announced: `timeout` per network operation, `deadline` per
    response, `max_wait_s` for a Retry-After or a full weight window (longer waits give up
    at once with a `RestError` naming the URL); `on_wait` is told before each sleep.
    """

    HISTORICAL_TRADES: Final = "/api/v3/historicalTrades"
    TRADES: Final = "/api/v3/trades"
    AGG_TRADES: Final = "/api/v3/aggTrades"
    EXCHANGE_INFO: Final = "/api/v3/exchangeInfo"
    DEPTH: Final = "/api/v3/depth"
    TIME: Final = "/api/v3/time"
    PING: Final = "/api/v3/ping"

    def __init__(
        self,
        base_url: str = REST_URL,
        *,
        weight_limit: int = 6000,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        max_retries: int = 6,
        backoff_base: float = 0.25,
        backoff_cap: float = 30.0,
        budget: WeightBudget | None = None,
        window_seconds: float = 60.0,
        deadline: TransferDeadline = REST_DEADLINE,
        max_wait_s: float = 300.0,
        on_wait: WaitNotice = log_wait,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.budget = budget or WeightBudget(weight_limit, window_seconds=window_seconds)
        self.timeout = timeout
        self.deadline = deadline
        self.max_wait_s = max_wait_s
        self.on_wait = on_wait
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stats = RestStats()
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> BinanceRest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- endpoints ---------------------------------------------------------------------------

    def historical_trades(
        self, symbol: str, from_id: int | None = None, limit: int = PAGE_LIMIT
    ) -> pl.DataFrame:
        """Up to `limit` trades from `from_id` up (ascending), or the latest ones without it."""
        params: dict[str, Any] = {"symbol": normalize_symbol(symbol), "limit": _limit(limit)}
        if from_id is not None:
            params["fromId"] = _non_negative(from_id, "from_id")
        return parse_rest_trades(self._get(self.HISTORICAL_TRADES, params))

    def recent_trades(self, symbol: str, limit: int = 500) -> pl.DataFrame:
        """The latest `limit` trades (/api/v3/trades)."""
        params = {"symbol": normalize_symbol(symbol), "limit": _limit(limit)}
        return parse_rest_trades(self._get(self.TRADES, params))

    def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_time: dt.datetime | None = None,
        end_time: dt.datetime | None = None,
        limit: int = PAGE_LIMIT,
    ) -> pl.DataFrame:
        """Aggregate trades (`parsing.AGG_TRADES`); Binance allows at most 1 h between times."""
        params: dict[str, Any] = {"symbol": normalize_symbol(symbol), "limit": _limit(limit)}
        if from_id is not None:
            params["fromId"] = _non_negative(from_id, "from_id")
        if start_time is not None:
            params["startTime"] = to_epoch_ms(start_time)
        if end_time is not None:
            params["endTime"] = to_epoch_ms(end_time)
        return parse_agg_trades(self._get(self.AGG_TRADES, params))

    def exchange_info(self) -> dict[str, dict[str, Any]]:
        """Symbol -> its exchangeInfo entry (status, baseAsset, quoteAsset, filters, ...)."""
        return parse_exchange_info(self._get(self.EXCHANGE_INFO, {}))

    def symbols(self, *, trading_only: bool = False) -> set[str]:
        """Every listed symbol, or only those with status TRADING."""
        info = self.exchange_info()
        return {s for s, e in info.items() if not trading_only or e.get("status") == "TRADING"}

    def server_time(self) -> dt.datetime:
        body = _json(self._get(self.TIME, {}), self.TIME)
        if not isinstance(body, dict) or not isinstance(body.get("serverTime"), int):
            raise ResponseFormatError(f"{self.TIME}: expected {{'serverTime': ms}}, got {body!r}")
        return from_epoch_ms(body["serverTime"])

    def ping(self) -> None:
        self._get(self.PING, {})

    def depth(self, symbol: str, limit: int = 100) -> dict[str, Any]:
        """Order book snapshot: lastUpdateId and bids/asks as [(price, qty), ...] floats."""
        params = {"symbol": normalize_symbol(symbol), "limit": limit}
        body = _json(self._get(self.DEPTH, params, weight=depth_weight(limit)), self.DEPTH)
        try:
            return {
                "lastUpdateId": int(body["lastUpdateId"]),
                "bids": [(float(p), float(q)) for p, q in body["bids"]],
                "asks": [(float(p), float(q)) for p, q in body["asks"]],
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ResponseFormatError(f"{self.DEPTH}: unexpected body {body!r:.200}") from exc

    # --- load modes ----------------------------------------------------------------------------

    def trades_from_id(
        self,
        symbol: str,
        from_id: int = 0,
        *,
        until_id: int | None = None,
        until_ts: dt.datetime | None = None,
    ) -> Iterator[pl.DataFrame]:
        """Yield pages (<= 1000 rows, ascending ids) from `from_id` on.

        Stops after `until_id` (inclusive), before the first trade at or after `until_ts`
        (exclusive), or at the latest trade, whichever comes first.
        """
        symbol = normalize_symbol(symbol)
        cursor = _non_negative(from_id, "from_id")
        until = pl.lit(to_epoch_us(until_ts)).cast(RAW_TRADES["ts"]) if until_ts else None
        while until_id is None or cursor <= until_id:
            limit = PAGE_LIMIT if until_id is None else min(PAGE_LIMIT, until_id - cursor + 1)
            page = self.historical_trades(symbol, from_id=cursor, limit=limit)
            page = page.filter(pl.col("trade_id") >= cursor)
            if page.is_empty():
                return
            received = page.height
            last_id = page.item(-1, "trade_id")
            done = received < limit
            if until_id is not None and last_id >= until_id:
                page, done = page.filter(pl.col("trade_id") <= until_id), True
            if (
                until is not None
                and page.height
                and page.select(pl.col("ts").max() >= until).item()
            ):
                page, done = page.filter(pl.col("ts") < until), True
            if page.height:
                yield page
            if done:
                return
            cursor = last_id + 1

    def trades_between_ids(self, symbol: str, first_id: int, last_id: int) -> pl.DataFrame:
        """Trades with `first_id <= trade_id <= last_id`, ascending (for gap filling).

        Returns what the exchange has; a caller checking completeness compares the ids.
        """
        if last_id < first_id:
            raise ValueError(f"last_id {last_id} < first_id {first_id}")
        pages = list(self.trades_from_id(symbol, first_id, until_id=last_id))
        return pl.concat(pages) if pages else RAW_TRADES.to_frame()

    def first_trade_id_at(self, symbol: str, ts: dt.datetime) -> int:
        """The id of the first trade with time >= `ts` (ms precision, as REST reports time).

        If no trade is that late yet, the id the next trade will get (latest id + 1), so
        `[first_trade_id_at(a), first_trade_id_at(b))` is always the id range of `[a, b)`.
        Found by interpolation search on the id (see `search.TradeIdSearch`).
        """
        return TradeIdSearch(self, normalize_symbol(symbol)).first_id_at(to_epoch_ms(ts))

    def trades_for_day(self, symbol: str, date: dt.date) -> pl.DataFrame:
        """All trades of the UTC day `date`, ascending, as `RAW_TRADES`.

        Both day boundaries are searched with one `TradeIdSearch`, so the second search
        starts from the pages the first one fetched.
        """
        symbol = normalize_symbol(symbol)
        start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
        end = start + dt.timedelta(days=1)
        search = TradeIdSearch(self, symbol)
        first = search.first_id_at(to_epoch_ms(start))
        end_id = search.first_id_at(to_epoch_ms(end))
        if end_id <= first:
            return RAW_TRADES.to_frame()
        pages = list(self.trades_from_id(symbol, first, until_id=end_id - 1, until_ts=end))
        return pl.concat(pages) if pages else RAW_TRADES.to_frame()

    def trades_back_to(self, symbol: str, date: dt.date) -> Iterator[pl.DataFrame]:
        """Yield pages from the latest trade backwards until the start of `date` (UTC).

        Order: each page is ascending by id, but pages come newest first (descending ids),
        so `pl.concat(list(...)).sort("trade_id")` is the ascending history. Trades before
        the start of `date` are not yielded.
        """
        symbol = normalize_symbol(symbol)
        start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
        start_ts = pl.lit(to_epoch_us(start)).cast(RAW_TRADES["ts"])
        page = self.historical_trades(symbol)
        oldest_id: int | None = None
        while page.height:
            kept = page.filter(pl.col("ts") >= start_ts)
            if kept.height:
                yield kept
            below = page.item(0, "trade_id")
            if kept.height < page.height or below <= 0:
                return
            from_id = max(0, below - PAGE_LIMIT)
            page = self.historical_trades(symbol, from_id=from_id, limit=below - from_id)
            page = page.filter(pl.col("trade_id") < below)
            while page.is_empty() and from_id > 0:
                # No trade in [from_id, below): the start of the symbol's history, or a hole
                # in the ids (never seen on Binance). One probe of the oldest trade tells.
                if oldest_id is None:
                    oldest = self.historical_trades(symbol, from_id=0, limit=1)
                    oldest_id = oldest.item(0, "trade_id") if oldest.height else below
                if oldest_id >= from_id:
                    return
                below, from_id = from_id, max(0, from_id - PAGE_LIMIT)
                page = self.historical_trades(symbol, from_id=from_id, limit=below - from_id)
                page = page.filter(pl.col("trade_id") < below)

    # --- transport -----------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any], *, weight: int | None = None) -> bytes:
        """GET `path` within the weight budget; retry what is worth retrying, return the body."""
        weight = weight if weight is not None else ENDPOINT_WEIGHTS[path]
        url = self.base_url + path
        last_status: int | None = None
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats.add(retries=1)
            reservation = self._acquire(path, params, weight)
            if reservation.waited > 0.001:
                self.stats.add(sleeps=1, sleep_seconds=reservation.waited)
            try:
                response = self._fetch(url, params)
            except (httpx.TransportError, TransferTooSlow) as exc:
                self.budget.release(reservation)
                self.stats.add(requests=1, weight_used=weight, transport_errors=1)
                last_status, last_problem = None, self._transport_problem(exc)
                self._retry_after_backoff(attempt, f"{url}: {last_problem}")
                continue
            self.stats.add(requests=1, weight_used=weight)
            self.budget.settle(reservation, _used_weight(response))
            status = response.status_code
            if status == 200:
                return response.content
            last_status, last_problem = status, _problem(response)
            if status in (418, 429):
                self.stats.add(**{f"http_{status}": 1})
                wait = retry_after(response)
                if wait is not None:
                    self.budget.block_for(wait)
                    if wait > self.max_wait_s:
                        code, msg = _binance_error(response)
                        raise RestError(
                            f"{url} {dict(params)}: HTTP {status} asks to wait {wait:,.0f} s "
                            f"(Retry-After), more than max_wait_s {self.max_wait_s:g} s: "
                            f"giving up ({last_problem})",
                            endpoint=path,
                            params=params,
                            status=status,
                            code=code,
                            msg=msg,
                        )
                elif status == 418:
                    self.budget.block_for(self.backoff_cap)
                else:
                    self.budget.block_until_window_end()
                continue
            if status >= 500:
                self.stats.add(http_5xx=1)
                self._retry_after_backoff(attempt, f"{url}: HTTP {status}")
                continue
            code, msg = _binance_error(response)
            raise RestError(
                f"{path} {dict(params)} refused with HTTP {status}: {last_problem}",
                endpoint=path,
                params=params,
                status=status,
                code=code,
                msg=msg,
            )
        raise RestError(
            f"{path} {dict(params)} failed after {self.max_retries} retries; "
            f"last status {last_status}: {last_problem}",
            endpoint=path,
            params=params,
            status=last_status,
        )

    def _acquire(self, path: str, params: Mapping[str, Any], weight: int) -> Reservation:
        url = self.base_url + path
        try:
            return self.budget.acquire(
                weight,
                max_wait_s=self.max_wait_s,
                notice=lambda seconds, why: self.on_wait(
                    f"{url}: waiting {seconds:.1f} s for {why}"
                ),
            )
        except WaitTooLong as exc:
            raise RestError(
                f"{url} {dict(params)}: would wait {exc.seconds:,.0f} s for {exc.why}, more "
                f"than max_wait_s {self.max_wait_s:g} s: giving up",
                endpoint=path,
                params=params,
            ) from None

    def _fetch(self, url: str, params: Mapping[str, Any]) -> httpx.Response:
        """One GET, read whole within `deadline` (httpx's timeout is per read only)."""
        started = time.monotonic()
        with self._client.stream("GET", url, params=dict(params)) as streamed:
            body = b"".join(read_within(streamed, self.deadline, started))
            return httpx.Response(
                streamed.status_code,
                headers=streamed.headers,
                content=body,
                request=streamed.request,
            )

    def _transport_problem(self, exc: Exception) -> str:
        if isinstance(exc, httpx.TimeoutException):
            return f"no answer within {self.timeout:g} s ({type(exc).__name__})"
        if isinstance(exc, TransferTooSlow):
            return f"too slow: {exc}"
        return f"{type(exc).__name__}: {exc}"

    def _retry_after_backoff(self, attempt: int, why: str) -> None:
        """Sleep before retry `attempt + 1`, saying so; nothing after the last attempt."""
        if attempt >= self.max_retries:
            return
        seconds = backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap)
        if seconds > 0:
            why = f"{why}; retry {attempt + 1} of {self.max_retries}"
            self.on_wait(f"{why} in {seconds:.1f} s")
            self.stats.add(sleeps=1, sleep_seconds=seconds)
            time.sleep(seconds)


# --- helpers -----------------------------------------------------------------------------------


def to_epoch_us(value: dt.datetime) -> int:
    """Epoch microseconds of `value`; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_epoch_ms(value: dt.datetime) -> int:
    """Epoch milliseconds of `value` (naive means UTC), rounded up to the next ms.

    Rounding up keeps "time >= value" true for every trade REST reports at or after it.
    """
    return -(-to_epoch_us(value) // 1000)


def from_epoch_ms(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)


def _limit(limit: int) -> int:
    if not 1 <= limit <= PAGE_LIMIT:
        raise ValueError(f"limit must be 1..{PAGE_LIMIT}, got {limit}")
    return limit


def _non_negative(value: int, name: str) -> int:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def _json(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ResponseFormatError(f"{what}: response is not JSON: {body[:200]!r}") from exc


def _used_weight(response: httpx.Response) -> int | None:
    value = response.headers.get(USED_WEIGHT_HEADER)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _binance_error(response: httpx.Response) -> tuple[int | None, str | None]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None, None
    if isinstance(body, dict):
        code = body.get("code")
        msg = body.get("msg")
        return (code if isinstance(code, int) else None), (msg if isinstance(msg, str) else None)
    return None, None


def _problem(response: httpx.Response) -> str:
    code, msg = _binance_error(response)
    if code is not None or msg is not None:
        return f"code {code}: {msg}"
    return response.text[:200] or response.reason_phrase


__all__ = [
    "PAGE_LIMIT",
    "REST_URL",
    "BinanceRest",
    "RestStats",
    "from_epoch_ms",
    "to_epoch_ms",
    "to_epoch_us",
]
