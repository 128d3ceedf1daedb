"""Recorded websocket traffic: the capture format, and readers for the real-sample formats.

Lives beside the wire formats (not in the simulator) because both sides use it: the lander
writes captures, the simulator's replay mode and the tests read them.

The lander's ``capture=`` writes one JSON object per line::

    {"t":"recv","ts_us":1786309548629007,"conn":"binance-0","data":"<raw frame text>"}

which is cryptofeed v3's recorder line with the receive time as integer microseconds
(``ts_us``) instead of float seconds, so a capture never loses precision. `read_recording`
reads that and every format in ``tests/data/real/``:

- cryptofeed v3 jsonl (``{"t":"recv","ts":<s>,"data":"<frame>"}``; other ``t`` skipped),
- cryptofeed v1 logs (``<local_ts>: <frame>``; the URL line and outgoing ``<-`` lines skipped),
- plain JSON lines, one frame per line (no receive time),
- one JSON document per file, pretty-printed or not (no receive time).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Final, NamedTuple

import orjson

_LOG_LINE: Final = re.compile(r"(\d+(?:\.\d+)?): (.*)", re.DOTALL)


class Recorded(NamedTuple):
    """One received frame: its raw text and receive time in epoch µs (None if not recorded)."""

    received_at_us: int | None
    raw: str


def seconds_to_us(seconds: str | float) -> int:
    """Epoch seconds (as text or float) to µs, rounded half-even on the exact decimal value."""
    value = Decimal(seconds if isinstance(seconds, str) else repr(seconds))
    return int((value * 1_000_000).to_integral_value(ROUND_HALF_EVEN))


def capture_line(received_at_us: int, raw: bytes | str, conn: str) -> bytes:
    """One line of the capture format (with its newline)."""
    text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
    return orjson.dumps({"t": "recv", "ts_us": received_at_us, "conn": conn, "data": text}) + b"\n"


def read_recording(path: str | Path) -> Iterator[Recorded]:
    """Every received frame in ``path``, in file order, whatever its recording format."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if _LOG_LINE.match(first) or " <-> " in first or " <- " in first:
        yield from _cryptofeed_log(lines)
        return
    try:
        head = orjson.loads(first)
    except orjson.JSONDecodeError:
        yield Recorded(None, text.strip())  # one pretty-printed document
        return
    if type(head) is dict and "t" in head and ("ts" in head or "ts_us" in head or "format" in head):
        yield from _recorder_lines(lines)
        return
    for line in lines:
        if line.strip():
            yield Recorded(None, line)


def _recorder_lines(lines: list[str]) -> Iterator[Recorded]:
    for line in lines:
        if not line.strip():
            continue
        entry = orjson.loads(line)
        if entry.get("t") != "recv":
            continue
        if "ts_us" in entry:
            received = int(entry["ts_us"])
        else:
            # Re-read the float's text exactly as written, not via a float product.
            match = re.search(r'"ts":\s*([0-9.]+)', line)
            received = seconds_to_us(match.group(1) if match else entry["ts"])
        yield Recorded(received, entry["data"])


def _cryptofeed_log(lines: list[str]) -> Iterator[Recorded]:
    for line in lines:
        match = _LOG_LINE.fullmatch(line)
        if match is None:
            continue  # the URL line, outgoing "<-" lines, blank lines
        yield Recorded(seconds_to_us(match.group(1)), match.group(2))
