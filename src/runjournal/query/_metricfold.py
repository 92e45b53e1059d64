"""Metrics files read incrementally: columns of the new lines, and per-key summaries.

The summary of a metric (``last``, ``min``, ``max`` with their steps, and
``count``; :class:`~runjournal.query.MetricSummary`) is over the *default
view* of the history: for each (writer, key, step) only the rows of the
latest segment that logged it. Rows are ordered by step, then by file (main
writer first, then the others by file name), then by position in the file
(line, then place in the line's ``m`` object); ``last`` is the last row in
that order, ``min`` and ``max`` the first row holding the smallest and
largest value (NaN ignored).

A :class:`KeyState` keeps that summary for one key of one file, and is
updated with each batch of new lines, without the earlier ones, as long as
no row can replace an earlier one. A row could replace one of an earlier
segment only when its step is at most the highest step logged before its
segment began (a resume from an older checkpoint); then the key is *dirty*
and its summary is computed again from all its rows, every time. Files whose
runs were never resumed over logged steps are never dirty.

Example:
    >>> batch, skips = build_batch([1, 2], [{"step": 0, "time": 1.0, "seg": 0, "m": {"x": 3}},
    ...                                     {"step": 1, "time": 2.0, "seg": 0, "m": {"x": 1.5}}])
    >>> state = KeyState.new()
    >>> state.update(batch, "x")
    >>> summary = state.summary()
    >>> summary.last, summary.low, summary.high, summary.count
    (((1, 2, 0), 1.5), (1.5, (1, 2, 0)), (3, (0, 1, 0)), 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from runjournal.format import (
    METRICS,
    decode_value,
    encode_float,
    encode_int,
    writer_file_names,
)
from runjournal.query._columns import Batch, KeyColumn
from runjournal.query._folds import number

__all__ = [
    "KeyState",
    "Partial",
    "build_batch",
    "clean_partial",
    "metric_file_names",
]

STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1
Order = tuple[int, ...]
"""Where a row sorts: (step, line, slot) in a file, (step, rank, line, slot) in a run."""


def metric_file_names(names: Iterable[str]) -> list[tuple[str | None, str]]:
    """The metrics files among a run directory's names, with their writer, in reading order.

    The main writer's ``metrics.jsonl`` first (writer None), then every
    ``metrics.<writer>.jsonl`` by file name; temporary files are left out.

    Example:
        >>> metric_file_names(["run.jsonl", "metrics.b.jsonl", "metrics.jsonl", "metrics.a.jsonl"])
        [(None, 'metrics.jsonl'), ('a', 'metrics.a.jsonl'), ('b', 'metrics.b.jsonl')]
    """
    return writer_file_names(names, METRICS)


# ------------------------------------------------------------------ batches


def build_batch(
    lines: Sequence[int], records: list[dict[str, Any]]
) -> tuple[Batch, list[tuple[int, str]]]:
    """The usable lines among some metrics records in columns, and the lines skipped.

    A record without an integer step (within int64) or an ``m`` object is
    skipped; so are values that are not numbers, with one reason per record.
    """
    fast = _build_uniform(lines, records)
    return fast if fast is not None else _build_each(lines, records)


def _build_uniform(
    lines: Sequence[int], rows: list[dict[str, Any]]
) -> tuple[Batch, list[Any]] | None:
    """Columns built a column at a time, when every line is usable and has the same keys."""
    if not rows:
        return None
    steps: list[Any] = list(map(_get_step, rows))
    ms: list[Any] = list(map(_get_m, rows))
    if set(map(type, steps)) != {int} or set(map(type, ms)) != {dict}:
        return None
    if min(steps) < STEP_MIN or max(steps) > STEP_MAX or len(set(map(len, ms))) != 1:
        return None
    names = list(zip(*ms, strict=False))  # the keys at each place of every line
    if any(len(set(same_place)) != 1 for same_place in names):
        return None
    batch = Batch(list(lines), steps, _times(rows), _segs(rows))
    for slot, values in enumerate(zip(*map(dict.values, ms), strict=False)):
        column = list(values)
        if not set(map(type, column)) <= {int, float}:
            column = [decode_value(v) if isinstance(v, dict) else v for v in column]
            if not all(map(_is_number, column)):
                return None
        batch.keys[names[slot][0]] = KeyColumn(None, slot, column)
    return batch, []


def _get_step(row: dict[str, Any]) -> Any:
    return row.get("step")


def _get_m(row: dict[str, Any]) -> Any:
    return row.get("m")


def _times(rows: list[dict[str, Any]]) -> list[float | None]:
    times: list[Any] = [row.get("time") for row in rows]
    types = set(map(type, times))
    if types <= {float}:
        return times
    return [number(time) for time in times]


def _segs(rows: list[dict[str, Any]]) -> list[int]:
    segs: list[Any] = [row.get("seg") for row in rows]
    if set(map(type, segs)) <= {int}:
        return segs
    return [seg if type(seg) is int else 0 for seg in segs]


def _build_each(lines: Sequence[int], records: list[dict[str, Any]]) -> tuple[Batch, list[Any]]:
    """Columns built a line at a time, for any content (the reference behaviour)."""
    batch = Batch([], [], [], [])
    skipped: list[tuple[int, str]] = []
    for line, record in zip(lines, records, strict=True):
        step, values = record.get("step"), record.get("m")
        if type(step) is not int or not STEP_MIN <= step <= STEP_MAX:
            skipped.append((line, "metrics record without an integer step"))
            continue
        if not isinstance(values, dict):
            skipped.append((line, "metrics record without an 'm' object"))
            continue
        index = len(batch.line)
        seg = record.get("seg")
        batch.line.append(line)
        batch.step.append(step)
        batch.time.append(number(record.get("time")))
        batch.seg.append(seg if type(seg) is int else 0)
        bad = _add_values(batch, index, values)
        if bad:
            skipped.append((line, f"values that are not numbers: {', '.join(map(repr, bad))}"))
    for column in batch.keys.values():
        if column.idx is not None and len(column.idx) == len(batch.line):
            column.idx = None
        if isinstance(column.slot, list) and len(set(column.slot)) == 1:
            column.slot = column.slot[0]
    return batch, skipped


def _add_values(batch: Batch, index: int, values: dict[str, Any]) -> list[str]:
    bad = []
    for slot, (key, stored) in enumerate(values.items()):
        value = decode_value(stored) if isinstance(stored, dict) else stored
        if not _is_number(value):
            bad.append(key)
            continue
        column = batch.keys.get(key)
        if column is None:
            column = batch.keys[key] = KeyColumn([], [], [])
        column.idx.append(index)  # type: ignore[union-attr]
        column.slot.append(slot)  # type: ignore[union-attr]
        column.values.append(value)
    return bad


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ------------------------------------------------------------------ summaries


@dataclass
class Partial:
    """The summary of some rows of one metric.

    Attributes:
        count: How many rows.
        first: The order of the first row.
        last: The order and value of the last row.
        low: The smallest value that is not NaN and the order of its first row, or None.
        high: The largest value that is not NaN and the order of its first row, or None.
    """

    count: int
    first: Order
    last: tuple[Order, Any]
    low: tuple[Any, Order] | None
    high: tuple[Any, Order] | None

    def merge(self, other: Partial) -> Partial:
        """The summary of the rows of both."""
        return Partial(
            self.count + other.count,
            min(self.first, other.first),
            self.last if self.last[0] > other.last[0] else other.last,
            _pick(self.low, other.low, lower=True),
            _pick(self.high, other.high, lower=False),
        )

    def ranked(self, rank: int) -> Partial:
        """The same summary with the file's rank put after the step in each order."""

        def put(order: Order) -> Order:
            return (order[0], rank, *order[1:])

        return Partial(
            self.count,
            put(self.first),
            (put(self.last[0]), self.last[1]),
            None if self.low is None else (self.low[0], put(self.low[1])),
            None if self.high is None else (self.high[0], put(self.high[1])),
        )


