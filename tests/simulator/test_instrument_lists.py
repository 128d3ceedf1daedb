"""Fetching every venue's instrument list from the simulator over loopback."""

import pytest

from marketlake.instrument_fetch import fetch_instruments
from marketlake.instrument_specs import InstrumentListError
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator

UNIVERSE = (
    "BTCUSDT", "BTC-USD", "BTC-USDT-SWAP", "BTC-USD-241227", "BTC-PERPETUAL",
    "BTC-27DEC24-100000-C",
)  # fmt: skip


@pytest.fixture(scope="module")
def sim():
    with Simulator(SimConfig(trades_per_day=1_000, symbols=UNIVERSE)) as simulator:
        yield simulator


def listed(sim, venue: str) -> dict[str, object]:
    return {i.symbol: i for i in fetch_instruments(venue, sim.base_url)}


def test_okx_lists_spot_swaps_and_futures_with_their_contract_sizes(sim):
    okx = listed(sim, "okx")
    assert {s: i.key for s, i in okx.items()} == {
        "BTC-USD": "BTC-USD spot",
        "BTC-USDT-SWAP": "BTC-USD perpetual",
        "BTC-USD-241227": "BTC-USD future 2024-12-27",
    }
    swap, future = okx["BTC-USDT-SWAP"], okx["BTC-USD-241227"]
    assert (swap.contract_size, swap.inverse, swap.settle) == (0.01, False, "USDT")
    assert (future.contract_size, future.inverse, future.settle) == (100.0, True, "BTC")
    # 3 contracts of 0.01 BTC; 5 contracts of 100 USD at 100,000
    assert swap.base_quantity(3.0, 100_000.0) == pytest.approx(0.03)
    assert future.base_quantity(5.0, 100_000.0) == pytest.approx(0.005)


def test_deribit_lists_its_perpetual_and_leaves_the_option_out(sim):
    deribit = listed(sim, "deribit")
    assert list(deribit) == ["BTC-PERPETUAL"]
    perpetual = deribit["BTC-PERPETUAL"]
    assert (perpetual.key, perpetual.contract_size, perpetual.inverse) == (
        "BTC-USD perpetual", 10.0, True,
    )  # fmt: skip


def test_coinbase_and_binance_list_spot_markets_under_one_key(sim):
    assert listed(sim, "coinbase")["BTC-USD"].key == "BTC-USD spot"
    assert listed(sim, "binance")["BTCUSDT"].key == "BTC-USD spot"


def test_an_unreachable_list_is_refused_naming_the_venue_and_the_url(sim):
    wrong = f"{sim.base_url}/not-here"
    with pytest.raises(InstrumentListError, match=r"OKX instrument list .*/not-here/api/v5.*404"):
        fetch_instruments("okx", wrong)
