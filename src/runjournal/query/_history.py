"""Metric history of one run: reading every metrics file, and the default and raw views.

A run's metrics live in ``metrics.jsonl`` (its main writer) and, for extra
writers, ``metrics.<writer>.jsonl``. Each line holds a step, a time, a segment
and several values; the history is one row per value.

The default view keeps, for each (writer, key, step), the rows of the latest
segment that logged that key at that step, so steps re-logged after a resume
from an older checkpoint replace the old ones; within that segment every row
is kept in file order. The raw view keeps every row and says its segment.
Rows come sorted by step; rows of the same step keep file order.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runjournal.errors import InvalidArgumentError
from runjournal.format import (
    METRICS,
    SkippedLine,
    decode_value,
    writer_file_names,
)
from runjournal.query._lines import JsonLines, read_jsonl

__all__ = [
    "LoadedHistory",
    "default_view",
    "metric_files",
    "read_history",
    "select_rows",
    "wanted_keys",
    "writer_files",
]

_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1
"""Steps are kept within int64 so that every step fits a DataFrame column exactly."""

Steps = tuple[int | None, int | None]
"""An inclusive (lo, hi) step range; None leaves that side open."""


@dataclass
class LoadedHistory:
    """Every metric row of a run, in file order, with what could not be read.

    Attributes:
        rows: One dict per value: ``step, time, key, value, segment, writer``.
        skipped: The lines skipped, per file, in file order.
        writers: The writer of each metrics file read; None names the main writer.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, list[SkippedLine]] = field(default_factory=dict)
    writers: list[str | None] = field(default_factory=list)


def metric_files(run_dir: Path) -> list[tuple[str | None, Path]]:
    """The metrics files of a run with their writer: the main file first, then by name.

    Example:
        >>> metric_files(Path("no-such-run"))
        []
    """
    return writer_files(run_dir, METRICS)


def writer_files(run_dir: Path, main: str) -> list[tuple[str | None, Path]]:
    """A run's file ``main`` (``<kind>.jsonl``) and its ``<kind>.<writer>.jsonl``, with writers.

    The main writer's file comes first (writer None), then the others by name.

    Example:
        >>> writer_files(Path("no-such-run"), "system.jsonl")
        []
    """
    try:
        names = [entry.name for entry in run_dir.iterdir()]
    except OSError:
        return []
    return [(writer, run_dir / name) for writer, name in writer_file_names(names, main)]


def read_history(run_dir: Path) -> LoadedHistory:
    """Read every metrics file of a run into rows, skipping what cannot be used.

    Example:
        >>> read_history(Path("no-such-run")).rows
        []
    """
    history = LoadedHistory()
    for writer, path in metric_files(run_dir):
        lines = read_jsonl(path)
        history.writers.append(writer)
        for index, record in enumerate(lines.records):
            _add_record(history.rows, lines, index, record, writer)
        if lines.skipped:
            history.skipped[lines.name] = lines.skipped
    return history


def _add_record(
    rows: list[dict[str, Any]],
    lines: JsonLines,
    index: int,
    record: dict[str, Any],
    writer: str | None,
) -> None:
    step, values = record.get("step"), record.get("m")
    if type(step) is not int or not _STEP_MIN <= step <= _STEP_MAX:
        lines.skip(index, "metrics record without an integer step")
        return
    if not isinstance(values, dict):
        lines.skip(index, "metrics record without an 'm' object")
        return
    time = _number_or_none(record.get("time"))
    segment = record.get("seg")
    segment = segment if type(segment) is int else 0
    bad_keys = []
    for key, stored in values.items():
        value = decode_value(stored) if isinstance(stored, dict) else stored
        if not _is_number(value):
            bad_keys.append(key)
            continue
        rows.append(
            {
                "step": step,
                "time": time,
                "key": key,
                "value": value,
                "segment": segment,
                "writer": writer,
            }
        )
    if bad_keys:
        lines.skip(index, f"values that are not numbers: {', '.join(map(repr, bad_keys))}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_or_none(value: object) -> float | None:
    if _is_number(value) and math.isfinite(value):  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]
    return None


