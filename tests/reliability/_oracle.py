"""What runjournal must store for a value, written from docs/format.md, independently of values.py.

Each function returns the value a reader must give back, or :data:`REJECT`
when the documented outcome is a refusal (``InvalidNameError`` or
``InvalidValueError``). The bad-input tests compare the library against these.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

REJECT: Any = type("Reject", (), {"__repr__": lambda self: "REJECT"})()
MAX_PARAM_DEPTH = 64
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1


def utf8(text: str) -> bool:
    """Whether a string can be stored (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def name(value: object) -> Any:
    """A metric, param or tag name: any non-empty string UTF-8 can hold."""
    return value if type(value) is str and value and utf8(value) else REJECT


def _int(value: int) -> Any:
    """Ints too long for str() (sys.get_int_max_str_digits) are refused."""
    limit = sys.get_int_max_str_digits()
    if limit and abs(value) >= 10**limit:
        return REJECT
    return value


def metric(value: object) -> Any:
    """A metric value: a number, by the rules of docs/format.md, *Values*."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return _int(int(value))
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (np.generic, np.ndarray)):
        if value.shape != () or value.dtype.kind == "c":
            return REJECT
        item = value.item()
        if type(item) is type(value):  # np.longdouble: no Python type holds it
            return float(value) if value.dtype.kind == "f" else REJECT
        return metric(item)
    if isinstance(value, (str, bytes, type(None), complex)):
        return REJECT
    if hasattr(type(value), "__float__"):
        try:
            return float(value)  # type: ignore[arg-type]
        except Exception:
            return REJECT
    return REJECT


def step(value: object) -> Any:
    """A step: an int (not a bool) in the signed 64-bit range, or anything ``__index__`` gives."""
    if isinstance(value, (bool, np.bool_)):
        return REJECT
    try:
        index = value.__index__()  # type: ignore[attr-defined]
    except Exception:
        return REJECT
    return index if STEP_MIN <= index <= STEP_MAX else REJECT


def tag(value: object) -> Any:
    """A tag value: str, int, finite float, bool or None."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str.__str__(value) if utf8(value) else REJECT
    if isinstance(value, int):
        return _int(int(value))
    if isinstance(value, float) and math.isfinite(value):
        return float(value)
    return REJECT


def params(mapping: Mapping[Any, Any]) -> Any:
    """A params mapping as a reader gives it back (its values decoded, secrets redacted)."""
    result = _mapping(mapping, depth=0, active=set())
    return result if result is REJECT else redacted(result)


def redacted(values: dict[str, Any]) -> dict[str, Any]:
    """Params or tags after the one redaction of docs/format.md, *Secrets*.

    Which names and values are secrets is the capture module's to decide (and
    its tests' to check); here it only has to be applied where it applies.
    """
    try:
        from runjournal.capture._redact import redact_params
    except ImportError:  # no redaction yet
        return values
    return redact_params(values)


def _key(key: object) -> Any:
    if isinstance(key, enum.Enum):
        key = key.value
    if isinstance(key, (int, float)):
        try:
            key = str(key)
        except ValueError:
            return REJECT
    return name(key)


def _mapping(mapping: Mapping[Any, Any], *, depth: int, active: set[int]) -> Any:
    result: dict[str, Any] = {}
    for key, value in mapping.items():
        stored = _key(key)
        if stored is REJECT or stored in result:
            return REJECT
        result[stored] = param(value, depth=depth + 1, active=active)
        if result[stored] is REJECT:
            return REJECT
    return result


def param(value: object, *, depth: int = 1, active: set[int] | None = None) -> Any:
    """One param value, nested ``depth`` levels deep (top-level values are at depth 1)."""
    active = set() if active is None else active
    if value is None or isinstance(value, bool):
        return bool(value) if value is not None else None
    if isinstance(value, enum.Enum):
        return param(value.value, depth=depth, active=active)
    if isinstance(value, str):
        return str.__str__(value) if utf8(value) else REJECT
    if isinstance(value, int):
        return _int(int(value))
    if isinstance(value, float):
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if depth > MAX_PARAM_DEPTH:
        return REJECT
    if id(value) in active:
        return REJECT
    active = active | {id(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return _mapping(value, depth=depth, active=active)
    if isinstance(value, (list, tuple)):
        items = [param(item, depth=depth + 1, active=active) for item in value]
        return REJECT if any(item is REJECT for item in items) else items
    if isinstance(value, (set, frozenset)):
        try:
            ordered = sorted(value)
        except TypeError:
            ordered = sorted(value, key=repr)
        return param(ordered, depth=depth, active=active - {id(value)})
    if isinstance(value, (np.generic, np.ndarray)):  # as tolist() gives it
        listed = value.tolist()
        if type(listed) is type(value):  # np.longdouble, np.clongdouble
            return float(value) if value.dtype.kind == "f" else REJECT
        return param(listed, depth=depth, active=active)
    return REJECT


def same(found: object, expected: object) -> bool:
    """Deep equality that tells 1 from 1.0 and True, -0.0 from 0.0, and finds NaN equal to NaN."""
    if type(found) is not type(expected):
        return False
    if isinstance(expected, float):
        assert isinstance(found, float)
        if math.isnan(expected):
            return math.isnan(found)
        return found == expected and math.copysign(1, found) == math.copysign(1, expected)
    if isinstance(expected, dict):
        assert isinstance(found, dict)
        return found.keys() == expected.keys() and all(
            same(found[key], expected[key]) for key in expected
        )
    if isinstance(expected, list):
        assert isinstance(found, list)
        return len(found) == len(expected) and all(
            same(a, b) for a, b in zip(found, expected, strict=True)
        )
    return found == expected
