"""Which runs a query keeps, in what order: the arguments of :meth:`Store.runs`, checked.

A :class:`RunQuery` is built (and every argument checked) before anything is
read, so a typo in a filter fails at once. It is applied to run views
(:mod:`runjournal.query._view`), which answer from the runs' summaries: no
metric history is read to filter or sort, and a run's record is built only
when a ``where`` function needs it or the caller asked for records.

``since``/``until`` take a datetime (naive means local time), a date, epoch
seconds, an ISO 8601 string, or a duration back from now: ``30m``, ``12h``,
``7d``, ``2w``. A run is kept when ``since <= start_time < until``.

Example:
    >>> query = RunQuery.build(where="params.lr > 0.01", sort="-metrics.acc", limit=3)
    >>> query.needs_metrics, query.sort
    (True, ('metrics.acc', True))
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from runjournal.errors import InvalidArgumentError
from runjournal.query._filter import Expression, columns_of, matches, parse_filter, parse_time
from runjournal.query._records import _GIT_COLUMNS, _PLAIN_COLUMNS, RunRecord
from runjournal.query._status import STATUSES
from runjournal.query._view import RunView

__all__ = ["RunQuery", "TimeBound", "is_column", "parse_bound", "sort_by_column"]

TimeBound = dt.datetime | dt.date | float | int | str
"""A bound of ``since``/``until``."""

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_GROUPS = ("params.", "metrics.", "tags.", "data.")
_MISSING = object()


class _HasColumns(Protocol):
    def column(self, name: str) -> Any: ...


V = TypeVar("V", bound=_HasColumns)


def is_column(name: str) -> bool:
    """Whether ``name`` names a column of the run table.

    Example:
        >>> is_column("params.lr"), is_column("status"), is_column("statsu")
        (True, True, False)
    """
    if name in _PLAIN_COLUMNS or name in _GIT_COLUMNS:
        return True
    return any(name.startswith(group) and len(name) > len(group) for group in _GROUPS)


@dataclass
class RunQuery:
    """The checked arguments of a run query.

    Attributes:
        experiment: Only runs of this experiment.
        statuses: Only runs with one of these statuses.
        tags: Only runs with all these tags at these values.
        where: A filter function of the record.
        expression: A parsed filter expression.
        since: Only runs started at or after this time.
        until: Only runs started before this time.
        sort: ``(column, descending)``, or None for oldest first.
        limit: At most this many runs (after sorting).
    """

    experiment: str | None = None
    statuses: frozenset[str] | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    where: Callable[[RunRecord], bool] | None = None
    expression: Expression | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    sort: tuple[str, bool] | None = None
    limit: int | None = None

    @classmethod
    def build(
        cls,
        experiment: str | None = None,
        status: str | Collection[str] | None = None,
        tags: Mapping[str, Any] | None = None,
        where: Callable[[RunRecord], bool] | str | None = None,
        *,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        sort: str | None = None,
        limit: int | None = None,
    ) -> RunQuery:
        """A query from the arguments of :meth:`Store.runs`, checked.

        Raises:
            InvalidArgumentError: an unknown status or sort column, a bad time or limit.
            FilterError: ``where`` is a string that does not parse.
        """
        return cls(
            experiment=experiment,
            statuses=_statuses(status),
            tags=dict(tags or {}),
            where=where if callable(where) else None,
            expression=_expression(where),
            since=None if since is None else parse_bound(since, "since"),
            until=None if until is None else parse_bound(until, "until"),
            sort=_sort(sort),
            limit=_limit(limit),
        )

    @property
    def columns(self) -> set[str]:
        """The columns the filter and the sort read."""
        found = columns_of(self.expression) if self.expression is not None else set()
        if self.sort is not None:
            found.add(self.sort[0])
        return found

    @property
    def needs_metrics(self) -> bool:
        """Whether filtering or sorting reads metric summaries."""
        return any(name.startswith("metrics.") for name in self.columns)

    @property
    def needs_captured(self) -> bool:
        """Whether filtering or sorting reads git or data columns."""
        return any(name.startswith(("git.", "data.")) for name in self.columns)

    def keep(self, run: RunView) -> bool:
        """Whether a run passes every filter but the ``where`` function."""
        if self.experiment is not None and run.column("experiment") != self.experiment:
            return False
        if self.statuses is not None and run.column("status") not in self.statuses:
            return False
        if self.since is not None or self.until is not None:
            started = run.column("start_time")
            if self.since is not None and started < self.since:
                return False
            if self.until is not None and started >= self.until:
                return False
        if self.tags:
            tags = run.tags
            if any(tags.get(key, _MISSING) != value for key, value in self.tags.items()):
                return False
        return self.expression is None or matches(self.expression, run.column)

    def order(self, runs: list[V]) -> list[V]:
        """The runs in the query's order, cut to its limit (they come oldest first)."""
        if self.sort is not None:
            runs = sort_by_column(runs, self.sort[0], descending=self.sort[1])
        return runs if self.limit is None else runs[: self.limit]


