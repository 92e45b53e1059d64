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
import re
import warnings
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
    Status,
    decode_value,
)
from runjournal.query._folds import EventsFold, ParamsFold, advance, integer, number, text
from runjournal.query._lines import warn_skipped
from runjournal.query._metricsfile import LazyMetrics
from runjournal.query._records import (
    AlertRecord,
    LoggedError,
    MetricsSource,
    Note,
    ParamChange,
    RunRecord,
    flatten_params,
)
from runjournal.query._status import UNKNOWN, infer_status

__all__ = [
    "build_record",
    "fold_run",
    "load_run",
    "placeholder_record",
    "record_from_fields",
    "run_fields",
]

_GENERATED_ID = re.compile(r"(\d{8}-\d{6})-")

_Events = EventsFold


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
        events, params = fold_run(run_dir)
        record = build_record(run_dir, events, params, now)
        if record.status == Status.CRASHED and _grew(run_dir / RUN_EVENTS, events):
            # It ended and exited while it was read: what it wrote is on disk now.
            events, params = fold_run(run_dir, events, params)
            record = build_record(run_dir, events, params, now)
        return record
    except (ValueError, RecursionError) as error:  # a shape of content not foreseen above
        return placeholder_record(run_dir, error)


def _grew(path: Path, events: EventsFold) -> bool:
    """Whether the file holds more than the fold read of it."""
    try:
        return events.mark is not None and path.stat().st_size != events.mark.size
    except OSError:
        return False


def fold_run(
    run_dir: Path, events: EventsFold | None = None, params: ParamsFold | None = None
) -> tuple[EventsFold, ParamsFold]:
    """The folds of a run's ``run.jsonl`` and ``params.jsonl``, continued from earlier ones."""
    return (
        advance(events, EventsFold, run_dir / RUN_EVENTS),
        advance(params, ParamsFold, run_dir / PARAMS),
    )


def placeholder_record(run_dir: Path, error: BaseException) -> RunRecord:
    """The record of a run whose files could not be made sense of, with a warning."""
    reason = f"cannot be read: {type(error).__name__}: {error}"
    warnings.warn(f"{RUNS_DIR}/{run_dir.name}: {reason}", RunjournalWarning, stacklevel=3)
    problem = SkippedLine(RUN_EVENTS, 0, reason)
    return RunRecord(
        id=run_dir.name,
        status=UNKNOWN,
        start_time=_start_time(run_dir, EventsFold()),
        skipped=[problem],
    )


def build_record(
    run_dir: Path,
    events: EventsFold,
    params: ParamsFold,
    now: float,
    metrics: MetricsSource | None = None,
) -> RunRecord:
    """The record of a run from the folds of its files, warning about what was skipped.

    ``metrics`` gives the metrics when they are used; by default they are read
    from the metrics files then.

    Raises:
        ValueError: content of a shape not foreseen (the caller makes a placeholder).
    """
    fields = run_fields(run_dir, events, params, now)
    return record_from_fields(run_dir, fields, events, params, metrics)


def record_from_fields(
    run_dir: Path,
    fields: dict[str, Any],
    events: EventsFold,
    params: ParamsFold,
    metrics: MetricsSource | None = None,
) -> RunRecord:
    """The record of a run whose plain fields :func:`run_fields` gave."""
    record = RunRecord(
        **fields,
        param_history=_merge_params(params),
        notes=[Note(time=_datetime(time), seg=seg, text=note) for time, seg, note in events.notes],
        alerts=[_alert(alert) for alert in events.alerts],
        errors=[
            LoggedError(cause=cause, key=key, message=message, count=count)
            for (cause, key), (message, count) in events.errors.items()
        ],
    )
    record._run_dir = run_dir
    record._metrics_source = metrics if metrics is not None else _lazy_metrics(run_dir)
    return record


def _alert(folded: list[Any]) -> AlertRecord:
    """The record of an alert event as :class:`EventsFold` keeps it (its value decoded)."""
    time, seg, key, rule, step, value, message, count = folded
    return AlertRecord(
        time=_datetime(time),
        seg=seg,
        key=key,
        rule=rule,
        step=step,
        value=decode_value(value),
        message=message,
        count=count,
    )


def _lazy_metrics(run_dir: Path) -> LazyMetrics:
    return LazyMetrics(run_dir, lambda: None)


def run_fields(run_dir: Path, events: EventsFold, params: ParamsFold, now: float) -> dict[str, Any]:
    """The plain fields of a run's record (all but the lists of models), warning once.

    The lines skipped in ``run.jsonl`` and ``params.jsonl`` are warned about here.

    Raises:
        ValueError: content of a shape not foreseen (the caller makes a placeholder).
    """
    run_id = run_dir.name
    event_skips, params_skips = events.skipped(), params.skipped()
    warn_skipped(f"{RUNS_DIR}/{run_id}/{RUN_EVENTS}", event_skips)
    warn_skipped(f"{RUNS_DIR}/{run_id}/{PARAMS}", params_skips)
    problems = _problems(run_id, events)
    return {
        "id": run_id,
        "status": infer_status(events.last_lifecycle, events.deadline, now),
        "start_time": _start_time(run_dir, events),
        "params": _decode_members(params.stored),
        "tags": _decode_members(events.tags),
        "segments": max(events.max_seg + 1, 1 if events.process else 0),
        "skipped": event_skips + problems + params_skips,
        **_identity(events),
        **_ending(events),
    }


def _merge_params(params: ParamsFold) -> list[ParamChange]:
    return [
        ParamChange(time=_datetime(time), seg=seg, key=key, value=value)
        for time, seg, changes in params.changes
        for key, value in flatten_params(_decode_members(changes)).items()
    ]


def _decode_members(stored: dict[str, Any]) -> dict[str, Any]:
    """Decode the values of an object whose keys are names (never itself a tagged value)."""
    return {
        key: decode_value(value) if type(value) in _CONTAINERS else value
        for key, value in stored.items()
    }


_CONTAINERS = (dict, list)
"""Only these hold tagged values: anything else decodes to itself."""


def _problems(run_id: str, events: EventsFold) -> list[SkippedLine]:
    """Problems of the run as a whole: no start event, or a format newer than ours."""
    problems: list[SkippedLine] = []
    if events.process is None:
        problems.append(SkippedLine(RUN_EVENTS, 0, "no start event"))
    if events.newest_format is not None and events.newest_format > FORMAT_VERSION:
        reason = (
            f"written in format {events.newest_format}, newer than the format"
            f" {FORMAT_VERSION} this runjournal reads: upgrade runjournal;"
            " the fields it knows were read"
        )
        problems.append(SkippedLine(RUN_EVENTS, 0, reason))
        location = f"{RUNS_DIR}/{run_id}/{RUN_EVENTS}"
        warnings.warn(f"{location}: {reason}", RunjournalWarning, stacklevel=4)
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


_number, _int, _str = number, integer, text
