"""Errors the `marketlake` command reports as one line, without a traceback.

`UsageError` exits with status 2 (the request was wrong), `CommandFailed` with 1 (the
request was fine, something it needs failed). Either is raised before anything is written,
or after the last complete write.
"""

from __future__ import annotations

import re


class UsageError(Exception):
    """A request that can't start (bad symbol, range or option); nothing has been written."""


class CommandFailed(Exception):
    """Something the command needs failed (the exchange, the lake, a port); says what and where."""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def one_line(error: BaseException, limit: int = 300) -> str:
    """`error` as one readable line: ANSI colours and layout removed, the first and the last
    (innermost) line of a nested message kept, cut at `limit` characters."""
    lines = [line.strip(" ↳") for line in _ANSI.sub("", str(error)).splitlines()]
    lines = [line for line in lines if line]
    text = lines[0] if lines else type(error).__name__
    if len(lines) > 1:
        text = f"{text}: {lines[-1]}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
