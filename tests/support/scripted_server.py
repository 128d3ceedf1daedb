"""Loopback HTTP and websocket servers answering from a script: misbehaviour the simulator
can't produce."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"[]"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering
    cut: bool = False  # announce the whole body, send half of it, hang up
    drip: float = 0.0  # send the body one byte every `drip` seconds


class ScriptedServer:
    """A loopback HTTP server answering from a script and recording when it was asked.

    The script is a list of replies, taken in order (then 500s), or a function of the path.
    """

    def __init__(self, script: list[Reply] | Callable[[str], Reply]) -> None:
        self.script = script
        self.seen: list[tuple[float, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.seen.append((time.monotonic(), self.path))
                script = outer.script
                reply = (
                    script(self.path)
                    if callable(script)
                    else (script.pop(0) if script else Reply(500))
                )
                time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Length", str(len(reply.body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if reply.cut:
                        self.wfile.write(reply.body[: len(reply.body) // 2])
                        self.close_connection = True
                        return
                    if reply.drip:
                        for byte in reply.body:
                            self.wfile.write(bytes((byte,)))
                            self.wfile.flush()
                            time.sleep(reply.drip)
                        return
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"


def files(bodies: Mapping[str, bytes], cut: set[str] = frozenset()) -> Callable[[str], Reply]:
    """A script serving fixed bodies by path (404 elsewhere); `cut` paths are cut once."""
    pending_cuts = set(cut)

    def reply(path: str) -> Reply:
        if path not in bodies:
            return Reply(404, b"")
        if path in pending_cuts:
            pending_cuts.discard(path)
            return Reply(200, bodies[path], cut=True)
        return Reply(200, bodies[path])

    return reply


class ScriptedWebsocket:
    """A loopback websocket server sending the frames a test puts in `frames`, in order.

    Every connection takes from the same queue (what one connection sent, the next does not
    send again) and ignores what the client sends (subscriptions). `connections` counts them.
    """

    def __init__(self) -> None:
        from websockets.sync.server import serve

        self.frames: queue.Queue[bytes] = queue.Queue()
        self.connections = 0
        self.sent = 0
        self._closing = threading.Event()
        self._server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self.connections += 1
        while not self._closing.is_set():
            try:
                frame = self.frames.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                ws.send(frame.decode())
            except ConnectionClosed:
                self.frames.put(frame)
                return
            self.sent += 1

    def send(self, *frames: bytes) -> None:
        for frame in frames:
            self.frames.put(frame)

    def __enter__(self) -> ScriptedWebsocket:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"


#: One trade as Binance's REST `historicalTrades` answers it (the shape of the real capture
#: in tests/data/real/binance_rest), for scripted replies.
TRADES_BODY = orjson.dumps(
    [
        {
            "id": 7,
            "price": "60650.00000000",
            "qty": "0.02924000",
            "quoteQty": "1773.40600000",
            "time": 1634942949263,
            "isBuyerMaker": True,
            "isBestMatch": True,
        }
    ]
)
