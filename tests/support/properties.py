"""Hypothesis settings, strategies and the record check shared by the parser property tests.

Generated valid messages use the exchanges' own wire forms: decimal strings with 8 places,
ms or µs epoch times.
"""

from __future__ import annotations

import math
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from marketlake.exchanges.feed import Depth, Quote, Reject, Resync, Trade

#: No example database (nothing written into the checkout), no per-example time limit (a
#: shared CI machine), a few hundred examples per property.
PROPERTY = settings(
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
RECEIVED = 1_786_309_600_000_000
RECORD_TYPES = (Trade, Quote, Depth, Reject, Resync)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
#: Decimal strings as the exchanges send them: up to 8 places, positive, sane magnitudes.
positive_decimals = st.decimals(
    min_value=Decimal("0.00000001"), max_value=Decimal("99999999"), places=8
)
ms_times = st.integers(min_value=10**12, max_value=10**13 - 1)
us_times = st.integers(min_value=10**15, max_value=10**16 - 1)


def wire(value: Decimal) -> str:
    return f"{value:.8f}"


def assert_valid(record: object, symbols: set[str]) -> None:
    """A record a parser may return: a refusal, a resync, or values a table can hold."""
    assert isinstance(record, RECORD_TYPES)
    if isinstance(record, Reject):
        assert record.reason and isinstance(record.payload, str)
    elif isinstance(record, Trade):
        assert record.symbol in symbols and record.trade_id >= 0
        assert 0 < record.price < math.inf and 0 < record.qty < math.inf
        assert isinstance(record.is_buyer_maker, bool) and isinstance(record.ts_us, int)
    elif isinstance(record, Quote):
        assert record.symbol in symbols
        for value in (record.bid_price, record.bid_qty, record.ask_price, record.ask_qty):
            assert value is None or 0 < value < math.inf
    elif isinstance(record, Depth):
        assert record.symbol in symbols
        for values in (record.bid_prices, record.bid_qtys, record.ask_prices, record.ask_qtys):
            assert all(0 < value < math.inf for value in values)
