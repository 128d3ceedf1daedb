"""Sensors: keep the symbol partitions in step with configuration and the exchange."""

import dagster as dg

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from orchestration.partitions import symbol_partitions
from orchestration.symbols import not_yet_partitions, split_by_listing


def build_symbols_sensor(configured: tuple[str, ...]) -> dg.SensorDefinition:
    @dg.sensor(
        name="symbols_sensor",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Adds the configured symbols (MARKETLAKE_SYMBOLS) to the `symbols` partitions "
            "once exchangeInfo confirms Binance lists them; unknown ones are logged, not added."
        ),
    )
    def symbols_sensor(
        context: dg.SensorEvaluationContext, binance: dg.ResourceParam[BinanceEndpoints]
    ):
        missing = not_yet_partitions(context.instance, configured)
        if not missing:
            return dg.SkipReason("every configured symbol is already a partition")
        new, unknown = split_by_listing(binance.rest(), missing)
        if unknown:
            context.log.warning(f"not listed on Binance, not added: {', '.join(unknown)}")
        return dg.SensorResult(
            dynamic_partitions_requests=[symbol_partitions.build_add_request(new)] if new else []
        )

    return symbols_sensor
