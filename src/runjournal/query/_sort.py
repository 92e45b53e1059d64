"""Ordering runs by any column of the run table, whatever the values in it."""

from __future__ import annotations

from collections.abc import Iterable

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
    from runjournal.query._select import sort_by_column

    return sort_by_column(records, column, descending=descending)
