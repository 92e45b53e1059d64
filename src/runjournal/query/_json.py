"""Plain Python values as strict JSON, with the store's tags for what JSON cannot hold.

``runjournal ls --json`` and ``show --json`` print records this way: NaN and
the infinities become ``{"$float": "nan"}`` and friends, integers beyond 64
bits ``{"$int": "<digits>"}``, exactly as in the store's own files
(``docs/format.md``, *Values*), so the output is valid JSON that loses nothing.
Datetimes become ISO 8601 strings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from runjournal.format import encode_float, encode_int, wrap_dict

__all__ = ["dumps_tagged", "to_tagged"]


def to_tagged(value: Any) -> Any:
    """``value`` with every float, int, dict and datetime in its stored JSON form.

    Example:
        >>> to_tagged({"loss": float("nan"), "tokens": [2**70]})
        {'loss': {'$float': 'nan'}, 'tokens': [{'$int': '1180591620717411303424'}]}
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return encode_float(value)
    if isinstance(value, int):
        return encode_int(value)
    if isinstance(value, dict):
        return wrap_dict({str(key): to_tagged(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return [to_tagged(item) for item in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def dumps_tagged(value: Any) -> str:
    """``value`` as indented, valid JSON text in the store's tagged encoding.

    Example:
        >>> print(dumps_tagged([float("inf")]))
        [
          {
            "$float": "inf"
          }
        ]
    """
    return orjson.dumps(to_tagged(value), option=orjson.OPT_INDENT_2).decode()
