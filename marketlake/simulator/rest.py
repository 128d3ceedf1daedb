"""The api.binance.com side: Binance spot REST market-data endpoints, with Binance's shapes.

Bodies match the real responses (see tests/data/real/binance_rest): compact JSON, prices and
quantities as 8-decimal strings, times in milliseconds even after 2025 (only the archive
switched to µs). Trades exist only up to the simulator clock's now.

aggTrades are one trade each: a = f = l = the trade id. Real Binance merges consecutive
fills of one taker order; one-to-one keeps ids computable without scanning a day and is
still a valid aggTrades stream (a strictly increasing, f <= l, contiguous f/l).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import polars as pl

from marketlake.simulator import book, data, formats
from marketlake.simulator.clock import Clock

JSON_TYPE: Final = "application/json;charset=UTF-8"
API_PREFIX: Final = "/api/"

#: Request weights from Binance's current spot docs (depth depends on `limit`).
WEIGHTS: Final = {
    "/api/v3/historicalTrades": 25,
    "/api/v3/trades": 25,
    "/api/v3/aggTrades": 4,
    "/api/v3/exchangeInfo": 20,
    "/api/v3/ping": 1,
    "/api/v3/time": 1,
}
_DEPTH_WEIGHTS: Final = ((100, 5), (500, 25), (1000, 50), (5000, 250))
_HOUR_MS: Final = 3_600_000
_QUOTE_ASSETS: Final = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR")

Params = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = field(default=())


class ApiError(Exception):
    """A Binance error body `{"code": ..., "msg": ...}` with its HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status

    def response(self) -> Response:
        return json_response({"code": self.code, "msg": self.msg}, self.status)


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode())


def weight_of(path: str, params: Params) -> int:
    """The weight Binance charges for this request (1 for unknown paths)."""
    if path == "/api/v3/depth":
        try:
            limit = int(params.get("limit", ["100"])[0])
        except ValueError:
            limit = 100
        return next((w for top, w in _DEPTH_WEIGHTS if limit <= top), 250)
    return WEIGHTS.get(path, 1)


