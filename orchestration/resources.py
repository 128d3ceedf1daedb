"""The external systems as resources, bound once in `build_definitions`.

Each has a twin that differs only in configuration: the lake is a local path or `s3://`,
the exchanges are the real ones or the local simulator. Building them does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from assets.partitioned import great_expectations_process
from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.exchanges.registry import DERIBIT, OKX, venue
from marketlake.lake import Lake
from orchestration.settings import COINBASE_WS_URL, Settings

#: (exchange, websocket URL, REST URL) of the venues beyond Binance and Coinbase.
OTHER_VENUES = tuple(
    (v.name, v.ws.default, v.rest.default if v.rest else None) for v in (OKX, DERIBIT)
)

if TYPE_CHECKING:
    from streaming import StreamConfig


@dataclass(frozen=True)
class LiveEndpoints:
    """Where the live feeds are reached: each venue's websocket, and its REST API for gaps."""

    binance: BinanceEndpoints = field(default_factory=BinanceEndpoints)
    coinbase_ws_url: str = COINBASE_WS_URL
    others: tuple[tuple[str, str, str | None], ...] = OTHER_VENUES

    def urls(self, exchange: str) -> tuple[str, str | None]:
        """(websocket URL, REST URL or None) of ``exchange``; an unknown one is refused."""
        name = venue(exchange).name
        if name == "binance":
            return self.binance.ws_url, self.binance.rest_url
        if name == "coinbase":
            return self.coinbase_ws_url, None
        return next((ws, rest) for other, ws, rest in self.others if other == name)

    def stream_config(
        self, exchange: str, symbols: Sequence[str], lake: Lake, **options: Any
    ) -> StreamConfig:
        """The lander's configuration for `symbols` of `exchange` landing into `lake`.

        The one mapping from resources to `StreamConfig`, for the `stream_ticks` job and
        `marketlake stream` alike; `options` are the run's own (duration, capture, ...).
        """
        from streaming import StreamConfig

        ws_url, rest_url = self.urls(exchange)
        return StreamConfig(
            exchange=venue(exchange).name,
            symbols=list(symbols),
            ws_url=ws_url,
            lake=lake.uri,
            rest_url=rest_url,
            lake_storage_options=lake.storage_options,
            rest_weight_limit=self.binance.weight_limit,
            **options,
        )


def live_endpoints(settings: Settings) -> LiveEndpoints:
    others = (
        ("okx", settings.okx_ws_url, settings.okx_rest_url),
        ("deribit", settings.deribit_ws_url, settings.deribit_rest_url),
    )
    return LiveEndpoints(settings.binance_endpoints(), settings.coinbase_ws_url, others)


def build_resources(settings: Settings) -> dict[str, dg.ResourceDefinition]:
    lake = settings.open_lake()
    binance = settings.binance_endpoints()
    live = live_endpoints(settings)
    histories = settings.rest_histories()
    return {
        "lake": dg.ResourceDefinition.hardcoded_resource(
            lake, description=f"Delta lake at {lake.uri}"
        ),
        "binance": dg.ResourceDefinition.hardcoded_resource(
            binance,
            description=f"Binance archive {binance.archive_url}, REST {binance.rest_url}",
        ),
        "histories": dg.ResourceDefinition.hardcoded_resource(
            histories,
            description=f"REST trade histories: OKX {histories.okx_rest_url}, "
            f"Deribit {histories.deribit_rest_url}",
        ),
        "live": dg.ResourceDefinition.hardcoded_resource(
            live,
            description=f"websockets: Binance {binance.ws_url}, Coinbase {live.coinbase_ws_url}, "
            + ", ".join(f"{name} {ws}" for name, ws, _rest in live.others),
        ),
        "great_expectations": great_expectations_process,
    }
