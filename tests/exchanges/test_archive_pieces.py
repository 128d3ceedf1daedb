"""The archive's streamed unzip: inflating the member, cutting it at line ends, parsing pieces.

A day's CSV is parsed in pieces while the rest is still being inflated, so every way a cut
can fall (mid-line, next to a blank line, before a last line without its newline) must
parse exactly as the whole file does, with errors naming the line of the whole file, and every
way the zip can be damaged must be an `ArchiveIntegrityError`, never rows.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import zipfile
from pathlib import Path

import pytest
from support.samples import TRADES_CSV_2024

from marketlake.exchanges.binance import archive as archive_module
from marketlake.exchanges.binance.archive import line_pieces, member_blocks, parse_member
from marketlake.exchanges.binance.parsing import (
    parse_trades_csv_chunks,
    parse_trades_csv_with_unit,
)
from marketlake.exchanges.errors import ArchiveFormatError, ArchiveIntegrityError
from marketlake.simulator import data
from marketlake.simulator.archive_csv import archive_csv_bytes
from marketlake.simulator.data import SimConfig

MEMBER = "BTCUSDT-trades-2024-12-31.csv"
URL = "http://127.0.0.1/BTCUSDT-trades-2024-12-31.zip"

REAL = TRADES_CSV_2024.read_bytes()
#: The real rows, and the same rows without the final newline.
VARIANTS = {"real": REAL, "no final newline": REAL.rstrip(b"\n")}
#: Blank lines where cuts are likely to fall: malformed, and refused at the same line
#: whether the file is parsed whole or in pieces.
BLANK_LINES = {
    72: REAL.replace(b"\n4356587610,", b"\n\n4356587610,"),
    218: REAL + b"\n\n",
    1: b"\n" + REAL,
}


def blocks_of(payload: bytes, rng: random.Random) -> list[bytes]:
    """`payload` split into blocks of random sizes (as an inflater hands them out)."""
    cuts = sorted(rng.sample(range(1, len(payload)), k=min(len(payload) - 1, 12)))
    return [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", [1, 7, 64, 500, 4096, 1 << 20])
def test_pieces_join_up_to_the_file_and_each_ends_at_a_line_end(variant: str, size: int):
    payload = VARIANTS[variant]
    pieces = list(line_pieces(blocks_of(payload, random.Random(size)), size))
    assert b"".join(pieces) == payload
    assert all(piece.endswith(b"\n") for piece in pieces[:-1])
    assert not any(piece.startswith(b"\n") for piece in pieces[1:])
    assert all(piece for piece in pieces)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", [1, 50, 333, 2048, 1 << 20])
def test_every_cut_parses_exactly_as_the_whole_file(variant: str, size: int):
    payload = VARIANTS[variant]
    whole, whole_unit = parse_trades_csv_with_unit(payload, name="whole")
    pieces = line_pieces(blocks_of(payload, random.Random(size)), size)
    trades, unit = parse_trades_csv_chunks(pieces, name="pieces")
    assert unit == whole_unit == "ms"
    assert trades.equals(whole)
    assert trades.height == REAL.count(b"\n")


@pytest.mark.parametrize("line", BLANK_LINES)
@pytest.mark.parametrize("size", [1, 50, 2048, 1 << 20])
def test_a_blank_line_is_refused_at_the_same_line_whole_or_in_pieces(line: int, size: int):
    payload = BLANK_LINES[line]
    with pytest.raises(ArchiveFormatError) as whole:
        parse_trades_csv_with_unit(payload, name="day.csv")
    pieces = line_pieces(blocks_of(payload, random.Random(size)), size)
    with pytest.raises(ArchiveFormatError) as in_pieces:
        parse_trades_csv_chunks(pieces, name="day.csv")
    assert str(in_pieces.value) == str(whole.value)
    assert f"day.csv: line {line}" in str(whole.value)


def test_no_bytes_make_no_pieces():
    assert list(line_pieces([], 10)) == []
    assert list(line_pieces([b"", b""], 10)) == []


@pytest.mark.parametrize("size", [1, 100, 1 << 20])
def test_a_malformed_line_is_named_by_its_line_in_the_whole_file(size: int):
    lines = REAL.splitlines(keepends=True)
    lines[149] = b"4356587749,93540.01,not-a-qty,0.1,1735603200500,True,True\n"
    payload = b"".join(lines)
    with pytest.raises(ArchiveFormatError, match=r"\bline 150\b"):
        parse_trades_csv_chunks(line_pieces([payload], size), name="day.csv")


# --- member_blocks and parse_member on real zips -------------------------------------------------


def zip_file(tmp_path: Path, payload: bytes, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    path = tmp_path / "day.zip"
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr(MEMBER, payload)
    return path


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_the_member_inflates_to_its_exact_bytes_in_many_blocks(tmp_path, monkeypatch, compression):
    monkeypatch.setattr(archive_module, "_READ", 97)  # many small reads of the stream
    path = zip_file(tmp_path, REAL, compression)
    blocks = list(member_blocks(path, MEMBER, URL))
    assert len(blocks) > 10
    assert b"".join(blocks) == REAL


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("piece", [64, 1 << 20])
def test_a_zipped_day_parses_with_its_line_count_whatever_the_piece(tmp_path, variant, piece):
    payload = VARIANTS[variant]
    trades, _, lines = parse_member(zip_file(tmp_path, payload), MEMBER, URL, piece)
    assert trades.equals(parse_trades_csv_with_unit(payload, name="whole")[0])
    assert lines == payload.count(b"\n") + (0 if payload.endswith(b"\n") else 1)


def test_a_simulated_day_in_many_pieces_equals_the_ground_truth(tmp_path):
    config = SimConfig(seed=3, trades_per_day=20_000, symbols=("BTCUSDT",))
    day = dt.date(2024, 3, 1)
    truth = data.day_raw_trades("BTCUSDT", day, config)
    payload = archive_csv_bytes("BTCUSDT", day, config)
    trades, unit, lines = parse_member(zip_file(tmp_path, payload), MEMBER, URL, 10_000)
    assert (unit, lines, trades.height) == ("ms", truth.height, truth.height)
    assert trades.equals(truth)


def test_a_zip_whose_crc_does_not_match_is_refused(tmp_path):
    path = zip_file(tmp_path, REAL)
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 16] ^= 0xFF  # the CRC-32 field of the central directory entry
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveIntegrityError, match="CRC-32"):
        list(member_blocks(path, MEMBER, URL))


def test_a_deflate_stream_cut_short_is_refused(tmp_path):
    """The first half of a deflate stream, stored, then relabelled as deflated."""
    compressor = zipfile._get_compressor(zipfile.ZIP_DEFLATED)  # raw deflate, as zips use
    stream = compressor.compress(REAL) + compressor.flush()
    path = zip_file(tmp_path, stream[: len(stream) // 2], zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    raw[8] = zipfile.ZIP_DEFLATED  # the local header's compression method
    central = raw.index(b"PK\x01\x02")
    raw[central + 10] = zipfile.ZIP_DEFLATED  # and the central directory's
    raw[central + 24 : central + 28] = len(REAL).to_bytes(4, "little")  # the inflated size
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveIntegrityError, match="cut short"):
        list(member_blocks(path, MEMBER, URL))


def test_garbage_in_the_deflate_stream_is_refused(tmp_path):
    path = zip_file(tmp_path, REAL * 20)
    raw = bytearray(path.read_bytes())
    start = 30 + len(MEMBER)
    raw[start + 200 : start + 400] = bytes(200)
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveIntegrityError, match="corrupt zip"):
        parse_member(path, MEMBER, URL)


def test_a_member_compressed_another_way_is_refused(tmp_path):
    path = tmp_path / "day.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr(MEMBER, REAL)
    with pytest.raises(ArchiveIntegrityError, match="compression method 12"):
        list(member_blocks(path, MEMBER, URL))


def test_a_file_that_is_no_zip_is_refused(tmp_path):
    path = tmp_path / "day.zip"
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(ArchiveIntegrityError, match="corrupt zip"):
        parse_member(path, MEMBER, URL)


def test_a_parse_error_stops_the_unzip_worker(tmp_path):
    """A malformed first line fails the parse; the worker thread is stopped, not leaked."""
    payload = b"not,a,trade\n" + REAL * 50
    with pytest.raises(ArchiveFormatError, match=r"\bline 1\b"):
        parse_member(zip_file(tmp_path, payload), MEMBER, URL, piece=64)
    assert not [thread for thread in threading.enumerate() if thread.name == "unzip"]


def test_a_member_inflating_past_its_declared_size_is_stopped_early(tmp_path, monkeypatch):
    """A zip bomb: 64 MB of one byte in a few KB, declared as 1,000 bytes."""
    monkeypatch.setattr(archive_module, "_PIECE", 1 << 20)
    path = zip_file(tmp_path, b"1" * (64 << 20))
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (1000).to_bytes(4, "little")  # uncompressed size
    path.write_bytes(bytes(raw))
    blocks = member_blocks(path, MEMBER, URL)
    with pytest.raises(ArchiveIntegrityError, match="inflates past the 1000 bytes"):
        next(blocks)
