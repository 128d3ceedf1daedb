"""The data.binance.vision daily trades archive: download, verify, then parse.

The order of the steps is the point: the zip is streamed to a temporary file while it is
hashed (one pass, never the whole zip in memory) and compared with its `.CHECKSUM` *before*
anything is parsed. Only then is it inflated (by ISA-L, CRC-32 checked), on a worker
thread, in pieces cut at line ends whose lines are counted on the way (an independent count
for the row-count check); each piece is parsed as it arrives while the next is inflated, so
the CSV is never written out or held whole, and inflating (one core) and parsing (the
others) overlap. A corrupt
zip (bad CRC, truncated stream) outranks a parse error it may have caused. Temporary files
are removed whatever happens. A 404 is its own outcome, `ArchiveNotPublished`, because a day
that isn't published yet is normal (today, yesterday morning) and the caller falls back to
REST; every other failure raises a subclass of `ArchiveError` naming the URL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import queue
import re
import struct
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
import polars as pl
from isal import isal_zlib

from marketlake.exchanges.binance.parsing import (
    TimeUnit,
    parse_checksum,
    parse_trades_csv_chunks,
)
from marketlake.exchanges.binance.ratelimit import backoff_delay
from marketlake.exchanges.errors import (
    ArchiveChecksumError,
    ArchiveDownloadError,
    ArchiveError,
    ArchiveFormatError,
    ArchiveIntegrityError,
    ArchiveNotPublished,
    ResponseFormatError,
)
from marketlake.exchanges.waits import (
    TransferDeadline,
    TransferTooSlow,
    WaitNotice,
    log_wait,
    read_within,
    retry_after,
)
from marketlake.schemas import normalize_symbol

ARCHIVE_URL: Final = "https://data.binance.vision"
_CHUNK: Final = 1 << 20
#: Inflated bytes per parsed piece: big enough for Polars' parallel parse, small enough that
#: the two pieces in flight cost little memory.
_PIECE: Final = 8 << 20

T = TypeVar("T")


@dataclass(frozen=True)
class ArchiveLimits:
    """How big a day's CSV may be before it is refused as no real day: bounds on memory and time.

    Derived from real archives (tests/data/real/binance_vision, PROVENANCE.md):

    - **Line length.** The real rows are 74 to 78 bytes (BTCUSDT 2024-12-31 in ms, 2025-01-01
      in µs). The widest row the format allows is about 115 bytes: a 19-digit id, three
      decimals of 8 dp at most ~21 characters each, a 16-digit µs time, `False,False` and six
      commas. `max_line_bytes` = 1 KiB is 13x the longest real row and 9x the widest possible.
      It bounds how far the cutter reads without finding a line end, which is what a file
      with no newlines turns into memory and time.
    - **Inflated size.** BTCUSDT, the busiest spot pair, holds 3,347,847 trades on
      2024-12-31 (official row count). Its ids ran from 1,111,468,873 (2021-10-22, a REST
      capture) to 4,356,587,539 (2024-12-31): 2.8M trades a day on average, most of them in
      the zero-fee months (July 2022 to March 2023, roughly 7M a day), so the busiest real
      days are estimated at up to ~40M trades, ~3.1 GB at 78 bytes a line.
      `max_inflated_bytes` = 8 GiB (~100M such lines) leaves a 2.5x margin over that.
    - **Compression ratio.** Real rows deflate about 6.7:1 (the samples at zlib level 6; the
      simulator's 3.5:1); a day of one repeated line deflates 300:1 and more, which is how
      an 8.8 MB download becomes 2.6 GB. `max_inflate_ratio` = 40 is 6x the real ratio. It
      applies only to members declaring more than `ratio_floor` bytes (64 MiB, a fifth of a
      normal BTCUSDT day): smaller ones cost little whatever their ratio.

    The zip's header is checked against these before anything is inflated (an honest bomb
    fails at once); a header that lies is caught when inflating passes what it declared.
    """

    max_inflated_bytes: int = 8 << 30
    max_line_bytes: int = 1 << 10
    max_inflate_ratio: float = 40.0
    ratio_floor: int = 64 << 20


#: One attempt at a zip: the busiest real days zip to a few hundred MB (see `ArchiveLimits`),
#: which 30 minutes carries at 0.4 MB/s; a download averaging under 64 KB/s after its first
#: 30 s (a server dripping bytes) is given up long before that.
ARCHIVE_DEADLINE: Final = TransferDeadline(total_s=1800.0, min_bytes_per_s=64_000, rate_grace_s=30)


class _Retryable(Exception):
    """A failure worth another attempt (5xx, 429, connection error, timeout, too slow)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ArchiveDay:
    """One verified, parsed archive day.

    `line_count` is the number of lines in the CSV, counted while unzipping and without the
    parser, so `trades.height == line_count` is a real check that no row was lost.
    """

    symbol: str
    date: dt.date
    trades: pl.DataFrame
    line_count: int
    bytes_downloaded: int
    sha256: str
    url: str
    unit: TimeUnit | None

    @property
    def first_id(self) -> int | None:
        return self.trades.item(0, "trade_id") if self.trades.height else None

    @property
    def last_id(self) -> int | None:
        return self.trades.item(-1, "trade_id") if self.trades.height else None


