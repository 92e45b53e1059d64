"""Names and values: what can be logged, how it is coerced, and what is refused with which error."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import enum
import math
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runjournal.errors import InvalidNameError, InvalidValueError
from runjournal.format import decode_value
from runjournal.values import (
    MAX_PARAM_DEPTH,
    check_name,
    check_run_id,
    coerce_metric,
    coerce_metrics,
    coerce_params,
    diff_params,
    merge_params,
)

names = st.text(min_size=1).filter(lambda s: s.strip() or True)


@given(names)
def test_any_non_empty_string_is_a_valid_name(name: str) -> None:
    """Names are data: any non-empty string passes, path-like or not."""
    assert check_name(name, "metric") == name


@pytest.mark.parametrize("bad", ["", None, 3, b"x", "\ud800"])
def test_invalid_names_raise_an_error_naming_them(bad: object) -> None:
    """Empty, non-string and unencodable names are refused with the name attached."""
    with pytest.raises(InvalidNameError) as raised:
        check_name(bad, "param")
    assert raised.value.name == bad and raised.value.kind == "param"


@pytest.mark.parametrize("run_id", ["a", "slurm-4242_7", "20261123-144846-9f3a0c1e", "x" * 128])
def test_safe_run_ids_are_accepted(run_id: str) -> None:
    """Run ids name directories, so letters, digits, '.', '_' and '-' are allowed."""
    assert check_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", ["", ".hidden", "../x", "a/b", "x" * 129, "sp ace", 7])
def test_unsafe_run_ids_are_refused(run_id: object) -> None:
    """A run id that could escape or hide its directory is refused."""
    with pytest.raises(InvalidNameError):
        check_run_id(run_id)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (1, 1),
        (True, 1),
        (0.5, 0.5),
        (np.float32(0.1), float(np.float32(0.1))),
        (np.float16(1.5), 1.5),
        (np.int64(-7), -7),
        (np.uint64(2**64 - 1), 2**64 - 1),
        (np.array(2.5), 2.5),
        (np.bool_(True), 1),
        (Fraction(1, 4), 0.25),
        (2**63, 2**63),
        (2**70, {"$int": str(2**70)}),
        (float("nan"), {"$float": "nan"}),
        (float("-inf"), {"$float": "-inf"}),
    ],
)
def test_metric_values_are_coerced_to_exact_json_numbers(value: object, stored: object) -> None:
    """Numbers of every common kind become the JSON number (or tag) they exactly equal."""
    result = coerce_metric("m", value)
    assert orjson.dumps(result) == orjson.dumps(stored)


class _BadFloat:
    def __float__(self) -> float:
        raise RuntimeError("no float here")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0.9", "is not a number"),
        (None, "is not a number"),
        (np.zeros(3), "shape (3,)"),
        (_BadFloat(), "no float here"),
        (1 + 2j, "is not a number"),
        ([1.0], "is not a number"),
    ],
)
def test_values_that_are_not_one_number_are_refused_naming_the_key(
    value: object, fragment: str
) -> None:
    """The error names the key and says why the value cannot be logged."""
    with pytest.raises(InvalidValueError) as raised:
        coerce_metric("val/acc", value)
    assert raised.value.key == "val/acc"
    assert "'val/acc'" in str(raised.value) and fragment in str(raised.value)


def test_coerce_metrics_keeps_the_good_keys_and_collects_the_bad() -> None:
    """One bad value does not lose the others."""
    clean, problems = coerce_metrics({"loss": 0.5, "name": "resnet", "": 1.0})
    assert clean == {"loss": 0.5}
    assert sorted(type(p).__name__ for p in problems) == ["InvalidNameError", "InvalidValueError"]


def test_torch_like_zero_d_tensors_are_read_through_item() -> None:
    """A 0-d tensor is recognised by shape and item() without importing torch."""

    class Tensor:
        shape = ()

        def item(self) -> float:
            return 0.125

    assert coerce_metric("loss", Tensor()) == 0.125


class Color(enum.Enum):
    RED = "red"


class Size(str, enum.Enum):  # noqa: UP042 - the str mix-in is the case under test
    BIG = "big"


@dataclasses.dataclass
class Optim:
    name: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)


class Model(pydantic.BaseModel):
    depth: int = 50
    path: Path = Path("/models/r50")


def test_params_of_every_documented_kind_are_stored_as_json() -> None:
    """Paths, enums, dataclasses, pydantic models, Namespaces, sets, dates get their JSON form."""
    params = {
        "path": PurePosixPath("/data/train"),
        "color": Color.RED,
        "size": Size.BIG,
        "optim": Optim(),
        "model": Model(),
        "args": argparse.Namespace(seed=1, fast=True),
        "splits": {"val", "train"},
        "when": dt.date(2026, 11, 23),
        "array": np.arange(3),
        "keys": {1: "one", 2.5: "x", False: "f"},
        "none": None,
    }
    assert coerce_params(params) == {
        "path": "/data/train",
        "color": "red",
        "size": "big",
        "optim": {"name": "adamw", "betas": [0.9, 0.999]},
        "model": {"depth": 50, "path": "/models/r50"},
        "args": {"seed": 1, "fast": True},
        "splits": ["train", "val"],
        "when": "2026-11-23",
        "array": [0, 1, 2],
        "keys": {"1": "one", "2.5": "x", "False": "f"},
        "none": None,
    }


def test_keys_that_collide_once_made_strings_are_refused() -> None:
    """{1: .., "1": ..} would silently lose a value as JSON, so it is refused."""
    with pytest.raises(InvalidNameError, match="both become '1'"):
        coerce_params({"map": {1: "a", "1": "b"}})


def test_a_param_that_contains_itself_is_refused_with_its_path() -> None:
    """Cycles are reported by dotted path instead of recursing forever."""
    looped: dict[str, Any] = {"a": 1}
    looped["self"] = looped
    with pytest.raises(InvalidValueError, match=r"'cfg\.self'.*cycle"):
        coerce_params({"cfg": looped})


def test_params_nested_too_deeply_are_refused() -> None:
    """Nesting beyond MAX_PARAM_DEPTH gives a clear error, not a RecursionError."""
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(MAX_PARAM_DEPTH + 5):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(InvalidValueError, match="deeper than"):
        coerce_params(deep)


def test_an_object_without_json_form_is_refused_naming_its_path() -> None:
    """The error names where in the params tree the bad value sits."""
    with pytest.raises(InvalidValueError, match=r"'model\.layers\[1\]'"):
        coerce_params({"model": {"layers": [1, object()]}})


param_trees = st.recursive(
    st.none()
    | st.booleans()
    | st.floats()
    | st.integers(min_value=-(2**100), max_value=2**100)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(min_size=1), children, min_size=1, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(min_size=1), param_trees, max_size=4))
def test_params_round_trip_through_their_stored_form(params: dict[str, Any]) -> None:
    """Whatever JSON-like tree is logged decodes back equal (NaN equal to NaN)."""
    stored = orjson.loads(orjson.dumps(coerce_params(params)))
    back = decode_value(stored)
    assert orjson.dumps(_nan_free(back)) == orjson.dumps(_nan_free(params))


def _nan_free(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _nan_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_free(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)
    return value


def test_diff_params_reports_new_and_changed_leaves_and_ignores_equal_ones() -> None:
    """Re-logging equal values changes nothing; 1 and 1.0 count as different."""
    tree = {"lr": 1, "model": {"depth": 50, "width": 64}}
    changes, changed = diff_params(tree, {"lr": 1.0, "model": {"depth": 50}, "seed": 3})
    assert changes == {"lr": 1.0, "seed": 3}
    assert changed == [("lr", 1, 1.0)]
    assert diff_params(tree, {"model": {"depth": 50}}) == ({}, [])


def test_merge_params_merges_objects_and_replaces_leaves() -> None:
    """Objects merge key by key; a leaf or list replaces what was there."""
    tree: dict[str, Any] = {"model": {"depth": 50}, "layers": [1, 2]}
    merge_params(tree, {"model": {"width": 8}, "layers": [3]})
    merge_params(tree, {"model": 5})
    assert tree == {"model": 5, "layers": [3]}
