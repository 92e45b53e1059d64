"""The hash of a pandas DataFrame: its schema and its content, deterministically.

The hash (normative in ``docs/format.md``, section ``data.jsonl``) is the
algorithm over the schema as one line of JSON, a newline, and then one
little-endian uint64 per row from ``pandas.util.hash_pandas_object(frame,
index=True)`` (which covers the index and every value, in column order, with
pandas' fixed key). The schema is ``{"columns": [[type, name, dtype], ...],
"index": [[type, name, dtype], ...], "shape": [rows, columns]}``, names
written as ``str(name)`` beside the name's type, so ``0`` and ``"0"`` differ.
The hash is the same in every process and run; a pandas release that changes
``hash_pandas_object`` would change it too.

pandas is never imported here: a DataFrame can only be given by a program
that has imported it already.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"x": [1, 2]})
    >>> frame_digest(frame, "sha256")[0] == frame_digest(frame.copy(), "sha256")[0]
    True
"""

from __future__ import annotations

from typing import Any

import orjson

from runjournal.errors import DataError

__all__ = ["as_frame", "frame_digest"]


def as_frame(source: object) -> Any | None:
    """``source`` as a DataFrame if it is a pandas DataFrame or Series, else None."""
    if not any(cls.__module__.startswith("pandas") for cls in type(source).__mro__):
        return None  # not pandas, nor a subclass of it (GeoDataFrame): no import, no cost
    import pandas

    if isinstance(source, pandas.Series):
        return source.to_frame()
    if isinstance(source, pandas.DataFrame):
        return source
    return None


def frame_digest(frame: Any, algo: str) -> tuple[str, int, int]:
    """The hash of ``frame``, its size in memory (deep) and its number of rows.

    Raises:
        DataError: pandas cannot hash a value (a list or a dict in a cell).
    """
    import hashlib

    import pandas

    try:
        rows = pandas.util.hash_pandas_object(frame, index=True).to_numpy(dtype="<u8")
        size = int(frame.memory_usage(index=True, deep=True).sum())
    except Exception as error:  # whatever pandas raises for a value it cannot hash
        raise DataError(f"pandas cannot hash this DataFrame: {error}") from error
    hasher = hashlib.new(algo)
    hasher.update(orjson.dumps(_schema(frame)) + b"\n")
    hasher.update(rows.tobytes())
    return hasher.hexdigest(), size, len(frame)


def _schema(frame: Any) -> dict[str, Any]:
    index = frame.index
    levels = [index.get_level_values(level) for level in range(index.nlevels)]
    return {
        "columns": [_field(name, dtype) for name, dtype in frame.dtypes.items()],
        "index": [_field(level.name, level.dtype) for level in levels],
        "shape": list(frame.shape),
    }


def _field(name: object, dtype: object) -> list[str]:
    return [type(name).__name__, str(name), str(dtype)]