class BinanceArchive:
    """Client of the public spot daily trades archive. Constructing it does no I/O.

    Every wait is bounded and announced: `timeout` per network operation (a hung server),
    `deadline` per response (a dripping one), `max_wait_s` for a `Retry-After` (longer is
    given up at once, not slept); `on_wait` is told before each retry what is waited for.
    """

    def __init__(
        self,
        base_url: str = ARCHIVE_URL,
        *,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 10.0,
        limits: ArchiveLimits = ArchiveLimits(),
        deadline: TransferDeadline = ARCHIVE_DEADLINE,
        max_wait_s: float = 300.0,
        on_wait: WaitNotice = log_wait,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limits = limits
        self.timeout = timeout
        self.deadline = deadline
        self.max_wait_s = max_wait_s
        self.on_wait = on_wait
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=True)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> BinanceArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def file_name(symbol: str, date: dt.date) -> str:
        """`BTCUSDT-trades-2024-12-31.zip` (the CSV member is the same name with `.csv`)."""
        return f"{normalize_symbol(symbol)}-trades-{date.isoformat()}.zip"

    def url_for(self, symbol: str, date: dt.date) -> str:
        symbol = normalize_symbol(symbol)
        return f"{self.base_url}/data/spot/daily/trades/{symbol}/{self.file_name(symbol, date)}"

    def fetch_checksum(self, symbol: str, date: dt.date) -> tuple[str, str]:
        """(sha256 hex, file name) from the day's `.CHECKSUM` sidecar."""
        url = self.url_for(symbol, date) + ".CHECKSUM"
        body = self._with_retries(url, lambda: self._get_small(url))
        try:
            return parse_checksum(body)
        except ResponseFormatError as exc:
            raise ArchiveChecksumError(f"{url}: unreadable CHECKSUM: {exc}") from exc

    def fetch_day(self, symbol: str, date: dt.date, workdir: Path | None = None) -> ArchiveDay:
        """Download, verify and parse one day; trades sorted by trade_id.

        Raises `ArchiveNotPublished` (404), `ArchiveChecksumError`, `ArchiveIntegrityError`,
        `ArchiveFormatError` or `ArchiveDownloadError`; never returns unverified rows.
        `workdir` is where the temporary zip goes (the system temp dir by default).
        """
        symbol = normalize_symbol(symbol)
        url = self.url_for(symbol, date)
        zip_name = self.file_name(symbol, date)
        expected, named = self.fetch_checksum(symbol, date)
        if named != zip_name:
            raise ArchiveChecksumError(f"{url}: CHECKSUM names {named!r}, expected {zip_name!r}")
        with tempfile.TemporaryDirectory(prefix="marketlake-archive-", dir=workdir) as tmp:
            zip_path = Path(tmp) / zip_name
            size, digest = self._with_retries(url, lambda: self._download(url, zip_path))
            if digest != expected:
                raise ArchiveChecksumError(
                    f"{url}: sha256 of the download is {digest}, CHECKSUM says {expected} "
                    f"({size} bytes); {symbol} {date} not parsed"
                )
            member = zip_name.removesuffix(".zip") + ".csv"
            trades, unit, line_count = parse_member(zip_path, member, url, limits=self.limits)
        if trades.height and not trades.get_column("trade_id").is_sorted():
            trades = trades.sort("trade_id")
        return ArchiveDay(symbol, date, trades, line_count, size, digest, url, unit)

    # --- transport -----------------------------------------------------------------------------

    def _get_small(self, url: str) -> bytes:
        return b"".join(self._stream(url))

    def _download(self, url: str, dest: Path) -> tuple[int, str]:
        """Stream `url` into `dest`, hashing on the way; (bytes, sha256 hex)."""
        digest = hashlib.sha256()
        size = 0
        with open(dest, "wb") as out:
            for chunk in self._stream(url):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def _stream(self, url: str) -> Iterator[bytes]:
        """The body of `url` as it arrives, within `timeout` per read and `deadline` in all."""
        started = time.monotonic()
        try:
            with self._client.stream("GET", url) as response:
                _check_status(url, response)
                yield from read_within(response, self.deadline, started)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"no answer within {self.timeout:g} s ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        except TransferTooSlow as exc:
            raise _Retryable(f"too slow: {exc}") from exc

    def _with_retries(self, url: str, attempt_once: Callable[[], T]) -> T:
        problem = ""
        for attempt in range(self.retries + 1):
            try:
                return attempt_once()
            except _Retryable as exc:
                problem = str(exc)
                if attempt == self.retries:
                    break
                delay = backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap)
                if exc.retry_after is not None:
                    if exc.retry_after > self.max_wait_s:
                        raise ArchiveDownloadError(
                            f"{url}: {problem}; the server asks to wait {exc.retry_after:,.0f} s "
                            f"(Retry-After), more than max_wait_s {self.max_wait_s:g} s: "
                            "giving up"
                        ) from None
                    delay = max(delay, exc.retry_after)
                self.on_wait(
                    f"{url}: {problem}; retry {attempt + 1} of {self.retries} in {delay:.1f} s"
                )
                time.sleep(delay)
        raise ArchiveDownloadError(f"{url}: failed after {self.retries} retries: {problem}")


