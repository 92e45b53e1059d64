"""Round trips through the real writer and reader: what is logged is what comes back.

Every example logs through ``runjournal.start`` and reads back through
``Store.run``, ``history`` and pandas, and every file must parse with a strict
JSON parser (no bare NaN tokens), so that jq, DuckDB and Spark can read it.
"""

from __future__ import annotations

import json
import math
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import runjournal
from runjournal.capture import is_secret_name, redact_value

pd = pytest.importorskip("pandas", reason="the pandas round trip needs the pandas extra")

metric_names = st.one_of(
    st.text(min_size=1, max_size=20),
    st.sampled_from(["val/AR@100", "timing(s)/gen", "../../x", "/etc/passwd", "a.b", "é", "🙂"]),
)
plain_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-307, max_value=1e-307),  # subnormals
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([-0.0, 2**63, 2**64 - 1, 2**64, -(2**63) - 1]),
)
numpy_numbers = st.one_of(
    st.floats(width=16).map(np.float16),
    st.floats(width=32).map(np.float32),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(np.int64),
)
metric_dicts = st.dictionaries(metric_names, plain_numbers | numpy_numbers, min_size=1, max_size=5)


def _expected(value: Any) -> int | float:
    """What a logged value reads back as: the exact Python number it stands for."""
    return value.item() if isinstance(value, np.generic) else value


def _identical(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        both_nan = math.isnan(left) and math.isnan(right)
        return both_nan or struct.pack("<d", left) == struct.pack("<d", right)
    return type(left) is type(right) and left == right


def _strict_json_lines(path: Path) -> list[Any]:
    def refuse(token: str) -> None:
        raise ValueError(f"bare {token} in {path}")

    lines = path.read_bytes().split(b"\n")  # not splitlines(): U+0085 is data, not a newline
    return [json.loads(line, parse_constant=refuse) for line in lines if line]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(metric_dicts, min_size=1, max_size=4))
def test_logged_metrics_come_back_identical_everywhere(steps: list[dict[str, Any]]) -> None:
    """Through history(), last values and pandas, every value is the one logged."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        with runjournal.start(store=store, capture=False) as run:  # git.patch is not JSON
            for step, metrics in enumerate(steps):
                run.log(metrics, step=step)
        assert run.dir is not None
        for file in run.dir.iterdir():
            _strict_json_lines(file)
        record = runjournal.Store(store).run(run.id)
        rows = record.history()
        expected = [
            (step, key, _expected(value))
            for step, metrics in enumerate(steps)
            for key, value in metrics.items()
        ]
        got = [(row["step"], row["key"], row["value"]) for row in rows]
        assert [row[0] for row in got] == sorted(row[0] for row in got)
        assert len(got) == len(expected)
        by_key = {(s, k): v for s, k, v in got}
        for step, key, value in expected:
            assert _identical(by_key[(step, key)], value), (key, value, by_key[(step, key)])
        last = {key: _expected(value) for metrics in steps for key, value in metrics.items()}
        assert record.metrics.keys() == last.keys()
        for key, value in last.items():
            assert _identical(record.metrics[key], value)
        frame = runjournal.load_metrics(store=store)
        for row in frame.itertuples(index=False):
            expected_value = by_key[(row.step, row.key)]
            got_value = row.value
            if isinstance(expected_value, int) and abs(expected_value) > 2**53:
                assert type(got_value) is int and got_value == expected_value
            else:
                assert _identical(float(got_value), float(expected_value))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        metric_names,
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers(-(2**80), 2**80) | st.text(),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(min_size=1, max_size=5), inner, min_size=1, max_size=3)
            ),
            max_leaves=8,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_logged_params_come_back_identical(params: dict[str, Any]) -> None:
    """Nested params with NaN, huge ints, unicode and tag-like keys load back equal."""
    assume(_not_redacted(params))  # secrets are redacted: see tests/test_capture_redact.py
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        with runjournal.start(store=store, params=params) as run:
            pass
        assert run.dir is not None
        _strict_json_lines(run.dir / "params.jsonl")
        loaded = runjournal.Store(store).run(run.id).params
        assert _canonical(loaded) == _canonical(params)


def _not_redacted(value: Any) -> bool:
    """Whether the secret redaction leaves these params alone (no secret name or value)."""
    if isinstance(value, dict):
        return all(
            not is_secret_name(str(key)) and _not_redacted(item) for key, item in value.items()
        )
    if isinstance(value, (list, tuple)):
        return all(map(_not_redacted, value))
    return not isinstance(value, str) or redact_value(value) == value


def _canonical(value: Any) -> Any:
    """A form where NaN equals NaN and 1, 1.0 and True stay different."""
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else struct.pack("<d", value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value
