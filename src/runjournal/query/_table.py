"""The run table of :func:`~runjournal.load_runs`, built fast from run views.

:func:`views_frame` makes exactly the frame that
:func:`~runjournal.query._pandas.runs_frame` makes of records (the tests
check it), but column by column from the views' rows: the kinds of values in
a column are found with one C-level pass (``set(map(type, ...))``) instead of
a Python test per value, which is most of the time a table of ten thousand
runs and fifty columns takes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runjournal.query._view import RunView

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["views_frame"]

_EXACT_FLOAT_INT = 2**53
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NUMBERS = frozenset({int, float})


def views_frame(views: list[RunView]) -> pd.DataFrame:
    """The run table of some views; the same frame as ``runs_frame`` of their records.

    Raises:
        MissingDependencyError: pandas is not installed.
    """
    from runjournal.query._pandas import _datetimes, _git_columns, _require_pandas, _text

    _require_pandas()
    import pandas as pd

    columns: dict[str, Any] = {
        "run_id": _text([view.id for view in views]),
        "name": _text([view.name for view in views]),
        "experiment": _text([view.experiment for view in views]),
        "status": _text([view.status for view in views]),
        "start_time": _datetimes([view.start_time for view in views]),
        "end_time": _datetimes([view.end_time for view in views]),
        "duration": pd.Series([view.duration for view in views], dtype="float64"),
        "host": _text([view.host for view in views]),
        **_git_columns(views),  # type: ignore[arg-type]
    }
    groups: tuple[tuple[str, Callable[[RunView], dict[str, Any]], str], ...] = (
        ("params", lambda view: view.flat_params, ""),
        ("metrics", lambda view: view.metrics, ""),
        ("tags", lambda view: view.tags, ""),
        ("data", lambda view: view.data_hashes, ".hash"),
    )
    for prefix, values_of, suffix in groups:
        per_run = [values_of(view) for view in views]
        keys = sorted({key for values in per_run for key in values})
        if keys and all(len(values) == len(keys) for values in per_run):
            # Every run has every key (the usual case): columns by transposing, in C.
            rows = list(map(operator.itemgetter(*keys), per_run))
            found = zip(*rows, strict=True) if len(keys) > 1 else [tuple(rows)]
            for key, column in zip(keys, found, strict=True):
                columns[f"{prefix}.{key}{suffix}"] = _whole_column(column)
            continue
        for key in keys:
            columns[f"{prefix}.{key}{suffix}"] = _column(per_run, key)
    return pd.DataFrame(columns)


def _whole_column(values: tuple[Any, ...]) -> pd.Series:
    """A column every run has a value in, as ``_values(..., int_column=True)`` makes it."""
    import pandas as pd

    from runjournal.query._pandas import _text, _values

    kinds = set(map(type, values))
    if kinds == {float}:
        return pd.Series(values, dtype="float64")
    if kinds == {int}:
        low, high = min(values), max(values)
        if high > _EXACT_FLOAT_INT or low < -_EXACT_FLOAT_INT:
            return pd.Series(values, dtype=object)
        return pd.Series(values, dtype="Int64")
    if kinds == {str}:
        return _text(list(values))
    return _values(list(values), int_column=True)


_MISSING = object()


def _column(per_run: list[dict[str, Any]], key: str) -> pd.Series:
    """One ``params.``, ``metrics.``, ``tags.`` or ``data.`` column, as ``_values`` makes it."""
    import pandas as pd

    from runjournal.query._pandas import _MISSING as MISSING
    from runjournal.query._pandas import _text, _values

    values = [values.get(key, _MISSING) for values in per_run]
    present = [value for value in values if value is not _MISSING]
    kinds = set(map(type, present))
    whole = len(present) == len(values)
    if kinds <= _NUMBERS:
        ints = [value for value in present if type(value) is int] if int in kinds else []
        if ints and (max(ints) > _EXACT_FLOAT_INT or min(ints) < -_EXACT_FLOAT_INT):
            return pd.Series([None if v is _MISSING else v for v in values], dtype=object)
        if (
            ints
            and len(ints) == len(present)
            and _INT64_MIN <= min(ints) <= max(ints) <= _INT64_MAX
        ):
            return pd.Series([pd.NA if v is _MISSING else v for v in values], dtype="Int64")
        nan = float("nan")
        return pd.Series([nan if v is _MISSING else v for v in values], dtype="float64")
    if kinds == {bool} and whole:
        return pd.Series(values, dtype=bool)
    if kinds == {str}:
        return _text([None if v is _MISSING else v for v in values])
    return _values([MISSING if v is _MISSING else v for v in values], int_column=True)
