r"""The metric summaries a run's end event carries, and when a reader may use them.

A run's main writer puts into its ``end`` event the summary of what it wrote
to ``metrics.jsonl`` (``docs/format.md``, *end*; written by
:mod:`runjournal._end_summary`): per key the last, smallest and largest value
with their steps, and the count, and the size of the file it covers. It is
used instead of reading the history only when it surely describes the
history:

- the end event is the run's last lifecycle event (a run resumed since reads
  its history);
- ``metrics.jsonl`` is the run's only metrics file (no extra writer's file);
- it has exactly the size the summary covers (nothing appended, truncated or
  rewritten to another length since);
- the summary is well formed.

Otherwise the history is read, as for runs written before summaries existed.
Either way the row is the same (the test suite checks it on random histories).

Example:
    >>> summary = {"file": "metrics.jsonl", "bytes": 60, "metrics": {"loss": {
    ...     "last": {"$float": "nan"}, "last_step": 3, "min": 0.5, "min_step": 1,
    ...     "max": 0.5, "max_step": 1, "count": 2}}}
    >>> summary_entries(summary)
    [['loss', {'$float': 'nan'}, 3, 0.5, 1, 0.5, 1, 2]]
    >>> summary_entries({**summary, "metrics": {"loss": {"last": "0.5", "count": 2}}}) is None
    True
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runjournal.format import METRICS, Event, decode_value, encode_float, encode_int
from runjournal.query._folds import EventsFold
from runjournal.query._metricfold import metric_file_names

__all__ = ["end_summary", "summary_entries", "trusted_summary"]

_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1
_PLAIN = frozenset({int, float})


def end_summary(events: EventsFold) -> dict[str, Any] | None:
    """The ``summary`` of the run's last lifecycle event, when that is an end that has one."""
    last = events.last_lifecycle
    if last is None or last.get("event") != Event.END:
        return None
    summary = last.get("summary")
    return summary if isinstance(summary, dict) else None


def trusted_summary(
    run_dir: Path, names: Sequence[str], events: EventsFold
) -> tuple[list[int], list[list[Any]]] | None:
    """``[inode, size, mtime_ns]`` of ``metrics.jsonl`` and the row's summary entries.

    None unless the end event's summary surely describes the metrics history
    (see the module's docstring).
    """
    summary = end_summary(events)
    if summary is None or summary.get("file") != METRICS:
        return None
    size = summary.get("bytes")
    if type(size) is not int or metric_file_names(names) != [(None, METRICS)]:
        return None
    try:
        status = os.stat(f"{run_dir}{os.sep}{METRICS}")  # noqa: PTH116 (once per run listed)
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode) or status.st_size != size:
        return None
    entries = summary_entries(summary)
    if entries is None:
        return None
    return [status.st_ino, status.st_size, status.st_mtime_ns], entries


def summary_entries(summary: dict[str, Any]) -> list[list[Any]] | None:
    """The summary as a row holds it; None when it is malformed.

    Per key, in the summary's order: ``[key, last, last_step, min, min_step,
    max, max_step, count]``, values tagged.
    """
    metrics = summary.get("metrics")
    if not isinstance(metrics, dict):
        return None
    entries = []
    for key, entry in metrics.items():
        try:
            last, last_step = entry["last"], entry["last_step"]
            low, low_step = entry["min"], entry["min_step"]
            high, high_step, count = entry["max"], entry["max_step"], entry["count"]
        except (KeyError, TypeError):
            return None
        if type(count) is not int or count < 1 or not _is_step(last_step):
            return None
        if type(last) in _PLAIN and type(low) in _PLAIN and type(high) in _PLAIN:
            # The common case: JSON numbers, which are their own stored form.
            if high < low or not (_is_step(low_step) and _is_step(high_step)):
                return None
            entries.append([key, last, last_step, low, low_step, high, high_step, count])
            continue
        if (last := _number(last)) is None:
            return None
        if low is None and high is None and low_step is None and high_step is None:
            entries.append([key, _stored(last), last_step, None, None, None, None, count])
            continue
        low, high = _number(low), _number(high)
        if low is None or high is None or _is_nan(low) or _is_nan(high):
            return None
        if not (_is_step(low_step) and _is_step(high_step)) or high < low:
            return None
        entries.append(
            [key, _stored(last), last_step, _stored(low), low_step, _stored(high), high_step, count]
        )
    return entries


def _number(stored: Any) -> int | float | None:
    value = decode_value(stored) if type(stored) is dict else stored
    return value if type(value) in (int, float) else None


def _is_nan(value: int | float) -> bool:
    return type(value) is float and math.isnan(value)


def _is_step(value: Any) -> bool:
    return type(value) is int and _STEP_MIN <= value <= _STEP_MAX


def _stored(value: int | float) -> Any:
    return encode_float(value) if isinstance(value, float) else encode_int(value)
