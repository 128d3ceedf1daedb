"""Binance wire formats (archive CSV, REST JSON, CHECKSUM sidecars) into Polars frames.

Every trades parser returns exactly `marketlake.schemas.RAW_TRADES` so the archive and REST
paths land identical rows. Prices arrive as decimal strings; they are parsed once, in bulk,
by Polars (correctly rounded, so `"92792.05000000"` becomes the same float as Python's
`float("92792.05")`). Timestamps are stored as Datetime("us", "UTC") without rounding: the
archive switched from milliseconds to microseconds on 2025-01-01, so the unit is read from
the numbers themselves, never from the date.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, Literal

import orjson
import polars as pl

from marketlake.exchanges.errors import ArchiveFormatError, ResponseFormatError
from marketlake.schemas import RAW_TRADES, UTC_US

TimeUnit = Literal["ms", "us"]

#: The spot trades archive CSV: no header, seven columns, `True`/`False` booleans.
TRADES_CSV_SCHEMA: Final = pl.Schema(
    {
        "trade_id": pl.Int64,
        "price": pl.Float64,
        "qty": pl.Float64,
        "quote_qty": pl.Float64,
        "time": pl.Int64,
        "is_buyer_maker": pl.Boolean,
        "is_best_match": pl.Boolean,
    }
)

#: aggTrades as `parse_agg_trades` returns them.
AGG_TRADES: Final = pl.Schema(
    {
        "agg_id": pl.Int64,
        "price": pl.Float64,
        "qty": pl.Float64,
        "first_trade_id": pl.Int64,
        "last_trade_id": pl.Int64,
        "ts": UTC_US,
        "is_buyer_maker": pl.Boolean,
    }
)

# Epoch magnitudes: 13-digit milliseconds and 16-digit microseconds both cover 1973..5138,
# and the two ranges don't overlap, so one min/max tells the unit of a whole column.
_MS_MIN: Final = 10**11
_US_MIN: Final = 10**14
_US_MAX: Final = 10**17

_SHA256_HEX: Final = re.compile(r"^[0-9a-fA-F]{64}$")
_POLARS_OFFSET: Final = re.compile(r"offset in the file is (\d+) bytes")


# --- archive CSV -----------------------------------------------------------------------------


def parse_trades_csv(source: str | Path | bytes, *, name: str | None = None) -> pl.DataFrame:
    """Parse a spot daily trades archive CSV into `RAW_TRADES`.

    `source` is a path (str or Path) or the CSV's bytes; `name` only labels error messages.
    Raises `ArchiveFormatError` (a ValueError) naming the file and line for a wrong column
    count, a non-numeric field, a truncated line, or a time column mixing ms and µs.
    """
    return parse_trades_csv_with_unit(source, name=name)[0]


def parse_trades_csv_with_unit(
    source: str | Path | bytes, *, name: str | None = None
) -> tuple[pl.DataFrame, TimeUnit | None]:
    """`parse_trades_csv`, also returning the detected time unit (None for an empty file)."""
    label = name or (f"<{len(source)} bytes>" if isinstance(source, bytes) else str(source))
    if _is_empty(source):
        return RAW_TRADES.to_frame(), None
    data: Path | io.BytesIO = io.BytesIO(source) if isinstance(source, bytes) else Path(source)
    try:
        frame = pl.read_csv(data, has_header=False, schema=TRADES_CSV_SCHEMA)
    except pl.exceptions.PolarsError as exc:
        raise _format_error_from_polars(source, label, exc) from exc
    return _raw_trades(frame, label)


def parse_trades_csv_chunks(
    chunks: Iterable[bytes], *, name: str
) -> tuple[pl.DataFrame, TimeUnit | None]:
    """`parse_trades_csv_with_unit` over a CSV that arrives in pieces (while it is unzipped).

    Each piece ends at a line end (the last may end mid-line) and none but the first starts
    with a blank line, so each parses on its own, as it arrives, exactly as its lines would
    inside the whole file; errors name the line of the whole file. No pieces (a CSV of no
    bytes) parse as no trades.
    """
    frames = []
    first_line = 1  # a line is a row, as in the whole file: the parser keeps blank lines
    for chunk in chunks:
        if not chunk:
            continue
        try:
            frame = pl.read_csv(chunk, has_header=False, schema=TRADES_CSV_SCHEMA)
        except pl.exceptions.PolarsError as exc:
            raise _format_error_from_polars(chunk, name, exc, first_line) from exc
        frames.append(frame)
        first_line += frame.height
    if not frames:
        return RAW_TRADES.to_frame(), None
    return _raw_trades(pl.concat(frames, rechunk=True), name)


def _raw_trades(frame: pl.DataFrame, label: str) -> tuple[pl.DataFrame, TimeUnit | None]:
    """The parsed CSV columns as `RAW_TRADES`, after refusing nulls and mixed time units."""
    _refuse_nulls(frame, label)
    unit = detect_time_unit(frame.get_column("time"), name=label)
    scale = 1000 if unit == "ms" else 1
    trades = frame.select(
        "trade_id",
        "price",
        "qty",
        "quote_qty",
        (pl.col("time") * scale).cast(UTC_US).alias("ts"),
        "is_buyer_maker",
    )
    return trades, unit


def detect_time_unit(times: pl.Series, *, name: str = "<data>") -> TimeUnit | None:
    """Tell epoch milliseconds from microseconds by magnitude; refuse a column mixing them.

    Only min and max are computed on the happy path; the offending line is located only
    when the check fails.
    """
    if times.len() == 0:
        return None
    lo, hi = int(times.min()), int(times.max())  # type: ignore[arg-type]  # Int64, no nulls
    if lo >= _MS_MIN and hi < _US_MIN:
        return "ms"
    if lo >= _US_MIN and hi < _US_MAX:
        return "us"
    unit = pl.when(pl.col("t") < _MS_MIN).then(pl.lit("?"))
    unit = unit.when(pl.col("t") < _US_MIN).then(pl.lit("ms"))
    unit = unit.when(pl.col("t") < _US_MAX).then(pl.lit("us")).otherwise(pl.lit("?"))
    units = pl.DataFrame({"t": times}).with_row_index("row").with_columns(unit=unit)
    first = units.row(0, named=True)
    if first["unit"] == "?":
        odd = first
    else:
        odd = units.filter(pl.col("unit") != first["unit"]).row(0, named=True)
    if first["unit"] != "?" and odd["unit"] != "?":
        raise ArchiveFormatError(
            f"{name}: time column mixes units: line 1 is {first['unit']} ({first['t']}) but "
            f"line {odd['row'] + 1} is {odd['unit']} ({odd['t']})"
        )
    raise ArchiveFormatError(
        f"{name}: line {odd['row'] + 1}: time {odd['t']} is neither epoch milliseconds "
        "(13 digits) nor microseconds (16 digits)"
    )


def _is_empty(source: str | Path | bytes) -> bool:
    if isinstance(source, bytes):
        return not source.strip()
    path = Path(source)
    if not path.is_file():
        raise ArchiveFormatError(f"{path}: no such file")
    return path.stat().st_size == 0


def _refuse_nulls(frame: pl.DataFrame, label: str) -> None:
    """Polars fills missing trailing fields with nulls; a complete trade has none."""
    if not frame.null_count().sum_horizontal().item():
        return
    row = (
        frame.with_row_index("row")
        .filter(pl.any_horizontal(pl.exclude("row").is_null()))
        .row(0, named=True)
    )
    missing = [column for column, value in row.items() if value is None]
    where = "last line" if row["row"] == frame.height - 1 else "line"
    raise ArchiveFormatError(
        f"{label}: {where} {row['row'] + 1} is incomplete (truncated or missing fields: "
        f"{', '.join(missing)}); expected {len(TRADES_CSV_SCHEMA)} fields "
        f"{','.join(TRADES_CSV_SCHEMA)}"
    )


def _format_error_from_polars(
    source: str | Path | bytes, label: str, exc: Exception, first_line: int = 1
) -> ArchiveFormatError:
    """Turn Polars' parse error into one that names the line.

    Polars reports the byte offset of the chunk it was parsing, not the line; the file is
    scanned from that offset (the error path only) to find the first line that doesn't fit.
    `first_line` is the number of `source`'s first line in the whole file.
    """
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    match = _POLARS_OFFSET.search(str(exc))
    offset = int(match.group(1)) if match else 0
    found = _first_bad_line(source, offset) or (_first_bad_line(source, 0) if offset else None)
    if found is None:
        return ArchiveFormatError(f"{label}: malformed trades CSV: {detail}")
    line_no, reason = found
    return ArchiveFormatError(f"{label}: line {line_no + first_line - 1}: {reason} ({detail})")


def _iter_lines(source: str | Path | bytes) -> Iterator[bytes]:
    if isinstance(source, bytes):
        yield from io.BytesIO(source)
    else:
        with open(source, "rb") as handle:
            yield from handle


def _first_bad_line(source: str | Path | bytes, from_offset: int) -> tuple[int, str] | None:
    position = 0
    for line_no, raw in enumerate(_iter_lines(source), start=1):
        position += len(raw)
        if position <= from_offset:
            continue
        reason = _line_problem(raw.rstrip(b"\r\n"))
        if reason:
            return line_no, reason
    return None


def _line_problem(line: bytes) -> str | None:
    fields = line.split(b",")
    if len(fields) != len(TRADES_CSV_SCHEMA):
        return f"expected {len(TRADES_CSV_SCHEMA)} fields, found {len(fields)}: {line[:120]!r}"
    for (column, dtype), field in zip(TRADES_CSV_SCHEMA.items(), fields, strict=True):
        try:
            if dtype == pl.Boolean:
                if field.strip().lower() not in (b"true", b"false"):
                    raise ValueError
            elif dtype == pl.Int64:
                int(field)
            else:
                float(field)
        except ValueError:
            return f"{column} is not a {dtype}: {field[:40]!r}"
    return None


# --- REST JSON -------------------------------------------------------------------------------

_REST_TRADE_FIELDS: Final = {
    "id": pl.Int64,
    "price": pl.String,
    "qty": pl.String,
    "quoteQty": pl.String,
    "time": pl.Int64,
    "isBuyerMaker": pl.Boolean,
}

_AGG_TRADE_FIELDS: Final = {
    "a": pl.Int64,
    "p": pl.String,
    "q": pl.String,
    "f": pl.Int64,
    "l": pl.Int64,
    "T": pl.Int64,
    "m": pl.Boolean,
}


def parse_rest_trades(body: bytes | str) -> pl.DataFrame:
    """Parse /api/v3/trades or /api/v3/historicalTrades JSON (time in ms) into `RAW_TRADES`."""
    frame = _frame_of_objects(body, _REST_TRADE_FIELDS, what="trades")
    return _select(
        frame,
        "trades",
        pl.col("id").alias("trade_id"),
        _decimal("price"),
        _decimal("qty"),
        _decimal("quoteQty").alias("quote_qty"),
        (pl.col("time") * 1000).cast(UTC_US).alias("ts"),
        pl.col("isBuyerMaker").alias("is_buyer_maker"),
    )


def parse_agg_trades(body: bytes | str) -> pl.DataFrame:
    """Parse /api/v3/aggTrades JSON (`a,p,q,f,l,T,m,M`, time in ms) into `AGG_TRADES`."""
    frame = _frame_of_objects(body, _AGG_TRADE_FIELDS, what="aggTrades")
    return _select(
        frame,
        "aggTrades",
        pl.col("a").alias("agg_id"),
        _decimal("p").alias("price"),
        _decimal("q").alias("qty"),
        pl.col("f").alias("first_trade_id"),
        pl.col("l").alias("last_trade_id"),
        (pl.col("T") * 1000).cast(UTC_US).alias("ts"),
        pl.col("m").alias("is_buyer_maker"),
    )


def parse_exchange_info(body: bytes | str) -> dict[str, dict[str, Any]]:
    """Map each symbol of /api/v3/exchangeInfo to its full entry (status, baseAsset, ...).

    The entry is kept whole (filters, permissions, ...) because which fields matter
    differs by caller and Binance adds fields over time.
    """
    document = _loads(body, "exchangeInfo")
    if not isinstance(document, dict) or not isinstance(document.get("symbols"), list):
        raise ResponseFormatError(
            f"exchangeInfo: expected an object with a 'symbols' list, got {_preview(document)}"
        )
    symbols: dict[str, dict[str, Any]] = {}
    for entry in document["symbols"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("symbol"), str):
            raise ResponseFormatError(f"exchangeInfo: symbol entry without 'symbol': {entry!r}")
        symbols[entry["symbol"]] = entry
    return symbols


def parse_checksum(text: str | bytes) -> tuple[str, str]:
    """Parse a `.CHECKSUM` sidecar, `<sha256 hex>  <filename>`, into (hex lowercase, name).

    Tolerates the trailing newline the real files don't have and sha256sum's `*` binary
    marker, so a re-generated sidecar reads the same.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ResponseFormatError(f"CHECKSUM is not ASCII text: {text[:100]!r}") from exc
    parts = text.strip().split(maxsplit=1)
    if len(parts) != 2 or not _SHA256_HEX.fullmatch(parts[0]):
        raise ResponseFormatError(
            f"CHECKSUM: expected '<64 hex digits>  <filename>', got {text[:200]!r}"
        )
    digest, filename = parts
    return digest.lower(), filename.strip().lstrip("*")