def _check_status(url: str, response: httpx.Response) -> None:
    status = response.status_code
    if status == 200:
        return
    if status == 404:
        raise ArchiveNotPublished(f"{url}: not published (HTTP 404)")
    if status >= 500 or status == 429:
        raise _Retryable(f"HTTP {status}", retry_after(response))
    raise ArchiveDownloadError(f"{url}: unexpected HTTP {status}")


def parse_member(
    zip_path: Path,
    member: str,
    url: str,
    piece: int = _PIECE,
    *,
    limits: ArchiveLimits = ArchiveLimits(),
) -> tuple[pl.DataFrame, TimeUnit | None, int]:
    """Unzip `member` on a worker thread while parsing it here; (trades, unit, line count)."""
    label = f"{url} ({member})"
    inflater = _Inflater(zip_path, member, url, piece, limits)
    try:
        trades, unit = parse_trades_csv_chunks(inflater.pieces(), name=label)
    except ArchiveFormatError:
        inflater.finish()  # a corrupt zip explains a malformed CSV: report that instead
        raise
    except (pl.exceptions.PolarsError, OSError) as exc:
        inflater.finish()
        raise ArchiveFormatError(f"{label}: unreadable CSV: {exc}") from exc
    finally:
        inflater.close()
    return trades, unit, inflater.line_count


_DONE: Final = object()
#: Compressed bytes read per step; each inflates to roughly four times as much CSV.
_READ: Final = 1 << 20
_LOCAL_HEADER: Final = struct.Struct("<4s22xHH")  # signature .. name length, extra length


def member_blocks(
    zip_path: Path, member: str, url: str, limits: ArchiveLimits = ArchiveLimits()
) -> Iterator[bytes]:
    """The inflated bytes of `member`, block by block, verified against the zip's CRC-32.

    The deflate stream is inflated by ISA-L (`isal`), 2.4x faster than zlib on this data
    (0.35 s instead of 0.86 s for a 5M-trade day, single-threaded), with the checks zipfile
    makes: the member exists, is stored or deflated and not encrypted, its stream ends, and
    its size and CRC-32 match the central directory. Any mismatch raises
    `ArchiveIntegrityError` once the block that shows it is reached; blocks are at most
    `_PIECE` bytes, and inflating past the declared size stops at once (a zip bomb). A
    member declaring more than `limits` allow (size or compression ratio) is refused before
    a byte is inflated.
    """
    with zipfile.ZipFile(zip_path) as archive:
        try:
            info = archive.getinfo(member)
        except KeyError:
            names = ", ".join(archive.namelist()[:5]) or "none"
            raise ArchiveIntegrityError(
                f"{url}: zip has no member {member!r} (members: {names})"
            ) from None
    if info.flag_bits & 0x1:
        raise ArchiveIntegrityError(f"{url}: {member} is encrypted")
    if info.compress_type not in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
        raise ArchiveIntegrityError(
            f"{url}: {member} uses zip compression method {info.compress_type}, "
            "expected deflate or stored"
        )
    _check_declared_size(info, member, url, limits)
    inflater = isal_zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    crc = size = 0
    with open(zip_path, "rb") as source:
        source.seek(info.header_offset)
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(
            source.read(_LOCAL_HEADER.size).ljust(_LOCAL_HEADER.size, b"\0")
        )
        if signature != b"PK\x03\x04":
            raise ArchiveIntegrityError(f"{url}: corrupt zip: bad local header for {member}")
        source.seek(name_length + extra_length, 1)
        left = info.compress_size
        while left:
            raw = source.read(min(_READ, left))
            if not raw:
                raise ArchiveIntegrityError(f"{url}: corrupt zip: {member} is cut short")
            left -= len(raw)
            for block in _inflate(inflater, raw, member, url) if inflater else (raw,):
                crc = isal_zlib.crc32(block, crc)
                size += len(block)
                if size > info.file_size:  # a zip bomb or a lying header: stop here
                    raise ArchiveIntegrityError(
                        f"{url}: corrupt zip: {member} inflates past the {info.file_size} "
                        "bytes the zip says it holds"
                    )
                yield block
    if inflater is not None and not inflater.eof:
        raise ArchiveIntegrityError(f"{url}: corrupt zip: {member}'s deflate stream is cut short")
    if size != info.file_size:
        raise ArchiveIntegrityError(
            f"{url}: corrupt zip: {member} inflates to {size} bytes, the zip says {info.file_size}"
        )
    if crc != info.CRC:
        raise ArchiveIntegrityError(
            f"{url}: corrupt zip: bad CRC-32 for {member} ({crc:08x}, the zip says {info.CRC:08x})"
        )


