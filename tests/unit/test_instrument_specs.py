"""Normalized instruments from the venues' real instrument lists and from symbol syntax."""

import datetime as dt
import json

import pytest
from support.samples import BINANCE_EXCHANGE_INFO, DERIBIT_INSTRUMENTS, OKX_INSTRUMENTS_SPOT

from marketlake.exchanges.registry import VENUES
from marketlake.instrument_specs import (
    InstrumentListError,
    by_symbol,
    instrument_from_symbol,
    parse_instrument_list,
    resolve,
)
from marketlake.schemas import EXCHANGES, InvalidSymbolError, normalize_symbol


def _listed(venue, path):
    return by_symbol(parse_instrument_list(venue, json.loads(path.read_text())))


def test_okx_spot_list_gives_usd_quoted_spot_instruments_with_unit_size():
    listed = _listed("okx", OKX_INSTRUMENTS_SPOT)
    assert sorted(s for _, s in listed) == ["BTC-USD", "ETH-USD", "SOL-USD", "USDT-USD", "XRP-USD"]
    btc = listed[("okx", "BTC-USD")]
    assert (btc.base, btc.quote, btc.kind, btc.contract_size, btc.inverse, btc.settle) == (
        "BTC", "USD", "spot", 1.0, False, "USD",
    )  # fmt: skip
    assert btc.key == "BTC-USD spot"


def test_deribit_list_gives_an_inverse_perpetual_and_a_dated_future_and_leaves_out_options():
    listed = _listed("deribit", DERIBIT_INSTRUMENTS)
    assert sorted(s for _, s in listed) == ["BTC-27DEC24", "BTC-PERPETUAL"]
    perpetual = listed[("deribit", "BTC-PERPETUAL")]
    assert (perpetual.kind, perpetual.inverse, perpetual.contract_size, perpetual.settle) == (
        "perpetual", True, 10.0, "BTC",
    )  # fmt: skip
    assert perpetual.key == "BTC-USD perpetual"
    future = listed[("deribit", "BTC-27DEC24")]
    assert future.expiry == dt.date(2024, 12, 27)
    assert future.key == "BTC-USD future 2024-12-27"


def test_binance_exchange_info_gives_spot_pairs_keyed_with_the_usd_group():
    listed = _listed("binance", BINANCE_EXCHANGE_INFO)
    btc = listed[("binance", "BTCUSDT")]
    assert (btc.base, btc.quote, btc.kind) == ("BTC", "USDT", "spot")
    assert btc.key == "BTC-USD spot"  # USDT compares with USD: one group
    assert listed[("binance", "ETHUSDT")].key == "ETH-USD spot"


def test_the_symbol_fallback_agrees_with_every_listed_instrument_of_the_real_lists():
    for venue, path in [
        ("okx", OKX_INSTRUMENTS_SPOT),
        ("deribit", DERIBIT_INSTRUMENTS),
        ("binance", BINANCE_EXCHANGE_INFO),
    ]:
        for (_, symbol), listed in _listed(venue, path).items():
            derived = instrument_from_symbol(venue, symbol)
            assert derived is not None
            assert (derived.key, derived.inverse, derived.settle, derived.qty_unit) == (
                listed.key, listed.inverse, listed.settle, listed.qty_unit,
            ), symbol  # fmt: skip


def test_the_four_spellings_of_bitcoin_in_dollars_meet_under_two_keys():
    keys = {
        (venue, symbol): instrument_from_symbol(venue, symbol).key
        for venue, symbol in [
            ("binance", "BTCUSDT"),
            ("okx", "BTC-USDT"),
            ("coinbase", "BTC-USD"),
            ("deribit", "BTC-PERPETUAL"),
            ("okx", "BTC-USDT-SWAP"),
        ]
    }
    assert keys == {
        ("binance", "BTCUSDT"): "BTC-USD spot",
        ("okx", "BTC-USDT"): "BTC-USD spot",
        ("coinbase", "BTC-USD"): "BTC-USD spot",
        ("deribit", "BTC-PERPETUAL"): "BTC-USD perpetual",
        ("okx", "BTC-USDT-SWAP"): "BTC-USD perpetual",
    }


