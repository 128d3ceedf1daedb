"""The external systems as resources, bound once in `build_definitions`.

Each has a twin that differs only in configuration: the lake is a local path or `s3://`,
the exchanges are the real ones or the local simulator. Building them does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.lake import Lake
from orchestration.settings import COINBASE_WS_URL, Settings

if TYPE_CHECKING:
    from streaming import StreamConfig


@dataclass(frozen=True)
class LiveEndpoints:
    """Where the live feeds are reached: each exchange's websocket, Binance's REST for gaps."""

    binance: BinanceEndpoints = field(default_factory=BinanceEndpoints)
    coinbase_ws_url: str = COINBASE_WS_URL

    def stream_config(
        self, exchange: str, symbols: Sequence[str], lake: Lake, **options: Any
    ) -> StreamConfig:
        """The lander's configuration for `symbols` of `exchange` landing into `lake`.

        The one mapping from resources to `StreamConfig`, for the `stream_ticks` job and
        `marketlake stream` alike; `options` are the run's own (duration, capture, ...).
        """
        from streaming import StreamConfig

        binance = exchange == "binance"
        return StreamConfig(
            exchange=exchange,
            symbols=list(symbols),
            ws_url=self.binance.ws_url if binance else self.coinbase_ws_url,
            lake=lake.uri,
            rest_url=self.binance.rest_url if binance else None,
            lake_storage_options=lake.storage_options,
            rest_weight_limit=self.binance.weight_limit,
            **options,
        )


def binance_endpoints(settings: Settings) -> BinanceEndpoints:
    return BinanceEndpoints(
        archive_url=settings.binance_archive_url,
        rest_url=settings.binance_rest_url,
        ws_url=settings.binance_ws_url,
        weight_limit=settings.rest_weight_limit,
    )


def live_endpoints(settings: Settings) -> LiveEndpoints:
    return LiveEndpoints(binance_endpoints(settings), settings.coinbase_ws_url)


def lake_of(settings: Settings) -> Lake:
    return Lake(settings.lake, settings.lake_storage_options)


def build_resources(settings: Settings) -> dict[str, dg.ResourceDefinition]:
    lake = lake_of(settings)
    binance = binance_endpoints(settings)
    live = live_endpoints(settings)
    return {
        "lake": dg.ResourceDefinition.hardcoded_resource(
            lake, description=f"Delta lake at {lake.uri}"
        ),
        "binance": dg.ResourceDefinition.hardcoded_resource(
            binance,
            description=f"Binance archive {binance.archive_url}, REST {binance.rest_url}",
        ),
        "live": dg.ResourceDefinition.hardcoded_resource(
            live,
            description=f"websockets: Binance {binance.ws_url}, Coinbase {live.coinbase_ws_url}",
        ),
    }
