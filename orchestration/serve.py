"""The long-running foreground commands: the exchange simulator and the Dagster UI."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from orchestration.errors import CommandFailed
from orchestration.instance import prepared_home
from orchestration.settings import child_environment, exchange_configured

#: The simulator's universe for the demo, `marketlake sim` and `marketlake ui`: busy enough
#: that live trades land every second (~3.5 per symbol), small enough for quick backfills.
DEMO_SIM_TRADES_PER_DAY = 300_000


def serve_simulator(
    port: int, *, trades_per_day: int | None = None, seed: int | None = None
) -> None:
    """The whole local exchange: archive + REST on `port`, websockets on `port + 1`."""
    check_ports_free(port, port + 1)
    from marketlake.simulator.data import SimConfig
    from marketlake.simulator.server import run
    from marketlake.simulator.websocket import WsSimulator

    config = SimConfig(
        trades_per_day=trades_per_day or DEMO_SIM_TRADES_PER_DAY,
        **({"seed": seed} if seed is not None else {}),
    )
    with WsSimulator(config, port=port + 1) as ws:
        print(
            f"  websocket: {ws.url}/stream (Binance), {ws.coinbase_url} (Coinbase), "
            f"{ws.okx_url} (OKX), {ws.deribit_url} (Deribit)",
            flush=True,
        )
        run(port=port, config=config)


def check_ports_free(*ports: int) -> None:
    """Each of `ports` can be listened on at 127.0.0.1, or the command stops saying which."""
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as error:
                raise CommandFailed(
                    f"cannot listen on 127.0.0.1:{port}: {error.strerror or error}"
                ) from None


def run_ui(*, ui_port: int, sim_port: int, lake: str | None) -> int:
    """`dagster dev` on 127.0.0.1 with workspace.yaml, beside the simulator when no URL is set.

    Its daemon is `orchestration.daemon`'s: a backfill launched in the UI gets its runs within
    seconds, not up to 30 s later.

    The webserver and daemon share `$DAGSTER_HOME` with the CLI, so CLI runs show up too.
    `dagster dev` is launched first (loading the code location is most of the wait for the
    UI); the simulator starts beside it on the addresses handed to it.
    """
    overrides = {"DAGSTER_HOME": str(prepared_home())}
    if lake:
        overrides["MARKETLAKE_LAKE"] = lake
    root = Path(__file__).resolve().parent.parent
    use_sim = not exchange_configured()
    check_ports_free(ui_port, *((sim_port, sim_port + 1) if use_sim else ()))
    if use_sim:
        overrides.update(simulator_environment(sim_port))
    command = [
        sys.executable, "-m", "orchestration.daemon", "dev",
        "-h", "127.0.0.1", "-p", str(ui_port), "-w", str(root / "workspace.yaml"),
    ]  # fmt: skip
    # Its own process group: the webserver, the daemon and their code servers are stopped
    # together, whichever signal reaches us (Ctrl-C, or SIGTERM from a service manager).
    process = subprocess.Popen(
        command, env=child_environment(overrides), cwd=root, start_new_session=True
    )
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    simulators: list = []
    try:
        if use_sim:
            simulators = start_simulators(sim_port)
            print(f"exchange simulator on {overrides['MARKETLAKE_BINANCE_REST_URL']} "
                  f"(websockets on {overrides['MARKETLAKE_BINANCE_WS_URL']})")  # fmt: skip
        print(f"Dagster UI on http://127.0.0.1:{ui_port} (Ctrl-C stops it)", flush=True)
        return _wait_interruptibly(process)
    except (KeyboardInterrupt, _Stop):
        stop_process_group(process)
        return 0
    except BaseException:
        stop_process_group(process)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        for simulator in reversed(simulators):
            simulator.stop()


def simulator_environment(port: int) -> dict[str, str]:
    """The settings that point marketlake at the simulator `start_simulators(port)` runs."""
    http, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port + 1}"
    return {
        "MARKETLAKE_BINANCE_ARCHIVE_URL": http,
        "MARKETLAKE_BINANCE_REST_URL": http,
        "MARKETLAKE_BINANCE_WS_URL": ws,
        "MARKETLAKE_COINBASE_WS_URL": f"{ws}/coinbase",
        "MARKETLAKE_OKX_WS_URL": f"{ws}/ws/v5/public",
        "MARKETLAKE_OKX_REST_URL": http,
        "MARKETLAKE_DERIBIT_WS_URL": f"{ws}/ws/api/v2",
        "MARKETLAKE_DERIBIT_REST_URL": http,
    }


def start_simulators(port: int) -> list:
    """Archive + REST on `port`, websockets on `port + 1`, as `simulator_environment` says."""
    from marketlake.simulator.data import SimConfig
    from marketlake.simulator.server import Simulator
    from marketlake.simulator.websocket import WsSimulator

    config = SimConfig(trades_per_day=DEMO_SIM_TRADES_PER_DAY)
    http = Simulator(config, port=port).start()
    ws = WsSimulator(config, port=port + 1).start()
    expected = simulator_environment(port)
    actual = {
        "MARKETLAKE_BINANCE_REST_URL": http.base_url,
        "MARKETLAKE_BINANCE_WS_URL": ws.url,
        "MARKETLAKE_COINBASE_WS_URL": ws.coinbase_url,
        "MARKETLAKE_OKX_WS_URL": ws.okx_url,
        "MARKETLAKE_DERIBIT_WS_URL": ws.deribit_url,
    }
    if any(expected[name] != url for name, url in actual.items()):
        raise RuntimeError(f"the simulator serves {actual}, not {expected}")
    return [http, ws]


def _wait_interruptibly(process: subprocess.Popen) -> int:
    """`process.wait()` in short slices: a signal the kernel hands to one of the simulator's
    threads leaves a main thread blocked in waitpid() deaf to it; between slices Python
    runs the handler."""
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return process.wait(timeout=0.2)


class _Stop(Exception):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt."""


def _raise_stop(signo: int, frame: object) -> None:
    raise _Stop(signo)


def stop_process_group(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM to `process`'s group, then SIGKILL to whatever is left after `grace_s`.

    `dagster dev` shuts its webserver and daemon down on SIGTERM; the kill is for a child
    that hangs on its way out, so nothing keeps serving after `marketlake ui` has exited.
    """
    group = process.pid
    _signal_group(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    deadline = time.monotonic() + grace_s
    while _group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_group(group, signal.SIGKILL)
    process.wait()


def _signal_group(group: int, signo: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signo)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
