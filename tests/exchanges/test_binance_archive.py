"""The daily archive client against the local exchange simulator and a few broken servers.

The simulator serves data.binance.vision's paths with real zips and CHECKSUM sidecars and
can break them on demand (`sim.faults`); a tiny scripted server covers the breakages it
can't produce (a zip without the CSV member, a CRC error, a connection cut mid-body).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
from support.samples import TRADES_CSV_2024
from support.scripted_server import ScriptedServer, files

from marketlake.exchanges.binance.archive import ArchiveDay, BinanceArchive
from marketlake.exchanges.errors import (
    ArchiveChecksumError,
    ArchiveDownloadError,
    ArchiveError,
    ArchiveFormatError,
    ArchiveIntegrityError,
    ArchiveNotPublished,
    ExchangeError,
)
from marketlake.schemas import RAW_TRADES, InvalidSymbolError
from marketlake.simulator import data
from marketlake.simulator.data import SimConfig
from marketlake.simulator.server import Simulator

SYMBOL = "BTCUSDT"
NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)
CONFIG = SimConfig(seed=21, trades_per_day=30_000, symbols=(SYMBOL, "ETHUSDT"))
MS_DAY = dt.date(2024, 12, 31)
US_DAY = dt.date(2025, 1, 2)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(CONFIG, clock=lambda: NOW) as simulator:
        yield simulator


@pytest.fixture
def archive(sim: Simulator) -> Iterator[BinanceArchive]:
    sim.faults.clear()
    with BinanceArchive(sim.base_url, backoff_base=0.01, backoff_cap=0.05) as client:
        yield client
    sim.faults.clear()


def test_the_url_follows_data_binance_visions_layout():
    archive = BinanceArchive()
    assert archive.url_for("btcusdt", dt.date(2024, 12, 31)) == (
        "https://data.binance.vision/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-12-31.zip"
    )


def test_a_symbol_that_cannot_be_one_never_becomes_a_url():
    with pytest.raises(InvalidSymbolError):
        BinanceArchive().url_for("../../etc", dt.date(2024, 12, 31))


@pytest.mark.parametrize(("day", "unit"), [(MS_DAY, "ms"), (US_DAY, "us")])
def test_an_archive_day_equals_the_ground_truth_exactly(
    sim: Simulator, archive: BinanceArchive, tmp_path: Path, day: dt.date, unit: str
):
    fetched = archive.fetch_day(SYMBOL, day, workdir=tmp_path)
    assert isinstance(fetched, ArchiveDay)
    assert fetched.trades.schema == RAW_TRADES
    assert fetched.trades.equals(sim.ground_truth(SYMBOL, day))
    assert fetched.unit == unit
    assert fetched.line_count == fetched.trades.height == CONFIG.trades_per_day
    assert (fetched.first_id, fetched.last_id) == (
        data.first_trade_id(SYMBOL, day, CONFIG),
        data.last_trade_id(SYMBOL, day, CONFIG),
    )
    served = httpx.get(fetched.url).content
    assert fetched.bytes_downloaded == len(served)
    assert fetched.sha256 == hashlib.sha256(served).hexdigest()
    assert list(tmp_path.iterdir()) == []  # temporary zip and CSV are gone


def test_a_checksum_mismatch_raises_before_anything_is_parsed(
    sim: Simulator, archive: BinanceArchive, tmp_path: Path
):
    sim.faults.wrong_checksum.add((SYMBOL, MS_DAY))
    with pytest.raises(ArchiveChecksumError) as caught:
        archive.fetch_day(SYMBOL, MS_DAY, workdir=tmp_path)
    assert archive.url_for(SYMBOL, MS_DAY) in str(caught.value)
    assert "sha256" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_zip_raises_an_integrity_error_naming_the_url(
    sim: Simulator, archive: BinanceArchive, tmp_path: Path
):
    sim.faults.corrupt_zip.add((SYMBOL, US_DAY))
    with pytest.raises(ArchiveIntegrityError, match=r"BTCUSDT-trades-2025-01-02\.zip"):
        archive.fetch_day(SYMBOL, US_DAY, workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("symbol", "day"),
    [(SYMBOL, dt.date(2025, 2, 1)), (SYMBOL, NOW.date()), ("SOLUSDT", MS_DAY)],
    ids=["fault", "today", "unlisted-symbol"],
)
def test_a_404_is_reported_as_not_published(
    sim: Simulator, archive: BinanceArchive, symbol: str, day: dt.date
):
    sim.faults.unpublished.add((SYMBOL, dt.date(2025, 2, 1)))
    with pytest.raises(ArchiveNotPublished, match="not published") as caught:
        archive.fetch_day(symbol, day)
    assert isinstance(caught.value, ArchiveError) and isinstance(caught.value, ExchangeError)


def test_a_truncated_csv_raises_a_format_error_naming_file_and_line(
    sim: Simulator, archive: BinanceArchive, tmp_path: Path
):
    sim.faults.truncated_csv.add((SYMBOL, MS_DAY))
    with pytest.raises(ArchiveFormatError) as caught:
        archive.fetch_day(SYMBOL, MS_DAY, workdir=tmp_path)
    message = str(caught.value)
    assert archive.url_for(SYMBOL, MS_DAY) in message and "line" in message
    assert list(tmp_path.iterdir()) == []


def test_holes_in_an_archive_come_through_with_a_matching_line_count(
    sim: Simulator, archive: BinanceArchive
):
    first = data.first_trade_id(SYMBOL, US_DAY, CONFIG)
    holes = [(first + 100, first + 199), (first + 5000, first + 5000)]
    sim.faults.archive_gaps[(SYMBOL, US_DAY)] = holes
    fetched = archive.fetch_day(SYMBOL, US_DAY)
    ids = fetched.trades["trade_id"]
    assert fetched.line_count == fetched.trades.height == CONFIG.trades_per_day - 101
    assert not ids.is_in([first + 100, first + 199, first + 5000]).any()
    assert ids.is_in([first + 99, first + 200, first + 4999, first + 5001]).sum() == 4


def test_archive_5xx_are_retried(sim: Simulator, archive: BinanceArchive):
    sim.faults.archive_fail_5xx = 2
    assert archive.fetch_day(SYMBOL, MS_DAY).trades.height == CONFIG.trades_per_day


def test_an_archive_that_keeps_failing_raises_a_download_error(sim: Simulator):
    sim.faults.archive_fail_5xx = 100
    try:
        with (
            BinanceArchive(sim.base_url, retries=2, backoff_base=0.01) as archive,
            pytest.raises(ArchiveDownloadError, match=r"after 2 retries: HTTP 503"),
        ):
            archive.fetch_day(SYMBOL, MS_DAY)
    finally:
        sim.faults.clear()


# --- breakages the simulator can't produce -------------------------------------------------------


DAY = dt.date(2024, 12, 31)
ZIP_PATH = "/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-12-31.zip"


def zip_of(member: str, payload: bytes, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr(member, payload)
    return buffer.getvalue()


def served(zip_bytes: bytes, name: str = "BTCUSDT-trades-2024-12-31.zip") -> dict[str, bytes]:
    checksum = f"{hashlib.sha256(zip_bytes).hexdigest()}  {name}".encode()
    return {ZIP_PATH: zip_bytes, ZIP_PATH + ".CHECKSUM": checksum}


def test_the_real_sample_rows_round_trip_through_a_zip():
    csv = TRADES_CSV_2024.read_bytes()
    with ScriptedServer(files(served(zip_of("BTCUSDT-trades-2024-12-31.csv", csv)))) as server:
        fetched = BinanceArchive(server.base_url).fetch_day(SYMBOL, DAY)
    assert (fetched.line_count, fetched.trades.height, fetched.unit) == (217, 217, "ms")
    assert fetched.trades["ts"][0] == dt.datetime(2024, 12, 31, 0, 0, 0, 213000, tzinfo=dt.UTC)


def test_a_zip_without_the_days_csv_raises_an_integrity_error():
    bodies = served(zip_of("something-else.csv", TRADES_CSV_2024.read_bytes()))
    with (
        ScriptedServer(files(bodies)) as server,
        pytest.raises(ArchiveIntegrityError, match="no member"),
    ):
        BinanceArchive(server.base_url).fetch_day(SYMBOL, DAY)


def test_a_crc_error_inside_a_checksum_valid_zip_raises_an_integrity_error():
    good = zip_of("BTCUSDT-trades-2024-12-31.csv", TRADES_CSV_2024.read_bytes(), zipfile.ZIP_STORED)
    at = good.index(b"4356587600")  # a byte inside the stored CSV data
    bad = good[:at] + b"5" + good[at + 1 :]
    with (
        ScriptedServer(files(served(bad))) as server,
        pytest.raises(ArchiveIntegrityError, match="CRC"),
    ):
        BinanceArchive(server.base_url).fetch_day(SYMBOL, DAY)


def test_a_checksum_naming_another_file_is_refused():
    bodies = served(
        zip_of("BTCUSDT-trades-2024-12-31.csv", b""), name="ETHUSDT-trades-2024-12-31.zip"
    )
    with (
        ScriptedServer(files(bodies)) as server,
        pytest.raises(ArchiveChecksumError, match="ETHUSDT"),
    ):
        BinanceArchive(server.base_url).fetch_day(SYMBOL, DAY)


def test_a_download_cut_mid_body_is_retried_from_scratch():
    bodies = served(zip_of("BTCUSDT-trades-2024-12-31.csv", TRADES_CSV_2024.read_bytes()))
    with ScriptedServer(files(bodies, cut={ZIP_PATH})) as server:
        archive = BinanceArchive(server.base_url, backoff_base=0.01)
        fetched = archive.fetch_day(SYMBOL, DAY)
        assert len(server.seen) == 3  # CHECKSUM, the cut zip, the whole zip
    assert fetched.trades.height == 217
    assert fetched.bytes_downloaded == len(bodies[ZIP_PATH])


def test_an_empty_day_is_an_empty_frame():
    with ScriptedServer(files(served(zip_of("BTCUSDT-trades-2024-12-31.csv", b"")))) as server:
        fetched = BinanceArchive(server.base_url).fetch_day(SYMBOL, DAY)
    assert fetched.trades.height == 0 and fetched.line_count == 0 and fetched.unit is None
    assert fetched.trades.schema == RAW_TRADES
    assert fetched.first_id is None
    assert isinstance(fetched.trades, pl.DataFrame)
