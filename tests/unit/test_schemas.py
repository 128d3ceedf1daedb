import pytest

from marketlake.schemas import InvalidSymbolError, normalize_symbol, parse_symbols


def test_binance_symbols_are_upper_cased():
    assert normalize_symbol(" btcusdt ") == "BTCUSDT"


@pytest.mark.parametrize("bad", ["../x", "BTC/USDT", "BTCUSDT?x=1", "B", "BTC USDT", "", "A" * 21])
def test_symbols_that_could_escape_a_path_or_url_are_refused(bad):
    with pytest.raises(InvalidSymbolError, match="invalid Binance symbol"):
        normalize_symbol(bad)


def test_coinbase_products_keep_their_dash():
    assert normalize_symbol("btc-usd", "coinbase") == "BTC-USD"
    with pytest.raises(InvalidSymbolError, match="Coinbase"):
        normalize_symbol("BTCUSD", "coinbase")


def test_symbols_are_accepted_comma_or_space_separated_without_repeats():
    assert parse_symbols(["BTCUSDT,ethusdt", "SOLUSDT", "BTCUSDT"]) == [
        "BTCUSDT",
        "ETHUSDT",
        "SOLUSDT",
    ]


def test_an_unknown_exchange_is_named_in_the_error():
    with pytest.raises(InvalidSymbolError, match="unknown exchange 'kraken'"):
        normalize_symbol("BTCUSDT", "kraken")


def test_okx_and_deribit_symbols_are_lake_symbols_by_the_registrys_rules():
    from dbt_like_sql.partition import validate_partition

    assert parse_symbols(["btc-usdt, btc-usdt-swap"], "okx") == ["BTC-USDT", "BTC-USDT-SWAP"]
    assert normalize_symbol("xrp_usdc-30jun23-0d625-c", "deribit") == "XRP_USDC-30JUN23-0d625-C"
    partition = {"exchange": "deribit", "symbol": "btc-perpetual", "date": "2024-03-01"}
    assert validate_partition(partition)["symbol"] == "BTC-PERPETUAL"
    with pytest.raises(InvalidSymbolError, match="invalid Deribit instrument 'BTC/PERP'"):
        normalize_symbol("BTC/PERP", "deribit")
