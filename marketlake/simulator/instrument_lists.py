"""The venues' instrument lists, for the universe's symbols, in the venues' own shapes.

So that `marketlake.instrument_fetch` is exercised over loopback like every other client:

- OKX ``GET /api/v5/public/instruments?instType=SPOT|SWAP|FUTURES``: ``{"code": "0", "msg":
  "", "data": [...]}``, numbers as strings, contract fields empty on spot (as in
  tests/data/real/okx/nautilus_http_get_instruments_spot.json);
- Deribit ``GET /api/v2/public/get_instruments?currency=``: JSON-RPC ``result`` list with
  ``kind``, ``instrument_type`` ("reversed" for inverse), ``contract_size``,
  ``settlement_period``, ``expiration_timestamp`` (ms);
- Coinbase Advanced Trade ``GET /api/v3/brokerage/market/products``: ``{"products": [...],
  "num_products"}`` with ``product_id``, ``base_currency_id``, ``quote_currency_id``,
  ``product_type`` "SPOT".

A venue lists the universe's symbols spelled as its instruments (``BTC-USDT-SWAP`` is an OKX
swap, ``BTC-PERPETUAL`` a Deribit perpetual), described as their syntax reads
(`marketlake.instrument_specs.instrument_from_symbol`); contract sizes are OKX's and Deribit's
for BTC (0.01 BTC linear / 100 USD inverse; 10 USD).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import orjson

from marketlake.exchanges.registry import VENUES
from marketlake.instrument_specs import InstrumentListError, InstrumentSpec, instrument_from_symbol

if TYPE_CHECKING:
    from marketlake.simulator.rest import Params, Response, RestApi

_OKX_TYPES: Final = {"spot": "SPOT", "perpetual": "SWAP", "future": "FUTURES"}
_LISTED_MS: Final = "1733454000000"  # the real sample's listTime
_PERPETUAL_EXPIRY_MS: Final = 32503708800000  # Deribit's "never": the year 3000


def routes(api: RestApi) -> dict[str, Callable[[Params], Response]]:
    return {
        "/api/v5/public/instruments": lambda params: okx_instruments(api, params),
        "/api/v2/public/get_instruments": lambda params: deribit_instruments(api),
        "/api/v3/brokerage/market/products": lambda params: coinbase_products(api),
    }


def listed(api: RestApi, venue: str) -> list[InstrumentSpec]:
    """The universe's symbols that are instruments of ``venue``, in the universe's order.

    The universe is one list for every venue, and ``BTC-PERPETUAL`` is spelled like a
    Coinbase product too: a symbol is listed as a spot pair only where its quote reads as a
    currency (2-5 letters), so each venue lists what it would really list.
    """
    found = []
    for symbol in api.config.symbols:
        if not VENUES[venue].accepts(symbol):
            continue
        try:
            instrument = instrument_from_symbol(venue, symbol)
        except InstrumentListError:
            continue
        if instrument is None:
            continue
        if instrument.kind == "spot" and not (
            instrument.quote.isalpha() and 2 <= len(instrument.quote) <= 5
        ):
            continue
        found.append(instrument)
    return found


def _json(body: Any, status: int = 200) -> Response:
    from marketlake.simulator.rest import Response

    return Response(status, orjson.dumps(body))


def okx_instruments(api: RestApi, params: Params) -> Response:
    wanted = params.get("instType", [""])[0]
    if wanted not in _OKX_TYPES.values() and wanted not in ("MARGIN", "OPTION"):
        return _json({"code": "51000", "msg": "Parameter instType error", "data": []})
    rows = []
    for i in listed(api, "okx"):
        if _OKX_TYPES[i.kind] != wanted:
            continue
        row = {"instId": i.symbol, "instType": wanted, "baseCcy": "", "quoteCcy": "",
               "instFamily": "", "uly": "", "ctType": "", "ctVal": "", "ctValCcy": "",
               "settleCcy": "", "expTime": "", "listTime": _LISTED_MS, "state": "live",
               "tickSz": "0.1", "lotSz": "0.00000001", "minSz": "0.00001"}  # fmt: skip
        if i.kind == "spot":
            row |= {"baseCcy": i.base, "quoteCcy": i.quote}
        else:
            family = f"{i.base}-{i.quote}"
            row |= {"instFamily": family, "uly": family, "settleCcy": i.settle,
                    "ctType": "inverse" if i.inverse else "linear",
                    "ctVal": "100" if i.inverse else "0.01",
                    "ctValCcy": i.quote if i.inverse else i.base,
                    "lotSz": "1", "minSz": "1"}  # fmt: skip
            if i.expiry is not None:
                row["expTime"] = str(_expiry_ms(i.expiry))
        rows.append(row)
    return _json({"code": "0", "msg": "", "data": rows})


def deribit_instruments(api: RestApi) -> Response:
    us_in = time.time_ns() // 1000
    result = []
    for i in listed(api, "deribit"):
        kind = "spot" if i.kind == "spot" else "future"
        result.append(
            {"instrument_name": i.symbol, "kind": kind, "base_currency": i.base,
             "quote_currency": i.quote, "counter_currency": i.quote,
             "settlement_currency": i.settle,
             "instrument_type": "reversed" if i.inverse else "linear",
             "contract_size": 10.0 if i.inverse else 1.0,
             "settlement_period": {"perpetual": "perpetual", "future": "month"}.get(i.kind),
             "expiration_timestamp": _expiry_ms(i.expiry) if i.expiry else _PERPETUAL_EXPIRY_MS,
             "is_active": True, "tick_size": 0.5, "min_trade_amount": 10.0}
        )  # fmt: skip
    us_out = time.time_ns() // 1000
    return _json(
        {"jsonrpc": "2.0", "result": result, "usIn": us_in, "usOut": us_out,
         "usDiff": us_out - us_in, "testnet": False}
    )  # fmt: skip


def coinbase_products(api: RestApi) -> Response:
    products = [
        {"product_id": i.symbol, "base_currency_id": i.base, "quote_currency_id": i.quote,
         "product_type": "SPOT", "status": "online", "trading_disabled": False}
        for i in listed(api, "coinbase")
    ]  # fmt: skip
    return _json({"products": products, "num_products": len(products)})


def _expiry_ms(day: dt.date) -> int:
    """08:00 UTC on the expiry day, when both OKX and Deribit settle."""
    return int(dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC).timestamp() * 1000)
