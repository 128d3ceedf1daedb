"""The one exception the analytics API raises for a question the lake cannot answer."""

from __future__ import annotations


class LakeError(ValueError):
    """An unknown symbol or exchange, a bad date or frequency, a table the lake lacks.

    The message names the value and what the lake does have, so the fix is in the message.
    A `ValueError`, so code that already guards against bad arguments keeps working.
    """