def _decimal(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Float64, strict=True)


def _loads(body: bytes | str, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ResponseFormatError(f"{what}: response is not JSON ({exc}): {body[:200]!r}") from exc


def _frame_of_objects(body: bytes | str, fields: dict[str, Any], *, what: str) -> pl.DataFrame:
    """A list of JSON objects into a frame of exactly `fields`; refuse anything missing."""
    rows = _loads(body, what)
    if not isinstance(rows, list):
        raise ResponseFormatError(f"{what}: expected a JSON list, got {_preview(rows)}")
    if not rows:
        return pl.Schema(fields).to_frame()
    try:
        frame = pl.from_dicts(rows, schema=fields)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise ResponseFormatError(f"{what}: unexpected field values: {exc}") from exc
    if frame.null_count().sum_horizontal().item():
        row = frame.with_row_index("row").filter(pl.any_horizontal(pl.exclude("row").is_null()))
        first = row.row(0, named=True)
        missing = [k for k, v in first.items() if v is None]
        raise ResponseFormatError(
            f"{what}: object {first['row']} lacks {', '.join(missing)}: {rows[first['row']]!r}"
        )
    return frame


def _select(frame: pl.DataFrame, what: str, *exprs: pl.Expr) -> pl.DataFrame:
    """Select with casts; a decimal string that isn't a number becomes a format error."""
    try:
        return frame.select(*exprs)
    except pl.exceptions.InvalidOperationError as exc:
        raise ResponseFormatError(f"{what}: non-numeric value: {exc}") from exc


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


__all__ = [
    "AGG_TRADES",
    "TRADES_CSV_SCHEMA",
    "TimeUnit",
    "detect_time_unit",
    "parse_agg_trades",
    "parse_checksum",
    "parse_exchange_info",
    "parse_rest_trades",
    "parse_trades_csv",
    "parse_trades_csv_chunks",
    "parse_trades_csv_with_unit",
]
