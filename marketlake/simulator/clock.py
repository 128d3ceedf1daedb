"""The market's now: which days are published and which trades exist yet.

Both servers (HTTP and websocket) take a `Clock` so tests and the demo can freeze or
script the market's time; by default it is the real UTC time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
