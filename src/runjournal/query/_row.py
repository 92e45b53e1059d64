"""A run's row: what the run table, filters and sorting need, as plain JSON.

A row is made from a run's :class:`~runjournal.query._digest.RunDigest` and
holds, in stored form (tagged NaN, big ints): the identity and ending of the
run, its merged params and tags, the inputs of its status (the last
lifecycle event and deadline: the status itself depends on the time of
reading, so it is inferred at each read), the lines skipped, and, when read,
the summary of each metric and the ``git.*`` and ``data.*`` columns. Rows are
what the query cache keeps in ``index.json``; a read without the cache makes
the same rows from the files, and both make their views (and records) from
rows, so both give the same answers.

Example:
    >>> from pathlib import Path
    >>> from runjournal.query._digest import RunDigest
    >>> row = make_row(Path("runs/r1"), RunDigest("r1"))
    >>> fields = row_fields("r1", row, now=0.0)
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
from runjournal.query._lines import warn_skipped
from runjournal.query._reader import _decode_members, _ending, _identity, _problems, _start_time
from runjournal.query._status import infer_status
from runjournal.query._summary import MetricSummary

__all__ = ["make_row", "row_fields", "row_last", "row_metrics", "row_skipped"]

_IDENTITY = ("name", "experiment", "host", "pid", "job_id", "format", "library")
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
        **_identity(events),
        "segments": max(events.max_seg + 1, 1 if events.process else 0),
        "start": _micros(_start_time(run_dir, events)),
        "end": None if ending.get("end_time") is None else _micros(ending["end_time"]),
        "duration": ending.get("duration"),
        "exception": _exception(events.last_lifecycle) if ending else None,
        "params": params.stored,
        "tags": events.tags,
        "last": events.last_lifecycle,
        "deadline": events.deadline,
        "skips": [_lines(events.skipped()), _lines(problems), _lines(params.skipped())],
        "metrics": None,
        "git": None if digest.git is None else digest.git.to_json(),
        "data": None if digest.data is None else digest.data.to_json(),
    }
    if digest.metrics is not None:
        part = digest.metrics
        row["metrics"] = {
            "summary": [_summary_json(key, s) for key, s in part.summary().items()],
            "skipped": {name: _lines(lines) for name, lines in part.skipped().items()},
        }
    return row


def row_fields(run_id: str, row: dict[str, Any], now: float) -> dict[str, Any]:
    """The plain fields of the run's record, warning about the lines skipped in its files.

    Raises:
        KeyError, TypeError, ValueError: not a row this version made.
    """
    event_skips, problems, params_skips = (
        [SkippedLine(name, line, reason) for line, reason in lines]
        for name, lines in zip((RUN_EVENTS, RUN_EVENTS, PARAMS), row["skips"], strict=True)
    )
    warn_skipped(f"{RUNS_DIR}/{run_id}/{RUN_EVENTS}", event_skips)
    warn_skipped(f"{RUNS_DIR}/{run_id}/{PARAMS}", params_skips)
    for problem in problems:
        if problem.reason.startswith("written in format"):
            location = f"{RUNS_DIR}/{run_id}/{RUN_EVENTS}"
            warnings.warn(f"{location}: {problem.reason}", RunjournalWarning, stacklevel=3)
    fields = {
        key: row[key]
        for key in ("name", "experiment", "host", "pid", "job_id", "format", "library")
    }
    fields.update(
        id=run_id,
        status=infer_status(row["last"], row["deadline"], now),
        start_time=_EPOCH + row["start"] * _MICROSECOND,
        params=_decode_members(row["params"]),
        tags=_decode_members(row["tags"]),
        segments=row["segments"],
        skipped=event_skips + problems + params_skips,
    )
    exception = row["exception"]
    fields.update(
        end_time=None if row["end"] is None else _EPOCH + row["end"] * _MICROSECOND,
        duration=row["duration"],
        exception=_decode_members(exception) if exception is not None else None,
    )
    return fields


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
