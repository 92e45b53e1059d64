"""A run's row: what the run table, filters and sorting need, as plain JSON.

A row is made from a run's :class:`~runjournal.query._digest.RunDigest` and
holds, in stored form (tagged NaN, big ints): the identity and ending of the
run, its params (flattened) and tags, the inputs of its status (the last
lifecycle event and deadline: the status itself depends on the time of
reading, so it is inferred at each read), the lines skipped, and, when read,
the summary of each metric (folded from the metrics files, or taken from the
end event when the digest trusted it: the same either way) and the ``git.*``
and ``data.*`` columns. Rows are
what the query cache keeps in ``index.json``; a read without the cache makes
the same rows from the files, and both make their views (and records) from
rows, so both give the same answers.

Example:
    >>> from pathlib import Path
    >>> from runjournal.query._digest import RunDigest
    >>> row = make_row(Path("runs/r1"), RunDigest("r1"))
    >>> fields = row_fields("r1", row, now=0.0)  # the caller warns with warn_row()
    >>> fields["status"], [str(s) for s in fields["skipped"]]
    ('unknown', ['run.jsonl:0: no start event'])
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any

from runjournal.errors import RunjournalWarning
from runjournal.format import (
    PARAMS,
    RUN_EVENTS,
    RUNS_DIR,
    SkippedLine,
    decode_value,
    encode_float,
    encode_int,
)
from runjournal.query._digest import RunDigest
from runjournal.query._end_summary import end_summary, summary_entries
from runjournal.query._json import to_tagged
from runjournal.query._lines import warn_skipped
from runjournal.query._reader import _decode_members, _ending, _identity, _problems, _start_time
from runjournal.query._records import flatten_params
from runjournal.query._status import infer_status
from runjournal.query._summary import MetricSummary

__all__ = [
    "ROW_VERSION",
    "check_row",
    "make_row",
    "row_fields",
    "row_flat",
    "row_last",
    "row_metrics",
    "row_skipped",
    "warn_row",
]

ROW_VERSION = 3
"""Bumped whenever what a row holds changes; a cached row of another version is made again."""
_IDENTITY = ("name", "experiment", "host", "pid", "job_id", "format", "library")
_KEYS = frozenset(
    {*_IDENTITY, "segments", "start", "end", "duration", "exception", "flat", "tags", "last"}
    | {"deadline", "skips", "metrics", "git", "data"}
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def make_row(run_dir: Path, digest: RunDigest) -> dict[str, Any]:
    """The row of a run from its digest (no warnings: they are given when the row is read).

    Raises:
        ValueError, RecursionError: content of a shape nobody foresaw.
    """
    events, params = digest.events, digest.params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunjournalWarning)
        problems = _problems(run_dir.name, events)
    ending = _ending(events)
    row: dict[str, Any] = {
        "v": ROW_VERSION,
        **_identity(events),
        "segments": max(events.max_seg + 1, 1 if events.process else 0),
        "start": _micros(_start_time(run_dir, events)),
        "end": None if ending.get("end_time") is None else _micros(ending["end_time"]),
        "duration": ending.get("duration"),
        "exception": _exception(events.last_lifecycle) if ending else None,
        "flat": _flat(params.stored),
        "plain": False,
        "tags": events.tags,
        "last": _without_summary(events.last_lifecycle),
        "deadline": events.deadline,
        "skips": [_lines(events.skipped()), _lines(problems), _lines(params.skipped())],
        "metrics": None,
        "git": None if digest.git is None else digest.git.to_json(),
        "data": None if digest.data is None else digest.data.to_json(),
    }
    row["plain"] = all(type(value) not in (dict, list) for value in row["flat"].values())
    if digest.metrics is not None:
        part = digest.metrics
        row["metrics"] = {
            "summary": [_summary_json(key, s) for key, s in part.summary().items()],
            "skipped": {name: _lines(lines) for name, lines in part.skipped().items()},
        }
    elif digest.summarized is not None:
        summary = digest.summary
        if summary is None:  # a digest saved by the cache: made again from its end event
            summary = summary_entries(end_summary(events) or {})
        if summary is None:
            raise ValueError("a trusted end-event summary that is not one")
        row["metrics"] = {"summary": summary, "skipped": {}}
    return row


def _without_summary(last: dict[str, Any] | None) -> dict[str, Any] | None:
    """The last lifecycle event as a row keeps it: an end's metric summary is kept apart."""
    if last is None or "summary" not in last:
        return last
    return {key: value for key, value in last.items() if key != "summary"}


def check_row(row: dict[str, Any]) -> None:
    """Check that a row has the shape this version makes (a damaged cache is read past).

    Raises:
        ValueError: it has not.
    """
    if not isinstance(row, dict) or row.get("v") != ROW_VERSION or not row.keys() >= _KEYS:
        raise ValueError("not a row of this version")
    if type(row["start"]) is not int or not isinstance(row["flat"], dict):
        raise ValueError("not a row of this version")
    if not isinstance(row["tags"], dict) or len(row["skips"]) != 3:
        raise ValueError("not a row of this version")