def test_base_quantity_turns_each_venues_qty_into_bitcoin():
    deribit = instrument_from_symbol("deribit", "BTC-PERPETUAL")  # qty is USD
    assert deribit.base_quantity(50_000.0, 100_000.0) == 0.5
    listed = parse_instrument_list(
        "okx",
        {
            "code": "0",
            "data": [
                {
                    "instId": "BTC-USDT-SWAP",
                    "instType": "SWAP",
                    "instFamily": "BTC-USDT",
                    "ctType": "linear",
                    "ctVal": "0.01",
                    "settleCcy": "USDT",
                },
                {
                    "instId": "BTC-USD-SWAP",
                    "instType": "SWAP",
                    "instFamily": "BTC-USD",
                    "ctType": "inverse",
                    "ctVal": "100",
                    "settleCcy": "BTC",
                },
            ],
        },
    )  # fmt: skip (a hand-written OKX SWAP list: no real one is among the samples)
    linear, inverse = listed
    assert linear.base_quantity(3.0, 100_000.0) == pytest.approx(0.03)  # 3 contracts x 0.01
    assert inverse.base_quantity(5.0, 100_000.0) == pytest.approx(0.005)  # 5 x 100 USD
    assert instrument_from_symbol("okx", "BTC-USDT-SWAP").base_quantity(3.0, 1.0) is None


def test_options_are_not_placed_side_by_side():
    assert instrument_from_symbol("deribit", "BTC-27DEC24-100000-C") is None
    assert instrument_from_symbol("okx", "BTC-USD-241227-100000-C") is None


def test_a_listed_instrument_wins_over_the_symbol_syntax():
    listed = _listed("deribit", DERIBIT_INSTRUMENTS)
    assert resolve("deribit", "BTC-PERPETUAL", listed).contract_size == 10.0
    assert resolve("deribit", "BTC-PERPETUAL").contract_size is None


@pytest.mark.parametrize(
    ("venue", "payload", "problem"),
    [
        ("okx", {"code": "50011", "msg": "Too Many Requests"}, "error code '50011'"),
        ("okx", {"code": "0", "data": [{"instId": "BTC-USD", "instType": "SPOT"}]}, "'baseCcy'"),
        ("deribit", {"result": "nope"}, "'result' is not a list"),
        ("binance", {"symbols": [{"symbol": "BTCUSDT", "baseAsset": "BTC"}]}, "'quoteAsset'"),
        ("kraken", {}, "no instrument list parser for venue 'kraken'"),
    ],
)
def test_a_bad_instrument_list_is_refused_naming_what_is_wrong(venue, payload, problem):
    with pytest.raises(InstrumentListError, match=problem):
        parse_instrument_list(venue, payload)


def test_a_contract_without_a_size_is_refused_naming_the_instrument():
    item = {"instId": "BTC-USD-SWAP", "instType": "SWAP", "uly": "BTC-USD", "ctVal": ""}
    with pytest.raises(InstrumentListError, match=r"'BTC-USD-SWAP'.*'ctVal'"):
        parse_instrument_list("okx", {"code": "0", "data": [item]})


def test_every_registered_venue_has_an_instrument_list_and_a_lake_symbol_rule():
    assert tuple(VENUES) == EXCHANGES
    for venue in VENUES.values():
        assert venue.instruments is not None and venue.instruments.paths
    assert normalize_symbol("btc-usdt-swap", "okx") == "BTC-USDT-SWAP"
    assert normalize_symbol(" btc-perpetual", "deribit") == "BTC-PERPETUAL"
    with pytest.raises(InvalidSymbolError, match="invalid OKX instrument 'BTC/USDT'"):
        normalize_symbol("BTC/USDT", "okx")
