"""A careless user's mistakes and a misbehaving exchange: one clear line, no traceback.

Exit status 2 for a request that is wrong, 1 for something it needs that failed; nothing
is fetched or written before the request has passed its checks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from support.scripted_server import Reply, ScriptedServer

from marketlake.exchanges.binance.endpoints import BinanceEndpoints
from marketlake.instruments import Instrument
from orchestration.errors import CommandFailed
from orchestration.instance import local_instance
from orchestration.symbols import register_instruments

ROOT = Path(__file__).resolve().parents[2]
EXCHANGE_INFO = b'{"symbols": [{"symbol": "BTCUSDT", "status": "TRADING"}]}'


def marketlake(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAKE_", "DAGSTER_"))},
        "DAGSTER_HOME": str(cwd / "home"),
        "COLUMNS": "200",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def said(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


def assert_one_clear_line(result: subprocess.CompletedProcess, status: int, *needles: str):
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in said(result), said(result)


def exchange(reply: Reply) -> ScriptedServer:
    return ScriptedServer(lambda path: reply)


# --- the pre-flight exchangeInfo ------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (Reply(200, b"<html>maintenance</html>"), "not JSON"),
        (Reply(200, b'{"symbols": 3}'), "expected an object with a 'symbols' list"),
        (Reply(500, b"oops"), "500"),
    ],
    ids=["invalid JSON", "wrong shape", "HTTP 500"],
)
def test_an_exchange_info_failure_stops_the_backfill_naming_the_url(tmp_path, reply, problem):
    with exchange(reply) as server:
        result = marketlake(
            "backfill", "BTCUSDT", "--start", "2024-03-01", "--lake", "lake", cwd=tmp_path,
            MARKETLAKE_BINANCE_REST_URL=server.base_url,
            MARKETLAKE_BINANCE_ARCHIVE_URL=server.base_url,
        )  # fmt: skip
        asked = [path for _, path in server.seen]
    assert_one_clear_line(
        result, 1, f"could not check the symbols against Binance at {server.base_url}", problem
    )
    assert all(path.startswith("/api/v3/exchangeInfo") for path in asked)
    assert not (tmp_path / "lake").exists()


def test_an_exchange_info_that_never_answers_times_out_naming_the_url(tmp_path):
    with exchange(Reply(200, EXCHANGE_INFO, delay=2.0)) as server:
        binance = BinanceEndpoints(rest_url=server.base_url)
        with pytest.raises(CommandFailed) as failure:
            register_instruments(
                local_instance(tmp_path / "home"),
                binance,
                [Instrument("binance", "BTCUSDT")],
                timeout_s=0.2,
            )
    message = str(failure.value)
    assert f"{server.base_url}/api/v3/exchangeInfo" in message
    assert "Timeout" in message and "\n" not in message


# --- the lake, checked before anything is fetched -------------------------------------------


def test_a_lake_that_is_a_file_is_refused_before_the_exchange_is_asked(tmp_path):
    (tmp_path / "lake").write_text("not a folder")
    with exchange(Reply(200, EXCHANGE_INFO)) as server:
        result = marketlake(
            "backfill", "BTCUSDT", "--start", "2024-03-01", "--lake", "lake", cwd=tmp_path,
            MARKETLAKE_BINANCE_REST_URL=server.base_url,
            MARKETLAKE_BINANCE_ARCHIVE_URL=server.base_url,
        )  # fmt: skip
        asked = list(server.seen)
    assert_one_clear_line(result, 2, f"--lake {tmp_path / 'lake'} is a file, not a folder")
    assert asked == []


@contextlib.contextmanager
def read_only_folder(path: Path):
    """A folder this process cannot write: a read-only bind mount for root (whom permission
    bits do not stop), the permission bits for anyone else."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(path), str(path)], capture_output=True, text=True
    )
    assert mounted.returncode == 0, f"a read-only bind mount is needed as root: {mounted.stderr}"
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_read_only_lake_is_refused_before_the_exchange_is_asked(tmp_path):
    with (
        read_only_folder(tmp_path / "readonly") as folder,
        exchange(Reply(200, EXCHANGE_INFO)) as server,
    ):
        result = marketlake(
            "backfill", "BTCUSDT", "--start", "2024-03-01", "--lake", str(folder / "lake"),
            cwd=tmp_path, MARKETLAKE_BINANCE_REST_URL=server.base_url,
            MARKETLAKE_BINANCE_ARCHIVE_URL=server.base_url,
        )  # fmt: skip
        asked = list(server.seen)
    assert_one_clear_line(result, 2, f"folder {folder} is not writable")
    assert asked == []


