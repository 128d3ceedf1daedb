"""Zip bombs and endless lines: an archive day bigger than any real day is refused, fast.

A zip can declare honestly that it inflates to gigabytes of one repeated line, or hold a
CSV without a single newline. Both are refused with a message naming the URL and the limit
that stopped them (limits lowered here so the files stay small), before the parser sees a
row; cutting lines stays linear in the bytes whatever the input.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from support.samples import TRADES_CSV_2024
from support.scripted_server import ScriptedServer, files

from marketlake.exchanges.binance.archive import (
    ArchiveLimits,
    BinanceArchive,
    LineCutter,
    parse_member,
)
from marketlake.exchanges.errors import ArchiveFormatError, ArchiveIntegrityError
from marketlake.simulator.archive_csv import archive_csv_bytes
from marketlake.simulator.data import SimConfig

SYMBOL = "BTCUSDT"
DAY = dt.date(2024, 12, 31)
MEMBER = "BTCUSDT-trades-2024-12-31.csv"
ZIP_PATH = "/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-12-31.zip"
REAL = TRADES_CSV_2024.read_bytes()
ONE_LINE = REAL.splitlines(keepends=True)[0]


def zip_of(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MEMBER, payload)
    return buffer.getvalue()


def served(zip_bytes: bytes) -> dict[str, bytes]:
    checksum = f"{hashlib.sha256(zip_bytes).hexdigest()}  {MEMBER[:-4]}.zip".encode()
    return {ZIP_PATH: zip_bytes, ZIP_PATH + ".CHECKSUM": checksum}


def fetch(zip_bytes: bytes, limits: ArchiveLimits, tmp_path: Path) -> None:
    with ScriptedServer(files(served(zip_bytes))) as server:
        BinanceArchive(server.base_url, limits=limits).fetch_day(SYMBOL, DAY, workdir=tmp_path)


def test_a_zip_declaring_more_than_a_day_can_hold_is_refused_before_inflating(tmp_path):
    bomb = zip_of(ONE_LINE * 20_000)  # 1.5 MB of one trade id, honest header, ~5 KB zipped
    limits = ArchiveLimits(max_inflated_bytes=1 << 20)
    with pytest.raises(ArchiveIntegrityError) as caught:
        fetch(bomb, limits, tmp_path)
    message = str(caught.value)
    assert ZIP_PATH in message
    assert "max_inflated_bytes" in message and "1,048,576" in message
    assert "not inflated" in message
    assert list(tmp_path.iterdir()) == []


def test_a_zip_of_one_repeated_line_is_refused_by_its_compression_ratio(tmp_path):
    bomb = zip_of(ONE_LINE * 20_000)
    limits = ArchiveLimits(ratio_floor=1 << 10)  # the default size cap would let it through
    with pytest.raises(ArchiveIntegrityError, match="max_inflate_ratio 40") as caught:
        fetch(bomb, limits, tmp_path)
    assert ZIP_PATH in str(caught.value) and "zip bomb" in str(caught.value)


def test_a_day_that_deflates_like_real_trades_passes_the_ratio_check(tmp_path):
    config = SimConfig(seed=5, trades_per_day=20_000, symbols=(SYMBOL,))
    payload = archive_csv_bytes(SYMBOL, DAY, config)
    path = tmp_path / "day.zip"
    path.write_bytes(zip_of(payload))
    limits = ArchiveLimits(ratio_floor=0, max_inflated_bytes=len(payload))
    trades, _, lines = parse_member(path, MEMBER, "http://127.0.0.1/day.zip", limits=limits)
    assert trades.height == lines == 20_000


def test_a_member_without_newlines_is_refused_at_the_line_limit(tmp_path):
    endless = zip_of(b"1" * (4 << 20))  # 4 MB and no line end
    with pytest.raises(ArchiveFormatError) as caught:
        fetch(endless, ArchiveLimits(), tmp_path)
    message = str(caught.value)
    assert ZIP_PATH in message and MEMBER in message
    assert "line 1 runs past 1,024 bytes" in message and "max_line_bytes" in message
    assert list(tmp_path.iterdir()) == []


def test_a_line_running_on_after_good_ones_is_named_by_its_line():
    """The limit bounds what is read without a line end (inflated blocks are 8 MB at most,
    so a long line inside one block costs nothing, and the parser refuses it)."""
    payload = REAL + b"9" * 5_000 + b"\n" + REAL
    blocks = [payload[at : at + 512] for at in range(0, len(payload), 512)]
    cutter = LineCutter(size=4096, max_line=1024, name="day.csv")
    with pytest.raises(ArchiveFormatError, match=r"^day\.csv: line 218 runs past 1,024 bytes"):
        list(cutter.pieces(blocks))


def test_the_real_rows_pass_the_default_limits(tmp_path):
    with ScriptedServer(files(served(zip_of(REAL)))) as server:
        day = BinanceArchive(server.base_url).fetch_day(SYMBOL, DAY, workdir=tmp_path)
    assert day.trades.height == day.line_count == 217


# --- cutting stays linear ---------------------------------------------------------------------

BLOCK = 1 << 12


def bytes_copied(blocks: list[bytes], size: int) -> int:
    cutter = LineCutter(size, max_line=None)
    pieces = list(cutter.pieces(blocks))
    assert b"".join(pieces) == b"".join(blocks)
    return cutter.copied


@pytest.mark.parametrize(
    "block",
    [b"x" * BLOCK, b"\n" * BLOCK, (ONE_LINE * (BLOCK // len(ONE_LINE) + 1))[:BLOCK]],
    ids=["no newlines", "only newlines", "real rows cut mid-line"],
)
def test_cutting_copies_each_byte_a_bounded_number_of_times_whatever_the_length(block: bytes):
    """Four times the blocks copy at most four times the bytes: the old re-join of a
    growing buffer copied ~n²/2 blocks (200 blocks: 100x the input)."""
    for count in (50, 200, 800):
        total = count * BLOCK
        assert bytes_copied([block] * count, size=8 * BLOCK) <= 3 * total
