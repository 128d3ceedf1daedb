"""Sensors: keep the symbol partitions in step with configuration and the exchange."""

import dagster as dg

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from orchestration.partitions import symbol_partitions


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
        existing = set(context.instance.get_dynamic_partitions(symbol_partitions.name))
        missing = [symbol for symbol in configured if symbol not in existing]
        if not missing:
            return dg.SkipReason("every configured symbol is already a partition")
        listed = binance.rest().symbols()
        unknown = [symbol for symbol in missing if symbol not in listed]
        if unknown:
            context.log.warning(f"not listed on Binance, not added: {', '.join(unknown)}")
        new = [symbol for symbol in missing if symbol in listed]
        return dg.SensorResult(
            dynamic_partitions_requests=[symbol_partitions.build_add_request(new)] if new else []
        )

    return symbols_sensor
