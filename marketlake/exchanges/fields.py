"""Reading fields out of decoded exchange messages, refusing what is missing or mistyped.

Shared by every exchange's parser so a refused message always carries the same kind of
reason (`missing field 'p'`, `mistyped field 'q': not a decimal number`), which is what
lands in `quarantine`.
"""

from __future__ import annotations


class Refused(ValueError):
    """A field is missing, mistyped or out of range; the message says which."""


def field(data: dict, key: str, kind: type) -> object:
    """`data[key]`, which must be exactly of type `kind` (bool is not an int here)."""
    try:
        value = data[key]
    except KeyError:
        raise Refused(f"missing field {key!r}") from None
    if type(value) is not kind:
        raise Refused(f"mistyped field {key!r}: expected {kind.__name__}")
    return value


def decimal(data: dict, key: str) -> float:
    """A decimal number sent as a string, as both Binance and Coinbase send prices."""
    text = field(data, key, str)
    try:
        return float(text)  # type: ignore[arg-type]
    except ValueError:
        raise Refused(f"mistyped field {key!r}: not a decimal number") from None