def _check_declared_size(
    info: zipfile.ZipInfo, member: str, url: str, limits: ArchiveLimits
) -> None:
    if info.file_size > limits.max_inflated_bytes:
        raise ArchiveIntegrityError(
            f"{url}: {member} declares {info.file_size:,} bytes inflated, more than the "
            f"{limits.max_inflated_bytes:,} bytes (max_inflated_bytes) a real day can hold; "
            "not inflated"
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limits.ratio_floor and ratio > limits.max_inflate_ratio:
        raise ArchiveIntegrityError(
            f"{url}: {member} declares {info.file_size:,} bytes from {info.compress_size:,} "
            f"compressed, a ratio of {ratio:,.0f}:1 where real trades deflate about 7:1 "
            f"(max_inflate_ratio {limits.max_inflate_ratio:g}): a zip bomb; not inflated"
        )


def _inflate(inflater: Any, raw: bytes, member: str, url: str) -> Iterator[bytes]:
    """Inflate `raw` in blocks of at most `_PIECE` bytes, so no input can balloon in memory."""
    pending = raw
    try:
        while True:
            block = inflater.decompress(pending, _PIECE)
            pending = inflater.unconsumed_tail
            if block:
                yield block
            if not pending and len(block) < _PIECE:
                return
    except isal_zlib.error as exc:
        raise ArchiveIntegrityError(f"{url}: corrupt zip: {member}: {exc}") from exc


def line_pieces(
    blocks: Iterable[bytes],
    size: int = _PIECE,
    max_line: int | None = None,
    name: str = "<data>",
) -> Iterator[bytes]:
    """Re-cut `blocks` into pieces of at least `size` bytes that end at a line end.

    See `LineCutter`; `max_line` (None: no limit) bounds the bytes read without a line end.
    """
    return LineCutter(size, max_line, name).pieces(blocks)


class LineCutter:
    """Cuts inflated blocks into pieces that end at a line end, in time linear in the bytes.

    The pieces join up to exactly the blocks' bytes. Each is held back until the next is
    cut, so the file's last line (maybe without its newline) and blank lines at a cut stay
    with the lines before them: no piece but the first starts with a blank line, and every
    piece parses exactly as the same lines inside the whole file would.

    Blocks are kept as they come and joined once, at a cut; only the newest block is
    searched for a newline, so a file without newlines costs one pass, not a re-join of a
    growing buffer per block. `copied` counts the bytes copied, to show it: at most a few
    times the input, whatever the input. A line running past `max_line` bytes without a
    line end raises `ArchiveFormatError` naming `name`, the line and the limit.
    """

    def __init__(self, size: int = _PIECE, max_line: int | None = None, name: str = "<data>"):
        self.size = size
        self.max_line = max_line
        self.name = name
        self.copied = 0
        #: Line ends seen so far (the line count, less a last line without one).
        self.newlines = 0

    def pieces(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        pending: list[bytes | memoryview] = []  # the blocks since the last cut
        pending_size = 0
        last_newline: tuple[int, int] | None = None  # where in pending the last line ends
        open_line = 0  # bytes since the last line end
        held: list[bytes] = []  # the piece cut last, plus blank lines that followed it
        for block in blocks:
            if not block:
                continue
            end = block.rfind(b"\n")
            if end < 0:
                open_line += len(block)
                self._check_line(open_line)
            else:
                self._check_line(open_line + block.find(b"\n"))
                self.newlines += block.count(b"\n")
                open_line = len(block) - end - 1
                self._check_line(open_line)
                last_newline = (len(pending), end)
            pending.append(block)
            pending_size += len(block)
            if pending_size < self.size or last_newline is None:
                continue
            at, end = last_newline
            whole = memoryview(pending[at])
            piece = self._join([*pending[:at], whole[: end + 1]])
            rest = [whole[end + 1 :]] if end + 1 < len(whole) else []
            rest.extend(pending[at + 1 :])
            pending, pending_size, last_newline = rest, pending_size - len(piece), None
            if held and piece.startswith(b"\n"):
                blank = _leading_newlines(piece)
                held.append(piece[:blank])
                piece = piece[blank:]
                self.copied += len(held[-1]) + len(piece)
            if piece:
                if held:
                    yield self._join(held)
                held = [piece]
        tail = self._join([*held, *pending])
        if tail:
            yield tail

    def _join(self, parts: list[bytes | memoryview]) -> bytes:
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]  # a piece cut whole from one block needs no copy
        joined = b"".join(parts)
        self.copied += len(joined)
        return joined

    def _check_line(self, length: int) -> None:
        if self.max_line is not None and length > self.max_line:
            raise ArchiveFormatError(
                f"{self.name}: line {self.newlines + 1} runs past {self.max_line:,} bytes "
                "without a line end (max_line_bytes; real rows are under 120 bytes)"
            )


_NEWLINES: Final = re.compile(rb"\n*")


def _leading_newlines(piece: bytes) -> int:
    match = _NEWLINES.match(piece)
    return match.end() if match else 0


class _Inflater:
    """A zip member's bytes, inflated on a worker thread, as pieces that end at a line end.

    Lines are counted as newlines, plus one for a last line without a newline, on the bytes
    as they are inflated, so the count costs no extra pass and owes nothing to the parser.
    At most two pieces wait in the queue, so memory stays flat whatever the file's size.
    """

    def __init__(
        self,
        zip_path: Path,
        member: str,
        url: str,
        piece: int = _PIECE,
        limits: ArchiveLimits = ArchiveLimits(),
    ) -> None:
        self.line_count = 0
        self._ended = False  # the worker's last word (done or an error) was taken
        self._queue: queue.Queue[object] = queue.Queue(maxsize=2)
        self._cancelled = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(zip_path, member, url, piece, limits),
            name="unzip",
            daemon=True,
        )
        self._thread.start()

    def pieces(self) -> Iterator[bytes]:
        """The pieces in order; raises the worker's `ArchiveIntegrityError` where it failed."""
        while not self._ended:
            item = self._queue.get()
            if item is _DONE or isinstance(item, BaseException):
                self._ended = True
                if item is _DONE:
                    return
                raise item  # type: ignore[misc]
            yield item  # type: ignore[misc]

    def finish(self) -> None:
        """Inflate the rest, unparsed, raising the integrity error that stopped it, if any."""
        for _ in self.pieces():
            pass

    def close(self) -> None:
        """Stop the worker (it gives up putting within 50 ms) and wait for it."""
        self._cancelled.set()
        self._thread.join()

    def _put(self, item: object) -> bool:
        while not self._cancelled.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, zip_path: Path, member: str, url: str, size: int, limits: ArchiveLimits) -> None:
        last = b""
        cutter = LineCutter(size, limits.max_line_bytes, f"{url} ({member})")
        try:
            for piece in cutter.pieces(member_blocks(zip_path, member, url, limits)):
                last = piece[-1:]
                if not self._put(piece):
                    return
            self.line_count = cutter.newlines + (1 if last and last != b"\n" else 0)
            self._put(_DONE)
        except zipfile.BadZipFile as exc:
            self._put(ArchiveIntegrityError(f"{url}: corrupt zip: {exc}"))
        except BaseException as exc:  # surfaces in the caller's thread, never lost here
            self._put(exc)


__all__ = [
    "ARCHIVE_URL",
    "ArchiveChecksumError",
    "ArchiveDay",
    "ArchiveDownloadError",
    "ArchiveError",
    "ArchiveFormatError",
    "ArchiveIntegrityError",
    "ArchiveLimits",
    "ArchiveNotPublished",
    "BinanceArchive",
    "LineCutter",
]
