"""Exceptions raised by the exchange clients.

One root, `ExchangeError`, so a caller can catch "the exchange failed us" in one clause;
subclasses tell the outcomes apart that a caller acts on differently: an archive that is
not published yet (fall back to REST), a download that failed verification (never write
it), a REST call refused by the exchange (fix the request) or given up after retries
(try later). Every message names the URL or endpoint, and the symbol and date where known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ExchangeError(Exception):
    """Base class of every error an exchange client raises."""


class ResponseFormatError(ExchangeError, ValueError):
    """A response or file whose content is not in the exchange's documented wire format."""


# --- archive ---------------------------------------------------------------------------------


class ArchiveError(ExchangeError):
    """A daily archive could not be fetched or read."""


class ArchiveNotPublished(ArchiveError):
    """The archive (zip or its CHECKSUM) answered 404: the day is not published (yet).

    Distinct from a failure so a caller can fall back to REST without swallowing real errors.
    """


class ArchiveDownloadError(ArchiveError):
    """The archive server kept failing (connection errors, timeouts, 5xx, unexpected status)."""


class ArchiveChecksumError(ArchiveError):
    """The downloaded zip's sha256 differs from its `.CHECKSUM`: the bytes are not trusted."""


class ArchiveIntegrityError(ArchiveError):
    """The zip is unreadable: not a zip, a CRC error, or the expected CSV member is missing."""


class ArchiveFormatError(ArchiveError, ResponseFormatError):
    """The archive CSV is malformed (column count, non-numeric field, truncated line, units)."""


# --- REST ------------------------------------------------------------------------------------


class RestError(ExchangeError):
    """A REST request failed: refused by the exchange (4xx) or given up after retries.

    `status` is the last HTTP status (None when the last attempt never got a response);
    `code` and `msg` are Binance's own error fields when the body carried them.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        params: Mapping[str, Any] | None = None,
        status: int | None = None,
        code: int | None = None,
        msg: str | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.params = dict(params or {})
        self.status = status
        self.code = code
        self.msg = msg


__all__ = [
    "ArchiveChecksumError",
    "ArchiveDownloadError",
    "ArchiveError",
    "ArchiveFormatError",
    "ArchiveIntegrityError",
    "ArchiveNotPublished",
    "ExchangeError",
    "ResponseFormatError",
    "RestError",
]
