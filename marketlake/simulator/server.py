"""The local exchange over HTTP: archive and REST from one ThreadingHTTPServer on loopback.

`Simulator` serves data.binance.vision's paths (`/data/spot/daily/trades/...`) and
api.binance.com's (`/api/v3/...`) from one base URL, so a client configured with
archive_url = rest_url = sim.base_url runs unchanged against the real exchange later.
stdlib only: tests and the demo need no extra dependency and no internet.

    with Simulator(SimConfig(trades_per_day=50_000)) as sim:
        httpx.get(f"{sim.base_url}/api/v3/ping")
        sim.faults.unpublished.add(("BTCUSDT", dt.date(2025, 1, 2)))
        assert sim.stats.count_418 == 0
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Final
from urllib.parse import parse_qs, urlsplit

import polars as pl

from marketlake.schemas import parse_symbols
from marketlake.simulator import data, rest
from marketlake.simulator.archive import ARCHIVE_PREFIX, ArchiveStore, parse_archive_path
from marketlake.simulator.clock import Clock, utc_now
from marketlake.simulator.faults import Faults, Stats
from marketlake.simulator.ratelimit import WeightLimiter

log = logging.getLogger(__name__)

_RANGE: Final = re.compile(r"^bytes=(\d*)-(\d*)$")
_BURST_429: Final = (
    b'{"code":-1003,"msg":"Too many requests; please use the websocket for live updates."}'
)
_OVERLOADED: Final = (
    b'{"code":-1008,"msg":"Server is currently overloaded with other requests. '
    b'Please try again in a few minutes."}'
)


class Simulator:
    """The simulated exchange: start it, point clients at `base_url`, inspect `stats`.

    `clock` is the market's now (which days are published, which trades exist yet); rate
    limit windows always run on real time so a frozen market clock still rolls them.
    `cache_dir` keeps built zips (default: a temporary directory removed on stop).
    """

    def __init__(
        self,
        config: data.SimConfig = data.DEFAULT_CONFIG,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cache_dir: Path | None = None,
        weight_limit: int = 6000,
        window_seconds: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.clock: Clock = clock or utc_now
        self.faults = Faults()
        self.stats = Stats()
        self.weight_limit = weight_limit
        self.limiter = WeightLimiter(weight_limit, window_seconds)
        self.rest = rest.RestApi(
            config, lambda: self.clock(), self.effective_weight_limit, window_seconds
        )
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._own_cache: Path | None = None
        self.archive: ArchiveStore | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is not None:
            return self
        cache = self._cache_dir
        if cache is None:
            cache = self._own_cache = Path(tempfile.mkdtemp(prefix="marketlake-sim-"))
        cache.mkdir(parents=True, exist_ok=True)
        self.archive = ArchiveStore(cache, self.config, self.stats)
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"marketlake-sim:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._own_cache is not None:
            shutil.rmtree(self._own_cache, ignore_errors=True)
            self._own_cache = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() or use `with`")
        return f"http://{self.host}:{self.port}"

    # --- state -------------------------------------------------------------------------------

    def effective_weight_limit(self) -> int:
        override = self.faults.weight_limit
        return self.limiter.limit if override is None else override

    def today(self) -> dt.date:
        """The market clock's UTC day: archives exist for the days before it."""
        return self.clock().astimezone(dt.UTC).date()

    def is_published(self, symbol: str, date: dt.date) -> bool:
        return (
            symbol in self.config.symbols
            and data.ORIGIN <= date < min(self.today(), data.HORIZON)
            and (symbol, date) not in self.faults.unpublished
        )

    def ground_truth(self, symbol: str, date: dt.date | str) -> pl.DataFrame:
        """Every trade of the day as RAW_TRADES, ignoring archive faults: a perfect backfill."""
        return data.day_raw_trades(symbol, date, self.config)

    def reset(self) -> None:
        """Healthy exchange, fresh rate-limit window, zeroed stats (between test phases)."""
        self.faults.clear()
        self.limiter.reset()
        self.stats.reset()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stop()
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, sim: Simulator) -> None:
        self.sim = sim
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(conn)

    def close_connections(self) -> None:
        with self._connections_lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: REST paging reuses one connection
    # Headers and body go out in two writes: with Nagle on, the body waits for the client's
    # delayed ACK of the headers (~40 ms a response, which capped REST paging near 20/s).
    disable_nagle_algorithm = True
    server_version = "marketlake-sim/1"
    sys_version = ""
    timeout = 30
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, alive=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, alive=False)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    # --- routing -----------------------------------------------------------------------------

    def _dispatch(self, head: bool) -> None:
        sim = self.server.sim
        url = urlsplit(self.path)
        self._head, self._path, self._responded = head, url.path, False
        try:
            if sim.faults.slow_seconds > 0:
                time.sleep(sim.faults.slow_seconds)
            if url.path.startswith(ARCHIVE_PREFIX):
                self._archive(sim, url.path)
            elif url.path.startswith(rest.API_PREFIX):
                self._rest(sim, url.path, parse_qs(url.query, keep_blank_values=True))
            else:
                self._send(404, b"Not Found", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            log.exception("simulator failed on %s", self.path)
            self.close_connection = True
            if not self._responded:  # else the client sees a short body and the socket close
                body = b'{"code":-1000,"msg":"An unknown error occurred."}'
                self._send(500, body, rest.JSON_TYPE)

    def _rest(self, sim: Simulator, path: str, params: rest.Params) -> None:
        delay = sim.faults.take_slow()
        if delay > 0:
            time.sleep(delay)
        if sim.faults.take_429():
            retry = sim.faults.retry_after_s
            headers = [*self._weight_headers(sim.limiter.used), ("Retry-After", str(retry))]
            self._send(429, _BURST_429, rest.JSON_TYPE, headers)
            return
        if sim.faults.take_5xx():
            self._send(503, _OVERLOADED, rest.JSON_TYPE, self._weight_headers(sim.limiter.used))
            return
        decision = sim.limiter.acquire(rest.weight_of(path, params), sim.faults.weight_limit)
        headers = self._weight_headers(decision.used)
        if decision.status == 429:
            ip, limit = self.client_address[0], sim.effective_weight_limit()
            body = (
                f'{{"code":-1003,"msg":"Too many requests; current limit of IP({ip}) is {limit} '
                "requests per minute. Please use WebSocket Streams for live updates to avoid "
                'polling the API."}'
            )
            headers.append(("Retry-After", str(decision.retry_after)))
            self._send(429, body.encode(), rest.JSON_TYPE, headers)
        elif decision.status == 418:
            until_ms = int((time.time() + decision.retry_after) * 1000)
            body = (
                f'{{"code":-1003,"msg":"Way too many requests; IP({self.client_address[0]}) '
                f"banned until {until_ms}. Please use WebSocket Streams for live updates to "
                'avoid bans."}'
            )
            headers.append(("Retry-After", str(decision.retry_after)))
            self._send(418, body.encode(), rest.JSON_TYPE, headers)
        else:
            response = sim.rest.handle(path, params)
            headers.extend(response.headers)
            self._send(response.status, response.body, response.content_type, headers)

    @staticmethod
    def _weight_headers(used: int) -> list[tuple[str, str]]:
        return [("X-MBX-USED-WEIGHT", str(used)), ("X-MBX-USED-WEIGHT-1M", str(used))]

    def _archive(self, sim: Simulator, path: str) -> None:
        request = parse_archive_path(path)
        if request is None or not sim.is_published(request.symbol, request.date):
            self._send(404, _no_such_key(path), "application/xml")
            return
        if sim.faults.take_5xx(archive=True):
            self._send(503, b"Service Unavailable", "text/plain")
            return
        assert sim.archive is not None
        built = sim.archive.get(request.symbol, request.date, sim.faults)
        if request.checksum:
            self._send(200, built.checksum_text.encode(), "application/octet-stream")
        else:
            self._send_file(built.path, built.size)

    # --- responses ---------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._responded = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if not self._head:
            self.wfile.write(body)
        self._record(status, 0 if self._head else len(body))

    def _send_file(self, path: Path, size: int) -> None:
        """Stream a zip from disk (sendfile), honouring a single `Range` for resumes."""
        start, end, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if wanted:
            match = _RANGE.match(wanted.strip())
            if match is None or not (match[1] or match[2]):
                start = size  # unparseable: answer 416 below
            elif match[1]:
                start = int(match[1])
                end = min(int(match[2]), size - 1) if match[2] else size - 1
            else:
                start = max(size - int(match[2]), 0)
            if start >= size or start > end:
                self._send(
                    416, b"", "application/octet-stream", [("Content-Range", f"bytes */{size}")]
                )
                return
            status = 206
        length = end - start + 1
        self._responded = True
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        sent = 0
        if not self._head:
            with path.open("rb") as handle:
                sent = self.connection.sendfile(handle, start, length)
        self._record(status, sent)

    def _record(self, status: int, nbytes: int) -> None:
        self.server.sim.stats.record(self._path, status, nbytes)


def _no_such_key(path: str) -> bytes:
    """The body S3/CloudFront gives data.binance.vision's missing files."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        f"<Message>The specified key does not exist.</Message><Key>{path.lstrip('/')}</Key>"
        "</Error>"
    ).encode()


# --- command line ----------------------------------------------------------------------------


def run(
    port: int = 8765,
    config: data.SimConfig = data.DEFAULT_CONFIG,
    *,
    host: str = "127.0.0.1",
    cache_dir: Path | None = None,
    weight_limit: int = 6000,
    window_seconds: float = 60.0,
    ready: Callable[[Simulator], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve until interrupted (or until `stop` is set), printing the base URL first.

    `ready` is called with the running simulator (the CLI and tests use it to learn the
    port when 0 was asked for).
    """
    sim = Simulator(
        config,
        host=host,
        port=port,
        cache_dir=cache_dir,
        weight_limit=weight_limit,
        window_seconds=window_seconds,
    )
    with sim:
        print(f"marketlake simulator serving {', '.join(config.symbols)} at {sim.base_url}")
        print(f"  archive_url = rest_url = {sim.base_url}", flush=True)
        if ready is not None:
            ready(sim)
        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            # `kill`/container stop: leave through `with` so the temp cache is removed.
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(0.5):  # a timed wait keeps Ctrl-C responsive
                pass


def main(argv: Sequence[str] | None = None) -> int:
    """`marketlake sim` (also `python -m marketlake.simulator`)."""
    parser = argparse.ArgumentParser(prog="marketlake sim", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--trades-per-day", type=int, default=data.SimConfig.trades_per_day)
    parser.add_argument("--seed", type=int, default=data.SimConfig.seed)
    parser.add_argument("--symbols", default=",".join(data.SimConfig.symbols))
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--weight-limit", type=int, default=6000)
    parser.add_argument("--window-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    config = data.SimConfig(
        seed=args.seed,
        trades_per_day=args.trades_per_day,
        symbols=tuple(parse_symbols([args.symbols])),
    )
    run(
        args.port,
        config,
        host=args.host,
        cache_dir=args.cache_dir,
        weight_limit=args.weight_limit,
        window_seconds=args.window_seconds,
    )
    return 0
