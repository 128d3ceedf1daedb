"""The stream's heartbeat and checkpoint: ``{lake}/_state/stream_<name>.json``.

Written after every flush whose tables are all committed, so what it says has landed has
landed. A restart reads ``symbols.<symbol>.last_trade_id`` and ``open_gaps`` and fills from
REST everything between them and the first live trade. Also what a sensor or a person reads
to see that the stream is alive (``updated_at``, lag, counts).

Format (version 1)::

    {"version": 1, "exchange": "binance", "name": "binance", "pid": 4242, "host": "box",
     "updated_at": "2026-11-23T13:42:40.153456Z", "last_flush_at": "2026-11-23T13:42:40.153453Z",
     "symbols": {"BTCUSDT": {"last_trade_id": 15355708003,
                             "open_gaps": [[15355707990, 15355707991]]}},
     "counts": {"messages": 570, "rows_landed": {"ticks_trades": 296, "ticks_quotes": 218, ...},
                "quarantined": 0, "duplicates": 0, "gaps": 0, "gaps_filled": 0,
                "gap_rows_filled": 0, "reconnects": 0, "disconnects": 0, "write_errors": 0,
                "flushes": 3},
     "lag_ms": {"receive": 9.6, "land": 25.2}}

``last_trade_id`` is the highest id landed; ``open_gaps`` the ranges below it still missing
(found but not yet filled and landed). ``lag_ms.receive`` is receive time minus trade time of
the newest trade, ``lag_ms.land`` commit time minus receive time of the newest row landed.

Local lakes: written to a temporary file, fsynced, then renamed over the old one, so a
reader (or a restart after kill -9) sees the old or the new file, never half of one.
``s3://`` lakes: one PUT through pyarrow's S3 filesystem, which is atomic per object.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

STATE_DIR = "_state"
VERSION = 1


def state_uri(lake_uri: str, name: str) -> str:
    if not name.replace("-", "_").isidentifier():
        raise ValueError(f"invalid stream name {name!r}")
    return f"{lake_uri.rstrip('/')}/{STATE_DIR}/stream_{name}.json"


def now_us() -> int:
    """Now, in epoch microseconds (the unit of every ts column and of the state file)."""
    return time.time_ns() // 1000


def iso_us(epoch_us: int | None) -> str | None:
    if epoch_us is None:
        return None
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=epoch_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class StateStore:
    """Reads and writes one stream's state file under a lake root."""

    def __init__(
        self, lake_uri: str, name: str, storage_options: Mapping[str, str] | None = None
    ) -> None:
        self.uri = state_uri(lake_uri, name)
        self._options = dict(storage_options or {})
        self._local = "://" not in self.uri or self.uri.startswith("file://")

    def read(self) -> dict[str, Any] | None:
        """The last state written, or None if there is none (a first start)."""
        try:
            if self._local:
                data = Path(self.uri.removeprefix("file://")).read_bytes()
            else:
                fs, path = self._filesystem()
                with fs.open_input_stream(path) as stream:
                    data = stream.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            if "not found" in str(error).lower() or "no such" in str(error).lower():
                return None
            raise
        state = orjson.loads(data)
        if state.get("version") != VERSION:
            raise ValueError(f"{self.uri}: unsupported state version {state.get('version')!r}")
        return state

    def write(self, state: Mapping[str, Any]) -> None:
        data = orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        if self._local:
            path = Path(self.uri.removeprefix("file://"))
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            fs, object_path = self._filesystem()
            with fs.open_output_stream(object_path) as stream:
                stream.write(data)

    def _filesystem(self) -> tuple[Any, str]:
        """A pyarrow filesystem for an object-store lake, from the lake's storage options."""
        from pyarrow import fs

        options = {key.lower(): value for key, value in self._options.items()}
        scheme, _, path = self.uri.partition("://")
        if scheme not in ("s3", "s3a"):
            raise ValueError(f"state files on {scheme}:// lakes are not supported")
        endpoint = (
            options.get("aws_endpoint_url")
            or options.get("endpoint_url")
            or options.get("aws_endpoint")
        )
        s3 = fs.S3FileSystem(
            access_key=options.get("aws_access_key_id"),
            secret_key=options.get("aws_secret_access_key"),
            session_token=options.get("aws_session_token"),
            region=options.get("aws_region") or options.get("region") or "us-east-1",
            endpoint_override=endpoint,
            scheme="http" if endpoint and endpoint.startswith("http://") else "https",
        )
        return s3, path