class RestApi:
    """Answers one REST request from the deterministic universe at the clock's now."""

    def __init__(
        self,
        config: data.SimConfig,
        clock: Clock,
        weight_limit: Callable[[], int],
        window_seconds: float,
    ) -> None:
        self.config = config
        self.clock = clock
        self.weight_limit = weight_limit
        self.window_seconds = window_seconds
        self._routes: dict[str, Callable[[Params], Response]] = {
            "/api/v3/ping": lambda _: json_response({}),
            "/api/v3/time": lambda _: json_response({"serverTime": self._now_us() // 1000}),
            "/api/v3/exchangeInfo": self.exchange_info,
            "/api/v3/trades": self.trades,
            "/api/v3/historicalTrades": self.historical_trades,
            "/api/v3/aggTrades": self.agg_trades,
            "/api/v3/depth": self.depth,
        }
        from marketlake.simulator.venue_rest import routes  # OKX's and Deribit's histories

        self._routes.update(routes(self))

    def handle(self, path: str, params: Params) -> Response:
        route = self._routes.get(path)
        if route is None:
            return Response(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
        try:
            return route(params)
        except ApiError as error:
            return error.response()

    def _now_us(self) -> int:
        return data.to_us(self.clock())

    # --- endpoints ------------------------------------------------------------------------------

    def trades(self, params: Params) -> Response:
        symbol = self._symbol(params)
        limit = _int(params, "limit", 500, 1, 1000)
        frame = data.trades_until(symbol, self._now_us(), self.config, limit)
        return Response(200, formats.trades_json(frame))

    def historical_trades(self, params: Params) -> Response:
        symbol = self._symbol(params)
        limit = _int(params, "limit", 500, 1, 1000)
        from_id = _opt_int(params, "fromId", 0, 2**62)
        return Response(200, formats.trades_json(self._from_id(symbol, from_id, limit)))

    def agg_trades(self, params: Params) -> Response:
        symbol = self._symbol(params)
        limit = _int(params, "limit", 500, 1, 1000)
        from_id = _opt_int(params, "fromId", 0, 2**62)
        start = _opt_int(params, "startTime", 0, 2**62)
        end = _opt_int(params, "endTime", 0, 2**62)
        if from_id is not None and (start is not None or end is not None):
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        if start is None and end is None:
            frame = self._from_id(symbol, from_id, limit)
        else:
            if start is not None and end is not None and end - start > _HOUR_MS:
                raise ApiError(-1127, "More than 1 hours between startTime and endTime.")
            start = end - _HOUR_MS if start is None else start
            end = start + _HOUR_MS if end is None else end
            cfg = self.config
            first = data.first_trade_id_at_or_after(symbol, start * 1000, cfg)
            last = min(
                data.last_trade_id_at(symbol, end * 1000 + 999, cfg),
                data.last_trade_id_at(symbol, self._now_us(), cfg),
                first + limit - 1,
            )
            frame = data.trades_between_ids(symbol, first, last, cfg)
        return Response(200, formats.agg_trades_json(frame))

    def depth(self, params: Params) -> Response:
        symbol = self._symbol(params)
        limit = _int(params, "limit", 100, 1, 5000)
        depth = book.depth_at(symbol, self._now_us(), self.config, levels=limit)
        bids = formats.levels_json(pl.Series(depth.bid_prices), pl.Series(depth.bid_qtys))
        asks = formats.levels_json(pl.Series(depth.ask_prices), pl.Series(depth.ask_qtys))
        body = f'{{"lastUpdateId":{depth.update_id},"bids":{bids},"asks":{asks}}}'
        return Response(200, body.encode())

    def exchange_info(self, params: Params) -> Response:
        symbols = list(self.config.symbols)
        if "symbol" in params:
            symbols = [self._symbol(params)]
        elif "symbols" in params:
            try:
                wanted = json.loads(params["symbols"][0])
            except ValueError:
                wanted = None
            if not isinstance(wanted, list) or not wanted:
                raise ApiError(-1100, "Illegal characters found in parameter 'symbols'.")
            if any(s not in self.config.symbols for s in wanted):
                raise ApiError(-1121, "Invalid symbol.")
            symbols = wanted
        return json_response(
            {
                "timezone": "UTC",
                "serverTime": self._now_us() // 1000,
                "rateLimits": self._rate_limits(),
                "exchangeFilters": [],
                "symbols": [_symbol_info(s) for s in symbols],
            }
        )

    # --- helpers --------------------------------------------------------------------------------

    def _from_id(self, symbol: str, from_id: int | None, limit: int) -> pl.DataFrame:
        """`limit` trades from `from_id` (or the latest `limit`), none after now."""
        cfg = self.config
        last_now = data.last_trade_id_at(symbol, self._now_us(), cfg)
        if from_id is None:
            return data.trades_between_ids(symbol, last_now - limit + 1, last_now, cfg)
        first = max(from_id, data.symbol_params(symbol).base_id)
        return data.trades_between_ids(symbol, first, min(first + limit - 1, last_now), cfg)

    def _symbol(self, params: Params) -> str:
        values = params.get("symbol")
        if not values or not values[0]:
            raise ApiError(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        if values[0] not in self.config.symbols:
            raise ApiError(-1121, "Invalid symbol.")
        return values[0]

    def _rate_limits(self) -> list[dict[str, Any]]:
        seconds = self.window_seconds
        if seconds == 60:
            interval, num = "MINUTE", 1
        else:
            interval, num = "SECOND", max(1, round(seconds))
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": interval,
                "intervalNum": num,
                "limit": self.weight_limit(),
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": 61000,
            },
        ]


def _int(params: Params, name: str, default: int, lo: int, hi: int) -> int:
    value = _opt_int(params, name, lo, hi)
    return default if value is None else value


def _opt_int(params: Params, name: str, lo: int, hi: int) -> int | None:
    """An integer parameter with Binance's error codes for empty, malformed or out of range."""
    values = params.get(name)
    if values is None:
        return None
    text = values[0]
    if text == "":
        raise ApiError(-1105, f"Parameter '{name}' was empty.")
    if not text.isdigit() or len(text) > 20:
        raise ApiError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    value = int(text)
    if not lo <= value <= hi:
        raise ApiError(-1130, f"Invalid data sent for a parameter: '{name}' must be {lo}..{hi}.")
    return value


def _split_symbol(symbol: str) -> tuple[str, str]:
    for quote in _QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol[:-3], symbol[-3:]


def _symbol_info(symbol: str) -> dict[str, Any]:
    """One exchangeInfo symbol in the current shape (permissionSets, NOTIONAL filter...)."""
    base, quote = _split_symbol(symbol)
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "opoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "pegInstructionsAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": "100.00000000",
                "stepSize": "0.00000000",
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": [
            "EXPIRE_TAKER",
            "EXPIRE_MAKER",
            "EXPIRE_BOTH",
            "DECREMENT",
        ],
    }
