"""Hypothesis strategies for metric histories, and exact comparison of read-back values."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

metric_keys = st.one_of(
    st.sampled_from(["../../x", "val/AR@100", "timing(s)/gen", "$float", "a.b", " ", "\x00"]),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12),
)
"""Any name a metric may have, including path-like and tag-like ones (no lone surrogates)."""

metric_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.sampled_from([-0.0, 0.0, 5e-324, -5e-324, float("nan"), float("inf"), float("-inf")]),
    st.integers(),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.sampled_from([2**53 + 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 2**70]),
)
"""Every value a metric can hold: floats of every kind, ints of any size."""

history_lines = st.lists(
    st.tuples(
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.dictionaries(metric_keys, metric_values, min_size=1, max_size=4),
    ),
    max_size=12,
)
"""(step, values) pairs of one segment, in the order they are logged."""


def same_value(read: Any, logged: Any) -> bool:
    """Whether a read value is exactly the logged one: type, sign of zero, NaN-ness."""
    if type(read) is not type(logged):
        return False
    if isinstance(logged, float):
        if math.isnan(logged):
            return math.isnan(read)
        return read == logged and math.copysign(1.0, read) == math.copysign(1.0, logged)
    return bool(read == logged)


def expected_rows(lines: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, str, Any]]:
    """The (step, key, value) rows one segment gives: every value, sorted by step, stable."""
    rows = [(step, key, value) for step, values in lines for key, value in values.items()]
    return sorted(rows, key=lambda row: row[0])
