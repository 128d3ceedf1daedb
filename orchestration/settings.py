"""Every setting marketlake reads from the environment, read in this one place.

Definitions are a function of a `Settings` value (`build_definitions(settings)`), so tests
build them with a temporary lake and a simulator instead of patching the environment. The
README's Configuration table lists the variables.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from marketlake.exchanges.binance.endpoints import ARCHIVE_URL, REST_URL, WS_URL, BinanceEndpoints
from marketlake.exchanges.histories import RestHistories
from marketlake.exchanges.registry import COINBASE, DERIBIT, OKX, VENUES
from marketlake.instruments import Instrument, parse_instruments
from marketlake.lake import Lake, s3_storage_options

COINBASE_WS_URL = COINBASE.ws.default


@dataclass(frozen=True)
class Settings:
    lake: str = "./lake"
    lake_storage_options: Mapping[str, str] = field(default_factory=dict)
    binance_archive_url: str = ARCHIVE_URL
    binance_rest_url: str = REST_URL
    binance_ws_url: str = WS_URL
    coinbase_ws_url: str = COINBASE_WS_URL
    okx_ws_url: str = OKX.ws.default
    okx_rest_url: str = OKX.rest.default  # type: ignore[union-attr]
    deribit_ws_url: str = DERIBIT.ws.default
    deribit_rest_url: str = DERIBIT.rest.default  # type: ignore[union-attr]
    #: The venues `stream_supervisor` keeps a stream run alive for (`MARKETLAKE_STREAM_EXCHANGES`).
    stream_exchanges: tuple[str, ...] = ("binance",)
    #: Instruments streamed per venue when a run names none (`MARKETLAKE_<VENUE>_SYMBOLS`);
    #: otherwise a venue's runs land its instrument partitions.
    stream_symbols: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rest_weight_limit: int = 6000
    start_date: dt.date = dt.date(2024, 1, 1)
    #: The instruments `symbols_sensor` adds (`MARKETLAKE_SYMBOLS`: bare symbols are Binance's).
    instruments: tuple[Instrument, ...] = (
        Instrument("binance", "BTCUSDT"),
        Instrument("binance", "ETHUSDT"),
    )
    stream_stale_after_s: float = 120.0

    def open_lake(self) -> Lake:
        """The lake these settings name, with its storage options (S3 keys, endpoint)."""
        return Lake(self.lake, self.lake_storage_options)

    def binance_endpoints(self) -> BinanceEndpoints:
        """Where Binance's archive, REST API and websocket are, and the REST weight budget."""
        return BinanceEndpoints(
            archive_url=self.binance_archive_url,
            rest_url=self.binance_rest_url,
            ws_url=self.binance_ws_url,
            weight_limit=self.rest_weight_limit,
        )

    def rest_histories(self) -> RestHistories:
        """The REST trade histories of the venues without an archive (OKX, Deribit)."""
        return RestHistories(self.okx_rest_url, self.deribit_rest_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `env` (default: the process environment); errors name the variable."""
        env = os.environ if env is None else env
        defaults = cls()

        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        try:
            start_date = dt.date.fromisoformat(
                get("MARKETLAKE_START_DATE", str(defaults.start_date))
            )
        except ValueError as error:
            raise ValueError(f"MARKETLAKE_START_DATE: {error}") from error
        try:
            weight_limit = int(get("MARKETLAKE_REST_WEIGHT_LIMIT", str(defaults.rest_weight_limit)))
        except ValueError as error:
            raise ValueError(f"MARKETLAKE_REST_WEIGHT_LIMIT must be an integer: {error}") from error
        try:
            stale = float(
                get("MARKETLAKE_STREAM_STALE_SECONDS", str(defaults.stream_stale_after_s))
            )
        except ValueError as error:
            raise ValueError(
                f"MARKETLAKE_STREAM_STALE_SECONDS must be a number: {error}"
            ) from error
        try:
            instruments = tuple(
                parse_instruments(
                    [get("MARKETLAKE_SYMBOLS", ",".join(map(str, defaults.instruments)))]
                )
            )
        except ValueError as error:
            raise ValueError(f"MARKETLAKE_SYMBOLS: {error}") from error
        lake = get("MARKETLAKE_LAKE", defaults.lake)
        exchanges = tuple(
            e.strip().lower()
            for e in get("MARKETLAKE_STREAM_EXCHANGES", ",".join(defaults.stream_exchanges)).split(
                ","
            )
            if e.strip()
        )
        unknown = [e for e in exchanges if e not in VENUES]
        if unknown:
            raise ValueError(
                f"MARKETLAKE_STREAM_EXCHANGES: unknown exchange {unknown[0]!r}; "
                f"expected some of {', '.join(VENUES)}"
            )
        stream_symbols: dict[str, tuple[str, ...]] = {}
        for name, venue in VENUES.items():
            variable = f"MARKETLAKE_{name.upper()}_SYMBOLS"
            text = get(variable, "")
            try:
                chosen = [venue.normalize_symbol(s) for s in text.replace(" ", ",").split(",") if s]
            except ValueError as error:
                raise ValueError(f"{variable}: {error}") from error
            if chosen:
                stream_symbols[name] = tuple(dict.fromkeys(chosen))
        return cls(
            lake=lake,
            lake_storage_options=s3_storage_options(env) if lake.startswith("s3://") else {},
            binance_archive_url=get("MARKETLAKE_BINANCE_ARCHIVE_URL", defaults.binance_archive_url),
            binance_rest_url=get("MARKETLAKE_BINANCE_REST_URL", defaults.binance_rest_url),
            binance_ws_url=get("MARKETLAKE_BINANCE_WS_URL", defaults.binance_ws_url),
            coinbase_ws_url=get(COINBASE.ws.env, defaults.coinbase_ws_url),
            okx_ws_url=get(OKX.ws.env, defaults.okx_ws_url),
            okx_rest_url=get(OKX.rest.env, defaults.okx_rest_url),  # type: ignore[union-attr]
            deribit_ws_url=get(DERIBIT.ws.env, defaults.deribit_ws_url),
            deribit_rest_url=get(DERIBIT.rest.env, defaults.deribit_rest_url),  # type: ignore[union-attr]
            stream_exchanges=exchanges,
            stream_symbols=stream_symbols,
            rest_weight_limit=weight_limit,
            start_date=start_date,
            instruments=instruments,
            stream_stale_after_s=stale,
        )


def dagster_home(env: Mapping[str, str] | None = None) -> Path:
    """The Dagster instance folder: `$DAGSTER_HOME`, else `./.dagster_home` (absolute).

    The CLI, `marketlake ui` and the UI's processes share it, so CLI runs show in the UI.
    """
    env = os.environ if env is None else env
    return Path(env.get("DAGSTER_HOME", "").strip() or ".dagster_home").absolute()


def exchange_configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether a Binance REST URL is set; `marketlake ui` starts the simulator when not."""
    env = os.environ if env is None else env
    return bool(env.get("MARKETLAKE_BINANCE_REST_URL", "").strip())


def child_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with `overrides`, for a child that reads its own settings."""
    return {**os.environ, **overrides}