def _pick(
    one: tuple[Any, Order] | None, two: tuple[Any, Order] | None, *, lower: bool
) -> tuple[Any, Order] | None:
    if one is None or two is None:
        return one if two is None else two
    if one[0] == two[0]:
        return one if one[1] < two[1] else two
    return one if (one[0] < two[0]) == lower else two


def clean_partial(rows: Iterable[tuple[Order, Any]]) -> Partial | None:
    """The summary of rows given as (order, value), in any order; None for no rows.

    Example:
        >>> clean_partial([((2, 1, 0), 5), ((1, 2, 0), float("nan"))]).low
        (5, (2, 1, 0))
    """
    result: Partial | None = None
    for order, value in rows:
        low = None if value != value else (value, order)  # noqa: PLR0124
        part = Partial(1, order, (order, value), low, low)
        result = part if result is None else result.merge(part)
    return result


class KeyState:
    """The summary of one metric key in one metrics file, updated batch by batch.

    Attributes:
        part: The summary of the rows so far (meaningless when dirty).
        seg: The highest segment seen.
        floor: The highest step logged before segment ``seg`` began, or None.
        high_step: The highest step seen, None before any row.
        dirty: A row may have replaced an earlier one: summarize from all rows.
    """

    __slots__ = ("dirty", "floor", "high_step", "part", "seg")

    def __init__(
        self, part: Partial | None, seg: int, floor: int | None, high_step: int | None, dirty: bool
    ) -> None:
        self.part, self.seg, self.floor = part, seg, floor
        self.high_step, self.dirty = high_step, dirty

    @classmethod
    def new(cls) -> KeyState:
        """The state of a key before any row."""
        return cls(None, 0, None, None, False)

    def summary(self) -> Partial:
        """The summary kept (only meaningful when not dirty and after a row)."""
        assert self.part is not None
        return self.part

    def update(self, batch: Batch, key: str) -> None:
        """Add the rows of ``key`` in ``batch`` (later lines of the same file)."""
        column = batch.keys[key]
        indices = column.indices(len(batch))
        steps = batch.step if column.idx is None else [batch.step[i] for i in indices]
        segs = batch.seg if column.idx is None else [batch.seg[i] for i in indices]
        self._check_segments(steps, segs)
        if self.dirty:
            return
        lines = batch.line if column.idx is None else [batch.line[i] for i in indices]
        part = _fast_partial(steps, lines, column) if batch.steps_sorted() else None
        if part is None:
            rows = zip(zip(steps, lines, column.slots(), strict=True), column.values, strict=True)
            part = clean_partial(rows)
        if part is not None:
            self.part = part if self.part is None else self.part.merge(part)

    def _check_segments(self, steps: list[int], segs: list[int]) -> None:
        if not steps:
            return
        if len(set(segs)) == 1:
            self._enter(segs[0], min(steps), max(steps))
        else:
            for step, seg in zip(steps, segs, strict=True):
                self._enter(seg, step, step)

    def _enter(self, seg: int, low_step: int, high_step: int) -> None:
        """Account for rows of segment ``seg`` with steps from ``low_step`` to ``high_step``."""
        if self.high_step is None:
            self.seg = seg
        elif seg > self.seg:
            self.floor, self.seg = self.high_step, seg
        elif seg < self.seg:
            self.dirty = True
        if self.floor is not None and low_step <= self.floor:
            self.dirty = True
        self.high_step = high_step if self.high_step is None else max(self.high_step, high_step)

    def to_json(self) -> list[Any]:
        """The state as plain JSON (values tagged)."""
        return [_partial_json(self.part), self.seg, self.floor, self.high_step, self.dirty]

    @classmethod
    def from_json(cls, state: list[Any]) -> KeyState:
        """The state saved by :meth:`to_json`.

        Raises:
            KeyError, TypeError, ValueError: not a state this version saved.
        """
        part, seg, floor, high_step, dirty = state
        if type(seg) is not int or type(dirty) is not bool:
            raise TypeError("not a key state")
        if any(v is not None and type(v) is not int for v in (floor, high_step)):
            raise TypeError("not a key state")
        return cls(_partial_from_json(part), seg, floor, high_step, dirty)


