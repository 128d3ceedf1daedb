"""Binance spot: the daily archive, the REST API and their wire formats.

Construct clients with a base URL (the real exchange or the local simulator); nothing here
does I/O at import or construction, and nothing imports Dagster.
"""

from marketlake.exchanges.binance.archive import ARCHIVE_URL, ArchiveDay, BinanceArchive
from marketlake.exchanges.binance.parsing import (
    AGG_TRADES,
    parse_agg_trades,
    parse_checksum,
    parse_exchange_info,
    parse_rest_trades,
    parse_trades_csv,
)
from marketlake.exchanges.binance.ratelimit import ENDPOINT_WEIGHTS, WeightBudget
from marketlake.exchanges.binance.rest import REST_URL, BinanceRest, RestStats
from marketlake.exchanges.errors import (
    ArchiveChecksumError,
    ArchiveDownloadError,
    ArchiveError,
    ArchiveFormatError,
    ArchiveIntegrityError,
    ArchiveNotPublished,
    ExchangeError,
    ResponseFormatError,
    RestError,
)

__all__ = [
    "AGG_TRADES",
    "ARCHIVE_URL",
    "ENDPOINT_WEIGHTS",
    "REST_URL",
    "ArchiveChecksumError",
    "ArchiveDay",
    "ArchiveDownloadError",
    "ArchiveError",
    "ArchiveFormatError",
    "ArchiveIntegrityError",
    "ArchiveNotPublished",
    "BinanceArchive",
    "BinanceRest",
    "ExchangeError",
    "ResponseFormatError",
    "RestError",
    "RestStats",
    "WeightBudget",
    "parse_agg_trades",
    "parse_checksum",
    "parse_exchange_info",
    "parse_rest_trades",
    "parse_trades_csv",
]
