"""The external systems as resources, bound once in `build_definitions`.

Each has a twin that differs only in configuration: the lake is a local path or `s3://`,
Binance is the real exchange or the local simulator. Building them does no I/O.
"""

from __future__ import annotations

import dagster as dg

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.lake import Lake
from orchestration.settings import Settings


def build_resources(settings: Settings) -> dict[str, dg.ResourceDefinition]:
    lake = Lake(settings.lake, settings.lake_storage_options)
    binance = BinanceEndpoints(
        archive_url=settings.binance_archive_url,
        rest_url=settings.binance_rest_url,
        ws_url=settings.binance_ws_url,
        weight_limit=settings.rest_weight_limit,
    )
    return {
        "lake": dg.ResourceDefinition.hardcoded_resource(
            lake, description=f"Delta lake at {lake.uri}"
        ),
        "binance": dg.ResourceDefinition.hardcoded_resource(
            binance,
            description=f"Binance archive {binance.archive_url}, REST {binance.rest_url}",
        ),
    }
