"""Building a :class:`RunRecord` from a run directory's ``run.jsonl`` and ``params.jsonl``.

Reading is tolerant: a torn or garbage line is skipped and reported, a field
of the wrong type reads as missing, an unknown event kind or field is
ignored, and no single run can make a listing fail.

Two decisions that the format leaves to the reader:

- A directory without a ``start`` (or ``resume``) event loads with status
  ``unknown``, its id as the only name it has, and a problem entry in
  ``skipped``; its start time is its first event's, else the time in a
  generated id, else the directory's modification time. No warning is given,
  since a run being created this very moment looks the same for an instant.
- A run whose format is newer than this runjournal reads is loaded as far as
  its fields are understood, with a problem entry and a warning that says to
  upgrade, instead of failing the listing.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runjournal.errors import RunjournalWarning
from runjournal.format import (
    FORMAT_VERSION,
    PARAMS,
    RUN_EVENTS,
    RUNS_DIR,
    Event,
    SkippedLine,
    decode_value,
)
from runjournal.query._lines import JsonLines, read_jsonl, warn_skipped
from runjournal.query._records import (
    LoggedError,
    Note,
    ParamChange,
    RunRecord,
    flatten_params,
)
from runjournal.query._status import UNKNOWN, infer_status
from runjournal.values import merge_params

__all__ = ["load_run"]

_GENERATED_ID = re.compile(r"(\d{8}-\d{6})-")


@dataclass
class _Events:
    """What the events of ``run.jsonl`` add up to, folded in file order."""

    start: dict[str, Any] | None = None
    process: dict[str, Any] | None = None  # the last start or resume: the latest writer
    last_lifecycle: dict[str, Any] | None = None
    deadline: float | None = None
    first_time: float | None = None
    max_seg: int = -1
    newest_format: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    errors: dict[tuple[str, str | None], LoggedError] = field(default_factory=dict)


def load_run(run_dir: Path, now: float) -> RunRecord:
    """Read one run directory into a record; never raises because of the files' content.

    Args:
        run_dir: The run's directory, ``<store>/runs/<run_id>``.
        now: The current time (epoch seconds), to judge heartbeat deadlines.

    Example:
        >>> record = load_run(Path("runs/20260101-120000-0badcafe"), now=0.0)
        >>> record.status, record.start_time.year, str(record.skipped[0])
        ('unknown', 2026, 'run.jsonl:0: no start event')
    """
    try:
        return _load_run(run_dir, now)
    except (ValueError, RecursionError) as error:  # a shape of content not foreseen above
        reason = f"cannot be read: {type(error).__name__}: {error}"
        warnings.warn(f"{RUNS_DIR}/{run_dir.name}: {reason}", RunjournalWarning, stacklevel=2)
        problem = SkippedLine(RUN_EVENTS, 0, reason)
        events = _Events()
        return RunRecord(
            id=run_dir.name,
            status=UNKNOWN,
            start_time=_start_time(run_dir, events),
            skipped=[problem],
        )


def _load_run(run_dir: Path, now: float) -> RunRecord:
    run_id = run_dir.name
    lines = read_jsonl(run_dir / RUN_EVENTS)
    events = _fold_events(lines)
    params_lines = read_jsonl(run_dir / PARAMS)
    params, param_history = _merge_params(params_lines)
    for file_lines in (lines, params_lines):
        warn_skipped(f"{RUNS_DIR}/{run_id}/{file_lines.name}", file_lines.skipped)
    problems = _problems(run_id, lines, events)
    record = RunRecord(
        id=run_id,
        status=infer_status(events.last_lifecycle, events.deadline, now),
        start_time=_start_time(run_dir, events),
        params=params,
        param_history=param_history,
        tags=events.tags,
        notes=events.notes,
        errors=list(events.errors.values()),
        segments=max(events.max_seg + 1, 1 if events.process else 0),
        skipped=lines.skipped + problems + params_lines.skipped,
        **_identity(events),
        **_ending(events),
    )
    record._run_dir = run_dir
    return record


def _fold_events(lines: JsonLines) -> _Events:
    events = _Events()
    for index, event in enumerate(lines.records):
        kind, time = event.get("event"), _number(event.get("time"))
        if not isinstance(kind, str) or time is None:
            lines.skip(index, "event without an 'event' kind and a numeric 'time'")
            continue
        seg = _int(event.get("seg"))
        if seg is not None:
            events.max_seg = max(events.max_seg, seg)
        if events.first_time is None:
            events.first_time = time
        _apply_event(events, kind, event, time, seg or 0)
    return events


def _apply_event(events: _Events, kind: str, event: dict[str, Any], time: float, seg: int) -> None:
    if kind in Event.LIFECYCLE:
        events.last_lifecycle = event
    if kind in (Event.START, Event.RESUME):
        events.process = event
        if kind == Event.START and events.start is None:
            events.start = event
        found = _int(event.get("format"))
        if found is not None:
            events.newest_format = max(found, events.newest_format or found)
    if kind in (Event.START, Event.RESUME, Event.HEARTBEAT):
        deadline = _number(event.get("deadline"))
        events.deadline = deadline if deadline is not None else events.deadline
    elif kind == Event.TAGS and isinstance(event.get("tags"), dict):
        events.tags.update(_decode_members(event["tags"]))
    elif kind == Event.NOTE and isinstance(event.get("text"), str):
        events.notes.append(Note(time=_datetime(time), seg=seg, text=event["text"]))
    elif kind == Event.ERROR:
        _count_error(events, event)


def _count_error(events: _Events, event: dict[str, Any]) -> None:
    cause = _str(event.get("cause")) or "unknown"
    key = _str(event.get("key"))
    count = _int(event.get("count")) or 1
    known = events.errors.get((cause, key))
    if known is not None and known.count > count:
        return  # counts are cumulative: the largest is the truth, whatever the order
    message = _str(event.get("message")) or (known.message if known else "")
    events.errors[cause, key] = LoggedError(cause=cause, key=key, message=message, count=count)


def _merge_params(lines: JsonLines) -> tuple[dict[str, Any], list[ParamChange]]:
    stored: dict[str, Any] = {}
    history: list[ParamChange] = []
    for index, record in enumerate(lines.records):
        changes = record.get("params")
        if not isinstance(changes, dict):
            lines.skip(index, "params record without a 'params' object")
            continue
        merge_params(stored, changes)
        time, seg = _datetime(_number(record.get("time"))), _int(record.get("seg")) or 0
        history.extend(
            ParamChange(time=time, seg=seg, key=key, value=value)
            for key, value in flatten_params(_decode_members(changes)).items()
        )
    return _decode_members(stored), history


def _decode_members(stored: dict[str, Any]) -> dict[str, Any]:
    """Decode the values of an object whose keys are names (never itself a tagged value)."""
    return {key: decode_value(value) for key, value in stored.items()}


def _problems(run_id: str, lines: JsonLines, events: _Events) -> list[SkippedLine]:
    """Problems of the run as a whole: no start event, or a format newer than ours."""
    problems: list[SkippedLine] = []
    if events.process is None:
        problems.append(SkippedLine(lines.name, 0, "no start event"))
    if events.newest_format is not None and events.newest_format > FORMAT_VERSION:
        reason = (
            f"written in format {events.newest_format}, newer than the format"
            f" {FORMAT_VERSION} this runjournal reads: upgrade runjournal;"
            " the fields it knows were read"
        )
        problems.append(SkippedLine(lines.name, 0, reason))
        location = f"{RUNS_DIR}/{run_id}/{lines.name}"
        warnings.warn(f"{location}: {reason}", RunjournalWarning, stacklevel=3)
    return problems


def _identity(events: _Events) -> dict[str, Any]:
    """Name and experiment from the start event; writer details from the latest process."""
    first = events.start or events.process or {}
    latest = events.process or {}
    return {
        "name": _str(first.get("name")) or "",
        "experiment": _str(first.get("experiment")),
        "host": _str(latest.get("host")),
        "pid": _int(latest.get("pid")),
        "job_id": _str(latest.get("job_id")),
        "format": events.newest_format,
        "library": _str(latest.get("library")),
    }


def _ending(events: _Events) -> dict[str, Any]:
    last = events.last_lifecycle
    if last is None or last.get("event") != Event.END:
        return {}
    end, start = _number(last.get("time")), _start_event_time(events)
    exception = last.get("exception")
    return {
        "end_time": _datetime(end),
        "duration": end - start if end is not None and start is not None else None,
        "exception": _decode_members(exception) if isinstance(exception, dict) else None,
    }


def _start_event_time(events: _Events) -> float | None:
    first = events.start or events.process
    return _number(first.get("time")) if first else None


def _start_time(run_dir: Path, events: _Events) -> dt.datetime:
    seconds = _start_event_time(events)
    if seconds is None:
        seconds = events.first_time
    if seconds is not None:
        return _datetime(seconds) or _EPOCH
    match = _GENERATED_ID.match(run_dir.name)
    if match:
        try:
            return dt.datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    try:
        return _datetime(run_dir.stat().st_mtime) or _EPOCH
    except OSError:
        return _EPOCH


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _datetime(seconds: float | None) -> dt.datetime | None:
    if seconds is None:
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _int(value: object) -> int | None:
    return value if type(value) is int else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