def warn_row(run_id: str, row: dict[str, Any]) -> None:
    """Warn about the lines skipped in ``run.jsonl`` and ``params.jsonl``, as a read of them does.

    Raises:
        KeyError, TypeError, ValueError: not a row this version made.
    """
    event_skips, problems, params_skips = row["skips"]
    if not (event_skips or problems or params_skips):
        return
    warn_skipped(f"{RUNS_DIR}/{run_id}/{RUN_EVENTS}", _skipped(RUN_EVENTS, event_skips))
    warn_skipped(f"{RUNS_DIR}/{run_id}/{PARAMS}", _skipped(PARAMS, params_skips))
    for _, reason in problems:
        if reason.startswith("written in format"):
            location = f"{RUNS_DIR}/{run_id}/{RUN_EVENTS}"
            warnings.warn(f"{location}: {reason}", RunjournalWarning, stacklevel=3)


def row_fields(run_id: str, row: dict[str, Any], now: float) -> dict[str, Any]:
    """The plain fields of the run's record but its params (which :func:`row_flat` gives flat).

    Raises:
        KeyError, TypeError, ValueError: not a row this version made.
    """
    event_skips, problems, params_skips = row["skips"]
    fields = {key: row[key] for key in _IDENTITY}
    exception = row["exception"]
    fields.update(
        id=run_id,
        status=infer_status(row["last"], row["deadline"], now),
        start_time=_EPOCH + row["start"] * _MICROSECOND,
        tags=_decode_members(row["tags"]),
        segments=row["segments"],
        skipped=_skipped(RUN_EVENTS, event_skips)
        + _skipped(RUN_EVENTS, problems)
        + _skipped(PARAMS, params_skips),
        end_time=None if row["end"] is None else _EPOCH + row["end"] * _MICROSECOND,
        duration=row["duration"],
        exception=_decode_members(exception) if exception is not None else None,
    )
    return fields


def row_flat(row: dict[str, Any]) -> dict[str, Any]:
    """The run's params, flattened (``model.depth``), decoded (a fresh dict)."""
    flat: dict[str, Any] = row["flat"]
    if row.get("plain"):  # no tagged value, no list: decoding changes nothing
        return dict(flat)
    return _decode_members(flat)


def _flat(stored: dict[str, Any]) -> dict[str, Any]:
    flat = flatten_params(_decode_members(stored))
    return {key: to_tagged(value) for key, value in flat.items()}


def _skipped(name: str, lines: list[list[Any]]) -> list[SkippedLine]:
    return [SkippedLine(name, line, reason) for line, reason in lines] if lines else []


def row_last(row: dict[str, Any]) -> dict[str, Any]:
    """The last value of each metric a row holds (empty when it holds none)."""
    metrics = row.get("metrics") or {"summary": []}
    return {entry[0]: _decoded(entry[1]) for entry in metrics["summary"]}


def row_metrics(row: dict[str, Any]) -> dict[str, MetricSummary]:
    """The metric summaries a row holds (empty when it holds none)."""
    metrics = row.get("metrics") or {"summary": []}
    return {
        key: MetricSummary(
            last=decode_value(last),
            last_step=last_step,
            min=decode_value(low),
            min_step=low_step,
            max=decode_value(high),
            max_step=high_step,
            count=count,
        )
        for key, last, last_step, low, low_step, high, high_step, count in metrics["summary"]
    }


def row_skipped(row: dict[str, Any]) -> dict[str, list[SkippedLine]]:
    """The lines skipped in each metrics file, as a row holds them."""
    metrics = row.get("metrics") or {}
    return {
        name: [SkippedLine(name, line, reason) for line, reason in lines]
        for name, lines in metrics.get("skipped", {}).items()
    }


def _decoded(value: Any) -> Any:
    return decode_value(value) if type(value) is dict else value


def _summary_json(key: str, summary: MetricSummary) -> list[Any]:
    return [
        key,
        _tag(summary.last),
        summary.last_step,
        _tag(summary.min),
        summary.min_step,
        _tag(summary.max),
        summary.max_step,
        summary.count,
    ]


def _tag(value: Any) -> Any:
    if isinstance(value, float):
        return encode_float(value)
    return encode_int(value) if isinstance(value, int) else value


def _lines(skipped: list[SkippedLine]) -> list[list[Any]]:
    return [[skip.line, skip.reason] for skip in skipped]


def _micros(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _exception(last: dict[str, Any] | None) -> Any:
    exception = (last or {}).get("exception")
    return exception if isinstance(exception, dict) else None
