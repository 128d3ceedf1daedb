"""Sensors: keep the instrument partitions in step with configuration and the exchange."""

from collections.abc import Sequence

import dagster as dg

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.instruments import Instrument
from orchestration.partitions import NotMigrated, check_migrated, instrument_partitions
from orchestration.symbols import not_yet_partitions, split_by_listing


def build_symbols_sensor(configured: Sequence[Instrument]) -> dg.SensorDefinition:
    @dg.sensor(
        name="symbols_sensor",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Adds the configured instruments (MARKETLAKE_SYMBOLS) to the `instruments` "
            "partitions, Binance's once exchangeInfo confirms Binance lists them; unknown "
            "ones are logged, not added."
        ),
    )
    def symbols_sensor(
        context: dg.SensorEvaluationContext, binance: dg.ResourceParam[BinanceEndpoints]
    ):
        try:
            check_migrated(context.instance)
        except NotMigrated as error:  # adding partitions now would hide the legacy ones
            return dg.SkipReason(str(error))
        missing = not_yet_partitions(context.instance, configured)
        if not missing:
            return dg.SkipReason("every configured instrument is already a partition")
        new, unknown = split_by_listing(binance.rest(), missing)
        if unknown:
            context.log.warning(f"not listed on Binance, not added: {', '.join(map(str, unknown))}")
        return dg.SensorResult(
            dynamic_partitions_requests=(
                [instrument_partitions.build_add_request([str(i) for i in new])] if new else []
            )
        )

    return symbols_sensor
