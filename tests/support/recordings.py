"""Reading the websocket recordings in `tests/data/real` back as the frames that arrived.

cryptofeed's recorder writes one line per frame: ``<local epoch s>: <frame>`` for what came
in, ``<url> <- <ts>: <frame>`` for what was sent and ``<url> <-> <ts>`` when it connected.
"""

from __future__ import annotations

from pathlib import Path

import orjson


def received_frames(path: Path) -> list[tuple[int, bytes]]:
    """(receive time in µs, frame) of every incoming frame, in order."""
    frames = []
    for line in path.read_bytes().split(b"\n"):
        if not line[:1].isdigit():
            continue  # the connect line, sent frames and the trailing empty line
        stamp, _, frame = line.partition(b": ")
        frames.append((round(float(stamp) * 1_000_000), frame))
    return frames


def okx_book_frames(path: Path) -> list[tuple[int, bytes]]:
    """The ``books`` pushes of an OKX recording."""
    return [(t, f) for t, f in received_frames(path) if f.startswith(b'{"arg":{"channel":"books"')]


def instrument_of(frame: bytes) -> str:
    """The instrument of an OKX push or a Deribit subscription push."""
    message = orjson.loads(frame)
    if "arg" in message:
        return message["arg"]["instId"]
    return message["params"]["channel"].split(".")[1]