def _fast_partial(steps: list[int], lines: list[int], column: KeyColumn) -> Partial | None:
    """The summary of a column whose steps never decrease, unless it holds NaN (then None)."""
    values = column.values
    # Every NaN here is math.nan itself (decode_value's), so `in` finds it by identity.
    if not values or math.nan in values:  # noqa: PLW0177
        return None
    slots = column.slot if isinstance(column.slot, list) else None

    def order(i: int) -> Order:
        return (steps[i], lines[i], column.slot if slots is None else slots[i])  # type: ignore[return-value]

    low, high = min(values), max(values)
    return Partial(
        len(values),
        order(0),
        (order(len(values) - 1), values[-1]),
        (values[values.index(low)], order(values.index(low))),
        (values[values.index(high)], order(values.index(high))),
    )


def default_rows(batches: list[Batch], key: str) -> list[tuple[Order, Any]]:
    """The rows of ``key`` in the default view of one file: the latest segment per step."""
    rows: list[tuple[Order, int, Any]] = []
    for batch in batches:
        column = batch.keys.get(key)
        if column is None:
            continue
        for i, slot, value in zip(
            column.indices(len(batch)), column.slots(), column.values, strict=True
        ):
            rows.append(((batch.step[i], batch.line[i], slot), batch.seg[i], value))
    latest: dict[int, int] = {}
    for order, seg, _ in rows:
        if seg > latest.get(order[0], seg - 1):
            latest[order[0]] = seg
    return [(order, value) for order, seg, value in rows if seg == latest[order[0]]]


def summarize_file(
    states: dict[str, KeyState], batches: Callable[[list[str]], list[Batch]]
) -> dict[str, Partial]:
    """The summary of each key of one file; dirty keys are summarized from ``batches(keys)``."""
    result = {key: state.part for key, state in states.items() if not state.dirty and state.part}
    dirty = [key for key, state in states.items() if state.dirty]
    if dirty:
        loaded = batches(dirty)
        for key in dirty:
            part = clean_partial(default_rows(loaded, key))
            if part is not None:
                result[key] = part
    return result


def _partial_json(part: Partial | None) -> list[Any] | None:
    if part is None:
        return None
    return [
        part.count,
        list(part.first),
        [list(part.last[0]), _tag(part.last[1])],
        None if part.low is None else [_tag(part.low[0]), list(part.low[1])],
        None if part.high is None else [_tag(part.high[0]), list(part.high[1])],
    ]


def _partial_from_json(state: Any) -> Partial | None:
    if state is None:
        return None
    count, first, (last_order, last), low, high = state
    return Partial(
        int(count),
        _order(first),
        (_order(last_order), _value(last)),
        None if low is None else (_value(low[0]), _order(low[1])),
        None if high is None else (_value(high[0]), _order(high[1])),
    )


def _order(value: Any) -> Order:
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise TypeError("not an order")
    return tuple(value)


def _tag(value: Any) -> Any:
    return encode_float(value) if isinstance(value, float) else encode_int(value)


def _value(stored: Any) -> Any:
    value = decode_value(stored) if isinstance(stored, dict) else stored
    if not _is_number(value):
        raise TypeError("not a number")
    return value
