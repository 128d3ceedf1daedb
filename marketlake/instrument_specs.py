"""Normalized instruments: what a venue's symbol *is*, so venues can be put side by side.

``BTCUSDT`` (Binance), ``BTC-USDT`` (OKX), ``BTC-USD`` (Coinbase) and ``BTC-PERPETUAL``
(Deribit) are four spellings, and not all the same thing: the first three are spot
markets, the last an inverse perpetual swap quoted in USD, settled in BTC, whose trade
amounts are USD. An `InstrumentSpec` says so, from the venue's own instrument list where one
was fetched (`parse_instrument_list`), or from the symbol's syntax where not
(`instrument_from_symbol`, the offline fallback).

How quotes compare. ``quote`` is kept exactly as the venue gives it (USDT stays USDT). The
*key* that joins venues (`InstrumentSpec.key`, e.g. ``BTC-USD spot``) puts the quote currencies
of `USD_EQUIVALENTS` (USD, USDT, USDC) in one group, ``USD``. Why: the question the
side-by-side answers is "what does one BTC cost on each venue, right now", and the answer
a user expects for Binance's BTCUSDT and Coinbase's BTC-USD is one row each under one
instrument, not two instruments that never meet. The stablecoins' own basis (usually a few
basis points) then shows up in the cross-venue gap, where it belongs, and the ``quote``
column beside each row says which currency a venue's price is in. Any other quote (BTC,
EUR, ...) is its own group. The kind stays in the key: a perpetual's price carries funding
and a future's carries its expiry (which is part of a future's key), so they are not spot.

Quantities. The lake keeps each venue's own unit in ``qty``: base currency for spot
markets, contracts for OKX swaps and futures, USD for Deribit's inverse contracts.
`base_quantity` turns any of them into base currency, which is what a VWAP needs to weigh
trades alike across venues.

Options and combos are not placed side by side (their price is a premium, not the
underlying's): the parsers skip them and the fallback answers None.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from marketlake.exchanges.registry import VENUES

Kind = Literal["spot", "perpetual", "future"]
#: What one unit of the lake's ``qty`` is: base currency, contracts, or quote currency.
QtyUnit = Literal["base", "contracts", "quote"]

KINDS: Final = ("spot", "perpetual", "future")
#: Quote currencies compared as one (the key's ``USD``); see the module docstring for why.
USD_EQUIVALENTS: Final = frozenset({"USD", "USDT", "USDC"})

#: Binance quote assets, longest first, for splitting a symbol with no separator
#: (``BTCUSDT`` -> BTC/USDT, ``ETHBTC`` -> ETH/BTC). Only used where no exchangeInfo is.
BINANCE_QUOTES: Final = (
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USDP", "DAI", "BTC", "ETH", "BNB", "EUR",
    "TRY", "BRL", "GBP", "JPY", "AUD", "XRP", "SOL", "USD",
)  # fmt: skip


class InstrumentListError(ValueError):
    """A venue's instrument list that can't be read: says which venue, item and field."""


@dataclass(frozen=True)
class InstrumentSpec:
    """One venue's instrument, normalized.

    ``contract_size`` is the venue's: base currency per contract for linear contracts,
    quote currency per contract for inverse ones, 1 for spot, None when unknown (the
    symbol-only fallback for contracts). ``settle`` is the currency profit and loss is paid
    in. ``expiry`` is the day a future expires (None otherwise).
    """

    venue: str
    symbol: str
    base: str
    quote: str
    kind: Kind
    contract_size: float | None
    inverse: bool
    settle: str
    expiry: dt.date | None = None
    qty_unit: QtyUnit = "base"

    @property
    def quote_group(self) -> str:
        """``USD`` for any of `USD_EQUIVALENTS`, the quote itself otherwise."""
        return "USD" if self.quote in USD_EQUIVALENTS else self.quote

    @property
    def key(self) -> str:
        """The name venues are joined on: ``BTC-USD spot``, ``BTC-USD future 2024-12-27``."""
        key = f"{self.base}-{self.quote_group} {self.kind}"
        return f"{key} {self.expiry.isoformat()}" if self.expiry else key

    def base_quantity(self, qty: float, price: float) -> float | None:
        """``qty`` (in the lake's unit for this instrument) as base currency."""
        if self.qty_unit == "base":
            return qty
        if self.qty_unit == "quote":
            return qty / price
        if self.contract_size is None:
            return None
        return qty * self.contract_size / price if self.inverse else qty * self.contract_size


# --- instrument lists ----------------------------------------------------------------------


def parse_okx_instruments(payload: Mapping[str, Any]) -> list[InstrumentSpec]:
    """OKX ``GET /api/v5/public/instruments`` (any ``instType``): spot, swaps and futures.

    Numbers come as strings; contract fields are empty strings on spot. A swap's ``sz``
    counts contracts of ``ctVal`` ``ctValCcy`` each (``ctType`` linear or inverse).
    """
    if str(payload.get("code")) != "0":
        raise InstrumentListError(
            f"OKX instruments: error code {payload.get('code')!r}: {payload.get('msg')!r}"
        )
    found = []
    for item in _items(payload, "data", "OKX"):
        name = _text(item, "instId", "OKX")
        kind = {"SPOT": "spot", "SWAP": "perpetual", "FUTURES": "future"}.get(item.get("instType"))
        if kind is None:  # OPTION, MARGIN
            continue
        if kind == "spot":
            base, quote = _text(item, "baseCcy", "OKX", name), _text(item, "quoteCcy", "OKX", name)
            found.append(InstrumentSpec("okx", name, base, quote, "spot", 1.0, False, quote))
            continue
        family = item.get("instFamily") or item.get("uly") or ""
        base, _, quote = family.partition("-")
        if not (base and quote):
            raise InstrumentListError(f"OKX instrument {name!r}: no instFamily/uly BASE-QUOTE")
        inverse = item.get("ctType") == "inverse"
        expiry = _ms_date(item.get("expTime"), name, "OKX") if kind == "future" else None
        found.append(
            InstrumentSpec(
                "okx", name, base, quote, kind, _number(item, "ctVal", "OKX", name), inverse,
                item.get("settleCcy") or (base if inverse else quote), expiry, "contracts",
            )
        )  # fmt: skip
    return found


def parse_deribit_instruments(payload: Mapping[str, Any]) -> list[InstrumentSpec]:
    """Deribit ``public/get_instruments``: spot pairs, perpetuals and futures.

    ``instrument_type`` "reversed" is inverse: its trade ``amount`` is USD (the lake's qty);
    a linear (USDC) contract's amount is base currency, as a spot pair's is.
    """
    if "error" in payload:
        raise InstrumentListError(f"Deribit instruments: error {payload['error']!r}")
    found = []
    for item in _items(payload, "result", "Deribit"):
        name = _text(item, "instrument_name", "Deribit")
        kind = item.get("kind")
        if kind == "future":
            kind = "perpetual" if item.get("settlement_period") == "perpetual" else "future"
        elif kind != "spot":  # option, future_combo, option_combo
            continue
        inverse = item.get("instrument_type") == "reversed"
        base = _text(item, "base_currency", "Deribit", name)
        quote = item.get("counter_currency") or _text(item, "quote_currency", "Deribit", name)
        expiry = (
            _ms_date(item.get("expiration_timestamp"), name, "Deribit")
            if kind == "future"
            else None
        )
        found.append(
            InstrumentSpec(
                "deribit", name, base, quote, kind,
                _number(item, "contract_size", "Deribit", name), inverse,
                item.get("settlement_currency") or quote, expiry,
                "quote" if inverse else "base",
            )
        )  # fmt: skip
    return found


def parse_binance_exchange_info(payload: Mapping[str, Any]) -> list[InstrumentSpec]:
    """Binance spot ``GET /api/v3/exchangeInfo``: every symbol is a spot pair."""
    found = []
    for item in _items(payload, "symbols", "Binance"):
        name = _text(item, "symbol", "Binance")
        base = _text(item, "baseAsset", "Binance", name)
        quote = _text(item, "quoteAsset", "Binance", name)
        found.append(InstrumentSpec("binance", name, base, quote, "spot", 1.0, False, quote))
    return found


def parse_coinbase_products(payload: Mapping[str, Any]) -> list[InstrumentSpec]:
    """Coinbase Advanced Trade ``GET /api/v3/brokerage/market/products``: spot products.

    Products of another ``product_type`` (FUTURE) are skipped: the feed streams spot only.
    """
    found = []
    for item in _items(payload, "products", "Coinbase"):
        name = _text(item, "product_id", "Coinbase")
        if item.get("product_type", "SPOT") != "SPOT":
            continue
        base = _text(item, "base_currency_id", "Coinbase", name)
        quote = _text(item, "quote_currency_id", "Coinbase", name)
        found.append(InstrumentSpec("coinbase", name, base, quote, "spot", 1.0, False, quote))
    return found


PARSERS: Final[dict[str, Callable[[Mapping[str, Any]], list[InstrumentSpec]]]] = {
    "binance": parse_binance_exchange_info,
    "coinbase": parse_coinbase_products,
    "okx": parse_okx_instruments,
    "deribit": parse_deribit_instruments,
}


def parse_instrument_list(venue: str, payload: Mapping[str, Any]) -> list[InstrumentSpec]:
    """``venue``'s instrument-list response as Instruments (options and combos left out)."""
    parser = PARSERS.get(venue)
    if parser is None:
        raise InstrumentListError(f"no instrument list parser for venue {venue!r}")
    if not isinstance(payload, Mapping):
        raise InstrumentListError(f"{venue} instruments: expected a JSON object")
    return parser(payload)


# --- the offline fallback: the symbol's syntax -----------------------------------------------

_OKX_EXPIRY: Final = re.compile(r"\d{6}")
_DERIBIT_EXPIRY: Final = re.compile(r"(\d{1,2})([A-Z]{3})(\d{2})")
_MONTHS: Final = (
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
)  # fmt: skip


def instrument_from_symbol(venue: str, symbol: str) -> InstrumentSpec | None:
    """The instrument ``symbol`` names on ``venue``, from its syntax alone (no list fetched).

    What the syntax can't tell is left unknown rather than guessed: a contract's size is
    None (so its base volume is too; a VWAP does not need it). What it assumes: Binance is
    the spot exchange; an OKX swap or future quoted in USD is inverse (OKX's coin-margined
    contracts are the USD ones), one in USDT/USDC linear; a Deribit contract without a
    ``_`` quote is inverse, BTC-margined, quoted in USD. Options answer None; a symbol that
    is not the venue's syntax raises `InstrumentListError` naming it.
    """
    known = VENUES.get(venue)
    if known is None or not known.accepts(symbol):
        raise InstrumentListError(f"{symbol!r} is not spelled as an instrument of {venue!r}")
    parts = symbol.split("-")
    if venue == "binance":
        for quote in BINANCE_QUOTES:
            if symbol.endswith(quote) and len(symbol) > len(quote):
                base = symbol[: -len(quote)]
                return InstrumentSpec(venue, symbol, base, quote, "spot", 1.0, False, quote)
    elif venue == "coinbase" and len(parts) == 2 and all(parts):
        return InstrumentSpec(venue, symbol, parts[0], parts[1], "spot", 1.0, False, parts[1])
    elif venue == "okx" and len(parts) >= 2 and all(parts):
        return _okx_from_parts(symbol, parts)
    elif venue == "deribit" and parts[0]:
        return _deribit_from_parts(symbol, parts)
    raise InstrumentListError(f"can't tell the instrument of {venue} symbol {symbol!r}")


def _okx_from_parts(symbol: str, parts: list[str]) -> InstrumentSpec | None:
    base, quote = parts[0], parts[1]
    if len(parts) == 2:
        return InstrumentSpec("okx", symbol, base, quote, "spot", 1.0, False, quote)
    if len(parts) != 3:
        return None  # BTC-USD-240628-60000-C: an option
    inverse = quote == "USD"
    settle = base if inverse else quote
    if parts[2] == "SWAP":
        return InstrumentSpec("okx", symbol, base, quote, "perpetual", None, inverse, settle,
                          None, "contracts")  # fmt: skip
    if _OKX_EXPIRY.fullmatch(parts[2]):
        expiry = dt.datetime.strptime(parts[2], "%y%m%d").date()
        return InstrumentSpec("okx", symbol, base, quote, "future", None, inverse, settle,
                          expiry, "contracts")  # fmt: skip
    raise InstrumentListError(f"can't tell the instrument of okx symbol {symbol!r}")


def _deribit_from_parts(symbol: str, parts: list[str]) -> InstrumentSpec | None:
    head = parts[0]
    base, _, quote = head.partition("_")
    linear = bool(quote)
    quote = quote or "USD"
    settle = quote if linear else base
    unit: QtyUnit = "base" if linear else "quote"
    if len(parts) == 1:
        if not linear:
            raise InstrumentListError(f"can't tell the instrument of deribit symbol {symbol!r}")
        return InstrumentSpec("deribit", symbol, base, quote, "spot", 1.0, False, quote)
    if len(parts) > 2:
        return None  # BTC-27DEC24-100000-C: an option
    if parts[1] == "PERPETUAL":
        return InstrumentSpec("deribit", symbol, base, quote, "perpetual", None, not linear,
                          settle, None, unit)  # fmt: skip
    expiry = _deribit_expiry(parts[1])
    if expiry is None:
        raise InstrumentListError(f"can't tell the instrument of deribit symbol {symbol!r}")
    return InstrumentSpec("deribit", symbol, base, quote, "future", None, not linear, settle,
                      expiry, unit)  # fmt: skip


def _deribit_expiry(text: str) -> dt.date | None:
    """``27DEC24`` -> 2024-12-27 (Deribit writes the day without a leading zero: ``5JAN24``)."""
    match = _DERIBIT_EXPIRY.fullmatch(text)
    if match is None or match[2] not in _MONTHS:
        return None
    try:
        return dt.date(2000 + int(match[3]), _MONTHS.index(match[2]) + 1, int(match[1]))
    except ValueError:
        return None


def resolve(
    venue: str, symbol: str, known: Mapping[tuple[str, str], InstrumentSpec] | None = None
) -> InstrumentSpec | None:
    """The listed instrument when ``known`` (from fetched lists) has it, else the fallback."""
    if known and (found := known.get((venue, symbol))) is not None:
        return found
    return instrument_from_symbol(venue, symbol)


def by_symbol(instruments: Iterable[InstrumentSpec]) -> dict[tuple[str, str], InstrumentSpec]:
    """Instruments by (venue, symbol), the lookup `resolve` takes."""
    return {(i.venue, i.symbol): i for i in instruments}


# --- reading the lists' fields ----------------------------------------------------------------


def _items(payload: Mapping[str, Any], field: str, venue: str) -> list[Mapping[str, Any]]:
    items = payload.get(field)
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise InstrumentListError(f"{venue} instruments: {field!r} is not a list of objects")
    return items


def _text(item: Mapping[str, Any], field: str, venue: str, name: str | None = None) -> str:
    value = item.get(field)
    if not isinstance(value, str) or not value:
        where = f"instrument {name!r}" if name else "an instrument"
        raise InstrumentListError(f"{venue} {where}: field {field!r} missing or empty")
    return value


def _number(item: Mapping[str, Any], field: str, venue: str, name: str) -> float:
    value = item.get(field)
    try:
        number = float(value)  # OKX sends "0.01", Deribit 10.0
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise InstrumentListError(
            f"{venue} instrument {name!r}: field {field!r} is {value!r}, expected a positive number"
        )
    return number


def _ms_date(value: Any, name: str, venue: str) -> dt.date:
    try:
        return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC).date()
    except (TypeError, ValueError, OverflowError, OSError):
        raise InstrumentListError(
            f"{venue} instrument {name!r}: expiry {value!r} is not an epoch-ms time"
        ) from None


__all__ = [
    "KINDS",
    "PARSERS",
    "USD_EQUIVALENTS",
    "InstrumentListError",
    "InstrumentSpec",
    "by_symbol",
    "instrument_from_symbol",
    "parse_instrument_list",
    "resolve",
]
