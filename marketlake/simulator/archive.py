"""The data.binance.vision side: daily trade zips and their CHECKSUM sidecars, cached on disk.

A zip is built once per (symbol, date, seed, trades_per_day, fault variant) and then served
from disk in chunks, so a 300 MB file costs one build and no per-request memory. Builds
stream the CSV hour by hour into the zip; two requests for the same file wait for one build.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from marketlake.simulator import archive_csv, data
from marketlake.simulator.faults import ArchiveVariant, Faults, Key, Stats

ARCHIVE_PREFIX: Final = "/data/spot/daily/trades/"
_PATH: Final = re.compile(
    r"^/data/spot/daily/trades/(?P<dir>[A-Z0-9]{2,20})/"
    r"(?P<symbol>[A-Z0-9]{2,20})-trades-(?P<date>\d{4}-\d{2}-\d{2})\.zip(?P<checksum>\.CHECKSUM)?$"
)
#: Part of every cached file name: bump it when the generator or the file layout changes, so
#: a persistent `cache_dir` never serves zips of an older universe.
FORMAT_VERSION: Final = 1
#: zlib level: 1 builds ~3x faster than the default 6 for ~15 % larger files; the bytes
#: are still a standard deflate zip that any reader opens.
COMPRESS_LEVEL: Final = 1
#: A corrupt zip keeps this fraction of the real bytes (the central directory is lost).
_CORRUPT_KEEP: Final = 0.6
_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class ArchiveRequest:
    symbol: str
    date: dt.date
    checksum: bool

    @property
    def key(self) -> Key:
        return (self.symbol, self.date)

    @property
    def zip_name(self) -> str:
        return f"{self.symbol}-trades-{self.date.isoformat()}.zip"


def parse_archive_path(path: str) -> ArchiveRequest | None:
    """The (symbol, date, is-CHECKSUM) an archive URL path names, or None if malformed."""
    match = _PATH.match(path)
    if match is None or match["dir"] != match["symbol"]:
        return None
    try:
        date = dt.date.fromisoformat(match["date"])
    except ValueError:
        return None
    return ArchiveRequest(match["symbol"], date, bool(match["checksum"]))


@dataclass(frozen=True)
class ArchiveFile:
    """A built zip on disk and the sidecar text to serve beside it."""

    path: Path
    size: int
    checksum_text: str


class ArchiveStore:
    """Builds and caches the zips under `cache_dir`."""

    def __init__(self, cache_dir: Path, config: data.SimConfig, stats: Stats | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.config = config
        self.stats = stats or Stats()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def get(self, symbol: str, date: dt.date, faults: Faults) -> ArchiveFile:
        """The file for (symbol, date) as `faults` currently shape it, building it if needed."""
        key = (symbol, date)
        variant = faults.archive_variant(key)
        cfg = self.config
        stem = (
            f"{symbol}-trades-{date.isoformat()}-v{FORMAT_VERSION}-s{cfg.seed}"
            f"-n{cfg.trades_per_day}-{Faults.variant_tag(variant)}"
        )
        path = self.cache_dir / f"{stem}.zip"
        with self._lock_for(stem):
            if not path.exists():
                self._build(symbol, date, variant, path)
        sha = (self.cache_dir / f"{stem}.sha256").read_text()
        zip_name = f"{symbol}-trades-{date.isoformat()}.zip"
        if key in faults.wrong_checksum:
            sha = hashlib.sha256(b"not the zip " + sha.encode()).hexdigest()
        return ArchiveFile(path, path.stat().st_size, f"{sha}  {zip_name}")

    def _lock_for(self, stem: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(stem, threading.Lock())

    def _build(
        self,
        symbol: str,
        date: dt.date,
        variant: ArchiveVariant,
        path: Path,
    ) -> None:
        tmp = path.with_suffix(f".tmp{threading.get_ident()}")
        write_zip(
            tmp,
            symbol,
            date,
            self.config,
            gaps=variant.gaps,
            truncate=variant.truncated,
            repeat=variant.repeated,
        )
        if variant.corrupt:
            _truncate_file(tmp, int(tmp.stat().st_size * _CORRUPT_KEEP))
        # The sidecar lands first, so an existing zip always has its checksum beside it.
        sha_tmp = tmp.with_suffix(".sha256tmp")
        sha_tmp.write_text(file_sha256(tmp))
        os.replace(sha_tmp, path.with_suffix(".sha256"))
        os.replace(tmp, path)
        self.stats.add_build()


def write_zip(
    target: Path,
    symbol: str,
    date: dt.date,
    config: data.SimConfig,
    *,
    gaps: tuple[tuple[int, int], ...] = (),
    truncate: bool = False,
    repeat: bool = False,
) -> None:
    """Write `{SYMBOL}-trades-{DATE}.zip` holding the day's CSV, streamed hour by hour."""
    member = f"{symbol}-trades-{date.isoformat()}.csv"
    # Zip64 only where a plain zip could overflow (~80 bytes a row): real dailies are plain.
    zip64 = config.trades_per_day * 90 > 0x7FFF_FFFF
    info = zipfile.ZipInfo(member, date_time=(date.year, date.month, date.day, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    # `_compresslevel` is the spelling 3.11 reads (3.13 keeps it as an alias); a fixed
    # date_time keeps the bytes, hence the checksum, identical across builds.
    info._compresslevel = COMPRESS_LEVEL
    info.external_attr = 0o644 << 16
    with (
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open(info, "w", force_zip64=zip64) as out,
    ):
        for chunk in archive_csv.iter_archive_csv(
            symbol, date, config, gaps=gaps, truncate=truncate, repeat=repeat
        ):
            out.write(chunk)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _truncate_file(path: Path, size: int) -> None:
    with path.open("r+b") as handle:
        handle.truncate(size)
