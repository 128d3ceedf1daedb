"""The REST trade histories of OKX and Deribit, from the same universe their websockets send.

What a gap fill and a day's backfill need, in the venues' own shapes:

- OKX ``GET /api/v5/market/history-trades?instId=&type=&after=&before=&limit=`` (newest
  first, at most 100): ``type=1`` (the default) pages by trade id, ``after`` = ids below it,
  ``before`` = ids above it; ``type=2`` by time in ms, ``after`` = trades before that ms,
  ``before`` = trades after it. ``{"code": "0", "msg": "", "data": [{instId, side, sz, px,
  source, tradeId, ts}]}``, numbers as strings, ``side`` the taker's.
- Deribit ``GET /api/v2/public/get_last_trades_by_instrument?instrument_name=&start_seq=
  &end_seq=&count=&sorting=asc`` and ``.../get_last_trades_by_instrument_and_time?
  instrument_name=&start_timestamp=&end_timestamp=&count=&sorting=`` (ms, both inclusive;
  at most 1000, the oldest of the range unless ``sorting=desc``): ``{"jsonrpc": "2.0",
  "result": {"trades": [...], "has_more"}, "usIn", "usOut", "usDiff", "testnet"}`` with
  the websocket's trade fields (``trade_seq`` the id).

Trades exist only up to the simulator clock's now, as everywhere in the simulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import orjson

from marketlake.simulator import data
from marketlake.simulator.websocket.deribit import trade_item
from marketlake.simulator.websocket.l2 import number
from marketlake.simulator.websocket.session import trade_time_us

if TYPE_CHECKING:
    from marketlake.simulator.rest import Params, Response, RestApi

OKX_PAGE: Final = 100
DERIBIT_PAGE: Final = 1000


def routes(api: RestApi) -> dict[str, Callable[[Params], Response]]:
    from marketlake.simulator import instrument_lists  # the venues' instrument lists

    return {
        "/api/v5/market/history-trades": lambda params: okx_history_trades(api, params),
        "/api/v2/public/get_last_trades_by_instrument": lambda p: deribit_last_trades(api, p),
        "/api/v2/public/get_last_trades_by_instrument_and_time": (
            lambda p: deribit_last_trades_by_time(api, p)
        ),
        **instrument_lists.routes(api),
    }


def _int(params: Params, name: str) -> int | None:
    text = params.get(name, [""])[0]
    return int(text) if text.isdigit() and len(text) < 20 else None


def _rows(symbol: str, first: int, last: int, api: RestApi) -> list[tuple]:
    cfg = api.config
    last = min(last, data.last_trade_id_at(symbol, data.to_us(api.clock()), cfg))
    first = max(first, data.symbol_params(symbol).base_id)
    if last < first:
        return []
    return data.trades_between_ids(symbol, first, last, cfg).rows()


def okx_history_trades(api: RestApi, params: Params) -> Response:
    from marketlake.simulator.rest import Response

    def answer(code: str, msg: str, rows: list[dict[str, Any]], status: int = 200) -> Response:
        return Response(status, orjson.dumps({"code": code, "msg": msg, "data": rows}))

    inst = params.get("instId", [""])[0]
    if inst not in api.config.symbols:
        return answer("51001", "Instrument ID does not exist", [])
    limit = min(_int(params, "limit") or OKX_PAGE, OKX_PAGE)
    after, before = _int(params, "after"), _int(params, "before")
    kind = params.get("type", ["1"])[0]
    if kind not in ("1", "2"):
        return answer("51000", "Parameter type error", [])
    if kind == "2":  # `after`/`before` are ms times: turn them into the ids around them
        if after is not None:
            after = data.first_trade_id_at_or_after(inst, after * 1000, api.config)
        if before is not None:
            before = data.first_trade_id_at_or_after(inst, (before + 1) * 1000, api.config) - 1
    if after is not None:  # ids below `after`, the newest of them first
        rows = _rows(inst, after - limit, after - 1, api)
    elif before is not None:  # ids above `before`: the oldest `limit` of them
        rows = _rows(inst, before + 1, before + limit, api)
    else:
        now_last = data.last_trade_id_at(inst, data.to_us(api.clock()), api.config)
        rows = _rows(inst, now_last - limit + 1, now_last, api)
    items = [
        {
            "instId": inst,
            "side": "sell" if is_buyer_maker else "buy",
            "sz": number(qty),
            "px": number(price),
            "source": "0",
            "tradeId": str(trade_id),
            "ts": str(trade_time_us(time_value) // 1000),
        }
        for trade_id, price, qty, _quote, time_value, is_buyer_maker, _best in reversed(rows)
    ]
    return answer("0", "", items)


def _deribit_answer(body: dict[str, Any], status: int, us_in: int) -> Response:
    from marketlake.simulator.rest import Response

    us_out = time.time_ns() // 1000
    body = {"jsonrpc": "2.0", **body, "usIn": us_in, "usOut": us_out}
    body |= {"usDiff": us_out - us_in, "testnet": False}
    return Response(status, orjson.dumps(body))


def _deribit_trades(
    api: RestApi, params: Params, page: Callable[[str, int, int], tuple[int, int, bool]]
) -> Response:
    """The answer common to Deribit's trade histories; ``page(inst, count, now_last)`` is
    the (first, last) trade_seq served and whether the range holds more beyond them."""
    us_in = time.time_ns() // 1000
    inst = params.get("instrument_name", [""])[0]
    if inst not in api.config.symbols:
        error = {"code": 10020, "message": "instrument_not_found", "data": {"param": inst}}
        return _deribit_answer({"error": error}, 400, us_in)
    count = min(_int(params, "count") or 10, DERIBIT_PAGE)
    now_last = data.last_trade_id_at(inst, data.to_us(api.clock()), api.config)
    first, last, has_more = page(inst, count, now_last)
    rows = _rows(inst, first, last, api)
    if params.get("sorting", ["asc"])[0] == "desc":
        rows = rows[::-1]
    trades = [
        trade_item(inst, trade_id, price, qty, time_value, is_buyer_maker)
        for trade_id, price, qty, _quote, time_value, is_buyer_maker, _best in rows
    ]
    has_more = bool(rows) and has_more
    return _deribit_answer({"result": {"trades": trades, "has_more": has_more}}, 200, us_in)


def deribit_last_trades(api: RestApi, params: Params) -> Response:
    start, end = _int(params, "start_seq"), _int(params, "end_seq")

    def page(inst: str, count: int, now_last: int) -> tuple[int, int, bool]:
        first = start if start is not None else now_last - count + 1
        last = min(end if end is not None else now_last, first + count - 1)
        return first, last, last < (end if end is not None else now_last)

    return _deribit_trades(api, params, page)


def deribit_last_trades_by_time(api: RestApi, params: Params) -> Response:
    start_ms, end_ms = _int(params, "start_timestamp"), _int(params, "end_timestamp")
    if start_ms is None and end_ms is None:
        error = {"code": -32602, "message": "Invalid params", "data": {"param": "end_timestamp"}}
        return _deribit_answer({"error": error}, 400, time.time_ns() // 1000)
    desc = params.get("sorting", ["asc"])[0] == "desc"

    def page(inst: str, count: int, now_last: int) -> tuple[int, int, bool]:
        cfg = api.config
        low = data.first_trade_id_at_or_after(inst, (start_ms or 0) * 1000, cfg)
        high = now_last
        if end_ms is not None:  # inclusive: every trade of that millisecond
            high = min(high, data.first_trade_id_at_or_after(inst, (end_ms + 1) * 1000, cfg) - 1)
        if desc:  # the newest `count` of the range
            return max(low, high - count + 1), high, high - count + 1 > low
        return low, min(high, low + count - 1), low + count - 1 < high

    return _deribit_trades(api, params, page)
