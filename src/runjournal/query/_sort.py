"""Ordering runs by any column of the run table, whatever the values in it."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from runjournal.query._records import RunRecord

__all__ = ["sort_runs"]


def sort_runs(
    records: Iterable[RunRecord], column: str, *, descending: bool = False
) -> list[RunRecord]:
    """Runs ordered by a column (see :meth:`RunRecord.column`); missing values come last.

    Runs with equal values keep their order. A column mixing types still
    sorts: numbers (and times) first, then strings, then anything else.
    None and NaN count as missing.

    Raises:
        InvalidArgumentError: ``column`` is not a column of the run table.

    Example:
        >>> import datetime as dt
        >>> start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        >>> runs = [RunRecord(id=i, status="completed", start_time=start, params=p)
        ...         for i, p in [("a", {"lr": 0.1}), ("b", {}), ("c", {"lr": 0.01})]]
        >>> [run.id for run in sort_runs(runs, "params.lr")]
        ['c', 'a', 'b']
    """
    present: list[tuple[tuple[int, Any], RunRecord]] = []
    missing: list[RunRecord] = []
    for record in records:
        value = record.column(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            missing.append(record)
        else:
            present.append((_order(value), record))
    present.sort(key=lambda pair: pair[0], reverse=descending)
    return [record for _, record in present] + missing


def _order(value: object) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    if isinstance(value, dt.datetime):
        return (0, value.timestamp())
    if isinstance(value, str):
        return (1, value)
    return (2, repr(value))
