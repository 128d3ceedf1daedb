"""The four venues declared once: symbols, settings, endpoints, the CLI and the supervisor."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import orjson
import polars as pl
import pytest

from marketlake.exchanges.feed import Send, feed_for
from marketlake.exchanges.registry import VENUES, venue
from marketlake.lake import Lake
from marketlake.schemas import InvalidSymbolError
from marketlake.simulator.data import SimConfig
from marketlake.simulator.websocket import WsSimulator
from orchestration.definitions import build_definitions
from orchestration.live import JOB_NAME, STREAM_TAG, stream_symbols
from orchestration.resources import live_endpoints
from orchestration.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("exchange", "typed", "spelled"),
    [
        ("binance", "btcusdt", "BTCUSDT"),
        ("coinbase", " btc-usd ", "BTC-USD"),
        ("okx", "btc-usdt-swap", "BTC-USDT-SWAP"),
        ("deribit", "btc-perpetual", "BTC-PERPETUAL"),
        ("deribit", "xrp_usdc-30jun23-0d625-c", "XRP_USDC-30JUN23-0d625-C"),
    ],
)
def test_each_venue_spells_its_own_instruments(exchange: str, typed: str, spelled: str) -> None:
    assert venue(exchange).normalize_symbol(typed) == spelled
    assert feed_for(exchange).normalize_symbol(typed) == spelled


@pytest.mark.parametrize(
    ("exchange", "symbol", "named"),
    [
        ("okx", "BTCUSDT", "OKX"),
        ("coinbase", "BTC-USDT-SWAP", "Coinbase"),
        ("deribit", "BTC/X", "Deribit"),
    ],
)
def test_an_instrument_the_venue_cannot_have_is_refused_naming_the_venue(
    exchange: str, symbol: str, named: str
) -> None:
    with pytest.raises(InvalidSymbolError, match=f"invalid {named} .*{symbol!r}"):
        venue(exchange).normalize_symbol(symbol)


def test_an_unknown_venue_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="'kraken': expected binance, coinbase, okx, deribit"):
        venue("kraken")


def test_settings_read_each_venues_urls_and_stream_choices_from_the_environment() -> None:
    env = {v.ws.env: f"ws://127.0.0.1:{i}" for i, v in enumerate(VENUES.values(), 1)}
    env |= {"MARKETLAKE_OKX_REST_URL": "http://127.0.0.1:7", "MARKETLAKE_DERIBIT_REST_URL": "x"}
    env |= {"MARKETLAKE_STREAM_EXCHANGES": "binance, OKX", "MARKETLAKE_OKX_SYMBOLS": "btc-usdt"}
    settings = Settings.from_env(env)
    live = live_endpoints(settings)
    assert live.urls("okx") == ("ws://127.0.0.1:3", "http://127.0.0.1:7")
    assert live.urls("deribit") == ("ws://127.0.0.1:4", "x")
    assert live.urls("coinbase") == ("ws://127.0.0.1:2", None)
    assert settings.stream_exchanges == ("binance", "okx")
    assert dict(settings.stream_symbols) == {"okx": ("BTC-USDT",)}
    config = live.stream_config("deribit", ["BTC-PERPETUAL"], Lake("lake"))
    assert (config.exchange, config.ws_url) == ("deribit", "ws://127.0.0.1:4")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MARKETLAKE_STREAM_EXCHANGES": "okx,kraken"}, "MARKETLAKE_STREAM_EXCHANGES: .*'kraken'"),
        ({"MARKETLAKE_DERIBIT_SYMBOLS": "BTC/USD"}, "MARKETLAKE_DERIBIT_SYMBOLS: invalid Deribit"),
    ],
)
def test_a_bad_stream_setting_names_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_okx_and_deribit_stream_the_instruments_given_else_their_own_partitions() -> None:
    partitions = ["binance:BTCUSDT", "coinbase:BTC-USD"]
    assert stream_symbols("okx", [], partitions) == []  # BTC-USD is Coinbase's here
    assert stream_symbols("okx", [], [*partitions, "okx:BTC-USDT"]) == ["BTC-USDT"]
    assert stream_symbols("okx", ["eth-usdt"], partitions) == ["ETH-USDT"]
    assert stream_symbols("deribit", ["BTC-PERPETUAL"], partitions) == ["BTC-PERPETUAL"]


def test_the_supervisor_launches_one_run_per_configured_venue_tagged_with_it(tmp_path) -> None:
    settings = dataclasses.replace(
        Settings(),
        lake=str(tmp_path / "lake"),
        stream_exchanges=("binance", "deribit"),
        stream_symbols={"deribit": ("BTC-PERPETUAL",)},
    )
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance,
            repository_def=defs.get_repository_def(),
            resources={"lake": Lake(str(tmp_path / "lake"))},
        )
        result = defs.resolve_sensor_def("stream_supervisor").evaluate_tick(context)
    requests = {r.tags[STREAM_TAG]: r for r in result.run_requests}
    assert set(requests) == {"binance", "deribit"}
    deribit = requests["deribit"].run_config["ops"]["land_ticks"]["config"]
    assert deribit == {"exchange": "deribit", "symbols": ["BTC-PERPETUAL"]}
    assert defs.resolve_job_def(JOB_NAME) is not None


def test_the_deribit_parser_answers_a_test_request_and_nothing_else() -> None:
    parser = feed_for("deribit").parser(["BTC-PERPETUAL"])
    beat = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'
    [answer] = parser.parse(beat, 0)
    assert type(answer) is Send
    assert orjson.loads(answer.messages[0])["method"] == "public/test"
    assert (
        parser.parse(b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}', 0)
        == []
    )


def test_marketlake_stream_lands_an_okx_instrument_from_the_configured_websocket(
    tmp_path: Path,
) -> None:
    config = SimConfig(seed=2, trades_per_day=86_400 * 20, symbols=("BTC-USDT",))
    with WsSimulator(config) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAKE_", "DAGSTER_"))}
        env |= {"MARKETLAKE_OKX_WS_URL": sim.okx_url, "DAGSTER_HOME": str(tmp_path / "home")}
        done = subprocess.run(
            [sys.executable, "-m", "orchestration.cli", "stream", "btc-usdt", "--exchange", "okx",
             "--duration", "2", "--lake", str(tmp_path / "lake")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"landing okx BTC-USDT from {sim.okx_url}" in done.stderr
    depth = pl.read_delta(str(tmp_path / "lake" / "ticks_depth"))
    assert set(depth["exchange"]) == {"okx"} and set(depth["symbol"]) == {"BTC-USDT"}


def test_marketlake_stream_refuses_an_instrument_the_venue_cannot_have(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "stream", "BTCUSDT", "--exchange", "okx",
         "--duration", "2", "--lake", str(tmp_path / "lake")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert done.returncode == 2 and "invalid OKX instrument 'BTCUSDT'" in done.stderr
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(("exchange", "count"), [("okx", 250), ("deribit", 2500)])
def test_a_gap_is_fetched_back_page_by_page_from_the_venues_rest_history(
    exchange: str, count: int
) -> None:
    from marketlake.exchanges.errors import RestError
    from marketlake.simulator import Simulator, data

    symbol = {"okx": "BTC-USDT", "deribit": "BTC-PERPETUAL"}[exchange]
    config = SimConfig(seed=4, trades_per_day=86_400 * 20, symbols=(symbol,))
    with Simulator(config) as rest:
        filler = feed_for(exchange).gap_filler(rest.base_url, weight_limit=6000)
        assert filler is not None
        rest.faults.fail_5xx = 2  # retried, not given up
        last = data.last_trade_id_at(symbol, data.to_us(rest.clock()), config) - 10
        got = filler.trades_between_ids(symbol, last - count + 1, last)
        with pytest.raises(RestError, match="refused the request") as refused:
            filler.trades_between_ids("ZZZ-USDT", 1, 2)
        assert "ZZZ-USDT" in str(refused.value)  # the instrument it was asked for
    truth = data.to_raw_trades(data.trades_between_ids(symbol, last - count + 1, last, config))
    assert got["trade_id"].to_list() == truth["trade_id"].to_list()
    assert got.select("price", "qty", "is_buyer_maker").equals(
        truth.select("price", "qty", "is_buyer_maker")
    )
    assert (got["ts"] == truth["ts"].dt.truncate("1ms")).all()


def test_an_urgent_control_frame_goes_ahead_of_queued_resubscriptions() -> None:
    import asyncio

    from streaming.connection import Outbox

    async def drain() -> list[bytes]:
        outbox = Outbox()
        outbox.put((b"unsubscribe A", b"subscribe A"))
        outbox.put((b"unsubscribe B", b"subscribe B"))
        outbox.put((b"public/test",), urgent=True)
        return [await outbox.get() for _ in range(len(outbox))]

    assert asyncio.run(drain()) == [
        b"public/test",
        b"unsubscribe A",
        b"subscribe A",
        b"unsubscribe B",
        b"subscribe B",
    ]
