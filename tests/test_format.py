"""The line codec of format v1: tagged values and tolerant line parsing."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from _runfiles import encode
from runjournal.format import (
    INT_MAX,
    INT_MIN,
    decode_value,
    dumps_line,
    encode_float,
    encode_int,
    parse_lines,
    read_lines,
)


def _same(left: Any, right: Any) -> bool:
    """Equality that also tells NaN == NaN, -0.0 from 0.0 and 1 from 1.0 and True."""
    if isinstance(left, float) and isinstance(right, float):
        return struct.pack("<d", left) == struct.pack("<d", right) or (
            math.isnan(left) and math.isnan(right)
        )
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    return bool(left == right)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["$float", "$int", "$dict", "a", "b"]) | st.text(), children, max_size=3
        )
    ),
    max_leaves=12,
)


@given(json_values)
def test_every_value_round_trips_through_a_strict_json_line(value: Any) -> None:
    """Any value, including NaN, infinities, huge ints and tag-like dicts, comes back identical."""
    line = dumps_line({"v": encode(value)})
    strict = json.loads(line, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    assert _same(decode_value(strict["v"]), value)
    assert _same(decode_value(orjson.loads(line)["v"]), value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_finite_floats_are_stored_as_themselves(value: float) -> None:
    """Finite floats (subnormals, -0.0) are plain JSON numbers that read back exactly."""
    assert encode_float(value) is value
    assert _same(orjson.loads(orjson.dumps(value)), value)


def test_integers_at_the_64_bit_edges_stay_plain_and_beyond_are_tagged() -> None:
    """orjson reads [-2**63, 2**64-1] exactly, so only integers outside it are tagged."""
    assert encode_int(INT_MIN) == INT_MIN
    assert encode_int(INT_MAX) == INT_MAX
    assert encode_int(INT_MAX + 1) == {"$int": str(INT_MAX + 1)}
    assert encode_int(INT_MIN - 1) == {"$int": str(INT_MIN - 1)}


def test_parse_lines_skips_and_reports_garbage_nul_and_torn_lines() -> None:
    """Bad lines are skipped with their line numbers; the good ones load."""
    data = b'{"a":1}\nnot json\n[1,2]\n\x00\x00\x00\n\n{"b":2}\n{"c":'
    batch = parse_lines(data, "m.jsonl")
    assert batch.records == [{"a": 1}, {"b": 2}]
    assert [(s.line, s.reason) for s in batch.skipped] == [
        (2, "not valid JSON"),
        (3, "not a JSON object"),
        (4, "not valid JSON"),
        (7, "incomplete last line"),
    ]
    assert batch.end_offset == data.rfind(b"\n") + 1


def test_reading_a_missing_file_gives_no_records(tmp_path: Any) -> None:
    """A file that does not exist reads as empty, not as an error."""
    batch = read_lines(tmp_path / "absent.jsonl")
    assert batch.records == [] and batch.skipped == []