def select_rows(
    history: LoadedHistory,
    keys: str | Collection[str] | None = None,
    *,
    steps: Steps | None = None,
    raw: bool = False,
) -> list[dict[str, Any]]:
    """The rows of a history as users see them: filtered, viewed and sorted by step.

    Rows are ``{"step", "time", "key", "value"}``, plus ``"segment"`` when
    ``raw`` and ``"writer"`` when the run has more than one metrics file.

    Raises:
        InvalidArgumentError: ``keys`` or ``steps`` has the wrong shape.

    Example:
        >>> history = LoadedHistory(rows=[
        ...     {"step": 1, "time": 1.0, "key": "x", "value": 5, "segment": 0, "writer": None},
        ...     {"step": 1, "time": 9.0, "key": "x", "value": 7, "segment": 1, "writer": None},
        ... ], writers=[None])
        >>> [row["value"] for row in select_rows(history)]
        [7]
        >>> [row["segment"] for row in select_rows(history, raw=True)]
        [0, 1]
    """
    wanted = wanted_keys(keys)
    low, high = _step_bounds(steps)
    rows: Iterable[dict[str, Any]] = history.rows if raw else _latest_segments(history.rows)
    with_writer = len(history.writers) > 1
    selected = [
        _public_row(row, raw=raw, with_writer=with_writer)
        for row in rows
        if (wanted is None or row["key"] in wanted) and low <= row["step"] <= high
    ]
    selected.sort(key=_step_of)  # stable: rows of one step keep file order
    return selected


def default_view(history: LoadedHistory) -> list[dict[str, Any]]:
    """The rows of the default view sorted by step, as stored internally (no copies).

    Example:
        >>> default_view(LoadedHistory())
        []
    """
    return sorted(_latest_segments(history.rows), key=_step_of)


def _step_of(row: dict[str, Any]) -> int:
    step: int = row["step"]
    return step


def _latest_segments(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the latest segment that logged each (writer, key, step)."""
    latest: dict[tuple[str | None, str, int], int] = {}
    for row in rows:
        slot = (row["writer"], row["key"], row["step"])
        if row["segment"] > latest.get(slot, -1):
            latest[slot] = row["segment"]
    return [row for row in rows if row["segment"] == latest[row["writer"], row["key"], row["step"]]]


def _public_row(row: dict[str, Any], *, raw: bool, with_writer: bool) -> dict[str, Any]:
    public = {"step": row["step"], "time": row["time"], "key": row["key"], "value": row["value"]}
    if raw:
        public["segment"] = row["segment"]
    if with_writer:
        public["writer"] = row["writer"]
    return public


def wanted_keys(keys: str | Collection[str] | None) -> frozenset[str] | None:
    """The keys asked for, checked; None for all.

    Raises:
        InvalidArgumentError: ``keys`` is neither a name nor a collection of names.
    """
    if keys is None:
        return None
    if isinstance(keys, str):
        return frozenset({keys})
    if not all(isinstance(key, str) for key in keys):
        raise InvalidArgumentError(
            f"keys must be a metric name or a collection of names, not {keys!r}",
            argument="keys",
            value=keys,
        )
    return frozenset(keys)


def _step_bounds(steps: Steps | None) -> tuple[float, float]:
    if steps is None:
        return -math.inf, math.inf
    if not isinstance(steps, tuple) or len(steps) != 2 or not all(map(_is_bound, steps)):
        raise InvalidArgumentError(
            f"steps must be an inclusive (lo, hi) tuple of ints or None, not {steps!r}",
            argument="steps",
            value=steps,
        )
    low, high = steps
    return (-math.inf if low is None else low), (math.inf if high is None else high)


def _is_bound(bound: object) -> bool:
    return bound is None or (isinstance(bound, int) and not isinstance(bound, bool))