def test_a_stream_into_a_lake_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "lake").write_text("not a folder")
    result = marketlake("stream", "BTCUSDT", "--duration", "5", "--lake", "lake", cwd=tmp_path)
    assert_one_clear_line(result, 2, "is a file, not a folder")


# --- show -----------------------------------------------------------------------------------


@pytest.fixture
def bars_lake(tmp_path) -> Path:
    """A lake whose bars_1m holds one minute of BTCUSDT on 2024-03-01."""
    lake = tmp_path / "lake"
    pl.DataFrame(
        {
            "exchange": ["binance"] * 3,
            "symbol": ["BTCUSDT"] * 3,
            "date": [dt.date(2024, 3, 1)] * 3,
            "minute": [dt.datetime(2024, 3, 1, 0, m, tzinfo=dt.UTC) for m in range(3)],
            "close": [1.0, 2.0, 3.0],
        }
    ).write_delta(
        str(lake / "bars_1m"), delta_write_options={"partition_by": ["exchange", "symbol", "date"]}
    )
    return lake


def test_show_of_a_partition_that_does_not_exist_says_so_and_exits_1(tmp_path, bars_lake):
    result = marketlake("show", "bars", "BTCUSDT", "2024-03-02", "--lake", str(bars_lake),
                        cwd=tmp_path)  # fmt: skip
    assert_one_clear_line(result, 1, "has no partition binance/BTCUSDT/2024-03-02")
    assert "(0 rows)" not in result.stdout


@pytest.mark.parametrize("limit", ["-5", "0"])
def test_show_refuses_a_limit_that_is_not_positive(tmp_path, bars_lake, limit):
    result = marketlake("show", "bars", "BTCUSDT", "2024-03-01", "--limit", limit,
                        "--lake", str(bars_lake), cwd=tmp_path)  # fmt: skip
    assert_one_clear_line(result, 2, f"{limit} is not a positive number of rows")


def test_show_limit_keeps_the_first_rows(tmp_path, bars_lake):
    result = marketlake("show", "bars", "BTCUSDT", "2024-03-01", "--limit", "2",
                        "--format", "csv", "--lake", str(bars_lake), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert pl.read_csv(result.stdout.encode())["close"].to_list() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("output", "problem"),
    [("missing/bars.csv", "--output missing/bars.csv: folder missing does not exist"),
     (".", "--output . is a folder")],
)  # fmt: skip
def test_show_to_an_output_it_cannot_write_is_refused_before_reading(
    tmp_path, bars_lake, output, problem
):
    result = marketlake("show", "bars", "BTCUSDT", "2024-03-01", "--format", "csv",
                        "--output", output, "--lake", str(bars_lake), cwd=tmp_path)  # fmt: skip
    assert_one_clear_line(result, 2, problem)


def test_show_on_an_unreachable_s3_lake_names_the_table_and_exits_1(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = marketlake(
        "show", "bars", "BTCUSDT", "2024-03-01", cwd=tmp_path,
        MARKETLAKE_LAKE="s3://bucket/lake", MARKETLAKE_S3_ENDPOINT=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
    )  # fmt: skip
    assert_one_clear_line(result, 1, "cannot read s3://bucket/lake/bars_1m")


# --- sim, stream and the size of a request --------------------------------------------------


def test_sim_refuses_a_port_out_of_range(tmp_path):
    result = marketlake("sim", "--port", "99999", cwd=tmp_path)
    assert_one_clear_line(result, 2, "port 99999 is out of range")


def test_sim_on_a_port_in_use_says_which_and_exits_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = marketlake("sim", "--port", str(port), cwd=tmp_path)
    assert_one_clear_line(result, 1, f"cannot listen on 127.0.0.1:{port}")


def test_stream_refuses_a_negative_duration(tmp_path):
    result = marketlake("stream", "BTCUSDT", "--duration", "-5", cwd=tmp_path)
    assert_one_clear_line(result, 2, "-5 is not a positive number of seconds")


def test_a_twenty_year_range_is_refused_with_its_size_unless_confirmed(tmp_path):
    with exchange(Reply(200, EXCHANGE_INFO)) as server:
        result = marketlake(
            "backfill", "BTCUSDT", "--start", "2004-01-01", "--end", "2023-12-31",
            "--lake", "lake", cwd=tmp_path, MARKETLAKE_START_DATE="2000-01-01",
            MARKETLAKE_BINANCE_REST_URL=server.base_url,
        )  # fmt: skip
        asked = list(server.seen)
    assert_one_clear_line(result, 2, "7,305 partitions", "--yes")
    assert asked == []
    assert not (tmp_path / "lake").exists()
