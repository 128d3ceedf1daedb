"""Every wait on an exchange has a bound and says what it waits for.

Two kinds of wait hide in a client: sleeping (Retry-After, backoff, a full weight window)
and reading (a server that answers a byte at a time, or not at all). httpx's timeout is per
network operation, so a server dripping a byte every few seconds never trips it; `read_within`
bounds the whole transfer and its average rate. Before a client sleeps it tells a `WaitNotice`
(by default the log; the CLI can pass its own to print it) what it waits for, how long and
why, and a wait longer than the client's `max_wait_s` is not slept at all: the call gives up
with a message naming the URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

log = logging.getLogger("marketlake.exchanges")

#: Told, before a client sleeps or retries, what it waits for: one line naming the URL.
WaitNotice = Callable[[str], None]


def log_wait(message: str) -> None:
    """The default `WaitNotice`: a warning in the log."""
    log.warning(message)


@dataclass(frozen=True)
class TransferDeadline:
    """How long one response may take, headers to last byte, and how slowly it may come.

    `min_bytes_per_s` is the average since the response started, checked once
    `rate_grace_s` have passed (a slow start is normal); 0 disables it.
    """

    total_s: float
    min_bytes_per_s: float = 0.0
    rate_grace_s: float = 30.0


class TransferTooSlow(Exception):
    """A response past its `TransferDeadline`: the message says how far it got."""


def read_within(
    response: httpx.Response, deadline: TransferDeadline, started: float
) -> Iterator[bytes]:
    """The body of a streamed `response` as it arrives, raising `TransferTooSlow` past
    `deadline` (`started` is the `time.monotonic()` of the request).

    Chunks are whatever each network read brings (no re-buffering), so the deadline is
    checked as each arrives, and httpx's read timeout bounds the time between two. The rate
    is measured from the first byte of the body, so a server that thinks before answering
    quickly is not mistaken for one that drips.
    """
    received = 0
    first_byte: float | None = None
    for chunk in response.iter_bytes():
        now = time.monotonic()
        first_byte = now if first_byte is None else first_byte
        received += len(chunk)
        check_transfer(deadline, now - started, now - first_byte, received)
        yield chunk


def check_transfer(
    deadline: TransferDeadline, elapsed: float, receiving: float, received: int
) -> None:
    """Raise `TransferTooSlow` if `received` bytes after `elapsed` s (`receiving` of them
    since the first byte) break `deadline`."""
    if elapsed > deadline.total_s:
        raise TransferTooSlow(
            f"{received:,} bytes in {elapsed:.1f} s, past the {deadline.total_s:g} s deadline"
        )
    if deadline.min_bytes_per_s and receiving > deadline.rate_grace_s:
        rate = received / receiving
        if rate < deadline.min_bytes_per_s:
            raise TransferTooSlow(
                f"{received:,} bytes in {receiving:.1f} s ({rate:,.0f} B/s), slower than the "
                f"{deadline.min_bytes_per_s:,.0f} B/s a download must keep up"
            )


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds form), or None."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


__all__ = [
    "TransferDeadline",
    "TransferTooSlow",
    "WaitNotice",
    "check_transfer",
    "log_wait",
    "read_within",
    "retry_after",
]