def _statuses(status: str | Collection[str] | None) -> frozenset[str] | None:
    if status is None:
        return None
    statuses = frozenset({status} if isinstance(status, str) else status)
    unknown = sorted(str(value) for value in statuses - STATUSES)
    if unknown:
        raise InvalidArgumentError(
            f"unknown status {', '.join(unknown)}: use {', '.join(sorted(STATUSES))}",
            argument="status",
            value=status,
        )
    return statuses


def _expression(where: object) -> Expression | None:
    if where is None or callable(where):
        return None
    if isinstance(where, str):
        return parse_filter(where, is_column)
    raise InvalidArgumentError(
        f"where= takes a filter expression (a string) or a function of a RunRecord, not {where!r}",
        argument="where",
        value=where,
    )


def _sort(sort: str | None) -> tuple[str, bool] | None:
    if sort is None:
        return None
    descending = isinstance(sort, str) and sort.startswith("-")
    column = sort[1:] if descending else sort
    if not isinstance(column, str) or not is_column(column):
        raise InvalidArgumentError(
            f"cannot sort by {sort!r}: give a column (status, start_time, params.<name>,"
            " metrics.<name>, tags.<name>, ...), with a leading '-' for descending",
            argument="sort",
            value=sort,
        )
    return column, descending


def _limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidArgumentError(
            f"limit must be a non-negative int, not {limit!r}", argument="limit", value=limit
        )
    return limit


def parse_bound(value: TimeBound, argument: str = "since") -> dt.datetime:
    """A time bound as an aware datetime (see the module's docstring).

    Raises:
        InvalidArgumentError: ``value`` is none of the accepted forms.

    Example:
        >>> parse_bound("2026-11-23T12:00:00Z").isoformat()
        '2026-11-23T12:00:00+00:00'
        >>> parse_bound(0).year
        1970
    """
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.astimezone()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day).astimezone()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str):
        duration = _DURATION.fullmatch(value)
        if duration:
            seconds = float(duration.group(1)) * _SECONDS[duration.group(2).lower()]
            return dt.datetime.fromtimestamp(time.time() - seconds, dt.UTC)
        try:
            return parse_time(value)
        except ValueError:
            pass
    raise InvalidArgumentError(
        f"{argument}={value!r} is not a time: give a datetime, an ISO 8601 date or time"
        " ('2026-11-23', '2026-11-23T14:00'), epoch seconds, or a duration back from now"
        " ('30m', '12h', '7d', '2w')",
        argument=argument,
        value=value,
    )


def sort_by_column(runs: Iterable[V], column: str, *, descending: bool = False) -> list[V]:
    """Runs ordered by a column; missing values (None, NaN) last, ties in their order.

    Numbers and times sort before strings, strings before anything else.

    Example:
        >>> class Row:
        ...     def __init__(self, value): self.value = value
        ...     def column(self, name): return self.value
        >>> [row.value for row in sort_by_column([Row(2), Row(None), Row(1)], "x")]
        [1, 2, None]
    """
    present: list[tuple[tuple[int, Any], V]] = []
    missing: list[V] = []
    for run in runs:
        value = run.column(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            missing.append(run)
        else:
            present.append((_order(value), run))
    present.sort(key=lambda pair: pair[0], reverse=descending)
    return [run for _, run in present] + missing


def _order(value: object) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    if isinstance(value, dt.datetime):
        return (0, value.timestamp())
    if isinstance(value, str):
        return (1, value)
    return (2, repr(value))
