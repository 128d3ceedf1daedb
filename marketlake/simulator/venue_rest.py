"""The REST trade histories of OKX and Deribit, from the same universe their websockets send.

Only what a gap fill needs, in the venues' own shapes:

- OKX ``GET /api/v5/market/history-trades?instId=&type=1&after=&before=&limit=`` (``type=1``:
  page by trade id; ``after`` = ids below it, ``before`` = ids above it; newest first, at
  most 100): ``{"code": "0", "msg": "", "data": [{instId, side, sz, px, tradeId, ts}]}``,
  numbers as strings, ``side`` the taker's.
- Deribit ``GET /api/v2/public/get_last_trades_by_instrument?instrument_name=&start_seq=
  &end_seq=&count=&sorting=asc`` (at most 1000): ``{"jsonrpc": "2.0", "result": {"trades":
  [...], "has_more"}, "usIn", "usOut", "usDiff", "testnet"}`` with the websocket's trade
  fields (``trade_seq`` the id).

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


def deribit_last_trades(api: RestApi, params: Params) -> Response:
    from marketlake.simulator.rest import Response

    us_in = time.time_ns() // 1000

    def answer(body: dict[str, Any], status: int = 200) -> Response:
        us_out = time.time_ns() // 1000
        body = {"jsonrpc": "2.0", **body, "usIn": us_in, "usOut": us_out}
        body |= {"usDiff": us_out - us_in, "testnet": False}
        return Response(status, orjson.dumps(body))

    inst = params.get("instrument_name", [""])[0]
    if inst not in api.config.symbols:
        error = {"code": 10020, "message": "instrument_not_found", "data": {"param": inst}}
        return answer({"error": error}, 400)
    count = min(_int(params, "count") or 10, DERIBIT_PAGE)
    start, end = _int(params, "start_seq"), _int(params, "end_seq")
    now_last = data.last_trade_id_at(inst, data.to_us(api.clock()), api.config)
    first = start if start is not None else now_last - count + 1
    last = min(end if end is not None else now_last, first + count - 1)
    rows = _rows(inst, first, last, api)
    if params.get("sorting", ["asc"])[0] == "desc":
        rows = rows[::-1]
    trades = [
        trade_item(inst, trade_id, price, qty, time_value, is_buyer_maker)
        for trade_id, price, qty, _quote, time_value, is_buyer_maker, _best in rows
    ]
    has_more = bool(rows) and last < (end if end is not None else now_last)
    return answer({"result": {"trades": trades, "has_more": has_more}})
