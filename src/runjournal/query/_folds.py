r"""Folding the records of ``run.jsonl`` and ``params.jsonl``, one record at a time.

A fold is the state a file's records add up to, in file order: for
``run.jsonl`` the first start event, the latest writer, the last lifecycle
event, the last deadline, tags, notes, alerts and logging errors; for
``params.jsonl`` the merged params and every change. A fold can be saved as
JSON and continued with the lines appended later, which is what the query
cache does; a read without the cache folds the whole file. Both build the
same :class:`~runjournal.query.RunRecord`, because both use this code.

Every value kept is in its stored form (tagged NaN, big ints), so the state
is plain JSON; values are decoded when a record is built. Each fold also
keeps the lines it could not use, in the order a whole-file read reports
them: first those that are not JSON objects, then those whose content does
not fit.

Example:
    >>> fold = EventsFold()
    >>> fold.add(1, {"event": "start", "time": 10.0, "seg": 0, "name": "a"})
    >>> fold.add(2, {"event": "tags", "seg": 0})
    >>> fold.start["name"], [str(s) for s in fold.skipped()]
    ('a', ["run.jsonl:2: event without an 'event' kind and a numeric 'time'"])
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, TypeVar

import orjson

from runjournal.format import MAX_NESTING, PARAMS, RUN_EVENTS, Event, SkippedLine, too_deep
from runjournal.query._scan import FileMark, scan
from runjournal.values import merge_params

__all__ = ["EventsFold", "FileFold", "ParamsFold", "advance", "integer", "number", "text"]

F = TypeVar("F", bound="FileFold")
TOO_DEEP = f"nested deeper than {MAX_NESTING} levels, which no writer produces"
_ALERT_FIELDS = 8  # time, seg, key, rule, step, value, message, count


class FileFold:
    """What every fold of a JSON-lines file keeps: how far it read, and the lines it skipped.

    Attributes:
        name: The file name within the run directory.
        mark: How far the file was read (None: not read, missing or unreadable).
        parse_skipped: ``(line, reason)`` of lines that are not JSON objects.
        record_skipped: ``(line, reason)`` of objects whose content does not fit.
        tail: The incomplete last line of the latest read (not kept in the cache).
        error: Why the file could not be read, if it could not (then nothing was read).
    """

    name = ""

    def __init__(self) -> None:
        self.mark: FileMark | None = None
        self.parse_skipped: list[tuple[int, str]] = []
        self.record_skipped: list[tuple[int, str]] = []
        self.tail: list[SkippedLine] = []
        self.error: str | None = None

    def skip(self, line: int, reason: str) -> None:
        """Report a record that is a JSON object but cannot be used."""
        self.record_skipped.append((line, reason))

    def skipped(self) -> list[SkippedLine]:
        """The lines skipped, as a whole-file read reports them."""
        if self.error is not None:
            return [SkippedLine(self.name, 0, f"cannot read the file: {self.error}")]
        return [
            *(SkippedLine(self.name, line, reason) for line, reason in self.parse_skipped),
            *self.tail,
            *(SkippedLine(self.name, line, reason) for line, reason in self.record_skipped),
        ]

    def add(self, line: int, record: dict[str, Any]) -> None:
        """Fold one record, read from line number ``line``."""
        raise NotImplementedError

    def _skips_json(self) -> dict[str, Any]:
        mark = None if self.mark is None else self.mark.to_json()
        return {"mark": mark, "ps": self.parse_skipped, "rs": self.record_skipped}

    def _load_skips(self, state: dict[str, Any]) -> None:
        self.mark = FileMark.from_json(state["mark"])
        if self.mark is None and state["mark"] is not None:
            raise ValueError("not a file mark")
        self.parse_skipped = [(int(line), str(reason)) for line, reason in state["ps"]]
        self.record_skipped = [(int(line), str(reason)) for line, reason in state["rs"]]


class EventsFold(FileFold):
    """The events of ``run.jsonl`` folded in file order.

    Attributes:
        start: The first ``start`` event.
        process: The last ``start`` or ``resume`` event: the latest writer.
        last_lifecycle: The last ``start``, ``resume`` or ``end`` event.
        deadline: The last ``deadline`` of a start, resume or heartbeat.
        first_time: The time of the first usable event.
        max_seg: The highest segment seen (-1 for none).
        newest_format: The highest ``format`` of a start or resume.
        tags: The tags, stored form, a later event winning per key.
        notes: ``[time, seg, text]`` of each note.
        alerts: ``[time, seg, key, rule, step, value, message, count]`` of each
            alert event, ``value`` as stored.
        errors: ``(cause, key) -> [message, count]``, in order of first appearance.
    """

    name = RUN_EVENTS

    def __init__(self) -> None:
        super().__init__()
        self.start: dict[str, Any] | None = None
        self.process: dict[str, Any] | None = None
        self.last_lifecycle: dict[str, Any] | None = None
        self.deadline: float | None = None
        self.first_time: float | None = None
        self.max_seg = -1
        self.newest_format: int | None = None
        self.tags: dict[str, Any] = {}
        self.notes: list[list[Any]] = []
        self.alerts: list[list[Any]] = []
        self.errors: dict[tuple[str, str | None], list[Any]] = {}

    def add(self, line: int, event: dict[str, Any]) -> None:
        """Fold one event (line number ``line``) into the state."""
        kind, time = event.get("event"), number(event.get("time"))
        if not isinstance(kind, str) or time is None:
            self.skip(line, "event without an 'event' kind and a numeric 'time'")
            return
        if too_deep(event):
            self.skip(line, TOO_DEEP)
            return
        seg = integer(event.get("seg"))
        if seg is not None:
            self.max_seg = max(self.max_seg, seg)
        if self.first_time is None:
            self.first_time = time
        self._apply(kind, event, time, seg or 0)

    def _apply(self, kind: str, event: dict[str, Any], time: float, seg: int) -> None:
        if kind in Event.LIFECYCLE:
            self.last_lifecycle = event
        if kind in (Event.START, Event.RESUME):
            self.process = event
            if kind == Event.START and self.start is None:
                self.start = event
            found = integer(event.get("format"))
            if found is not None:
                self.newest_format = max(found, self.newest_format or found)
        if kind in (Event.START, Event.RESUME, Event.HEARTBEAT):
            deadline = number(event.get("deadline"))
            self.deadline = deadline if deadline is not None else self.deadline
        elif kind == Event.TAGS and isinstance(event.get("tags"), dict):
            self.tags.update(event["tags"])
        elif kind == Event.NOTE and isinstance(event.get("text"), str):
            self.notes.append([time, seg, event["text"]])
        elif kind == Event.ALERT and isinstance(event.get("key"), str):
            self.alerts.append(
                [
                    time,
                    seg,
                    event["key"],
                    text(event.get("rule")) or "",
                    integer(event.get("step")),
                    event.get("value"),
                    text(event.get("message")) or "",
                    integer(event.get("count")) or 1,
                ]
            )
        elif kind == Event.ERROR:
            self._count_error(event)

    def _count_error(self, event: dict[str, Any]) -> None:
        cause = text(event.get("cause")) or "unknown"
        key = text(event.get("key"))
        count = integer(event.get("count")) or 1
        known = self.errors.get((cause, key))
        if known is not None and known[1] > count:
            return  # counts are cumulative: the largest is the truth, whatever the order
        message = text(event.get("message")) or (known[0] if known else "")
        self.errors[cause, key] = [message, count]

    def to_json(self) -> dict[str, Any]:
        """The state as plain JSON (see :meth:`from_json`)."""
        return {
            **self._skips_json(),
            "start": self.start,
            "process": None if self.process is self.start else self.process,
            "same": self.process is self.start,
            "last": self.last_lifecycle,
            "deadline": self.deadline,
            "first": self.first_time,
            "seg": self.max_seg,
            "format": self.newest_format,
            "tags": self.tags,
            "notes": self.notes,
            "alerts": self.alerts,
            "errors": [[cause, key, *value] for (cause, key), value in self.errors.items()],
        }

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> EventsFold:
        """The state saved by :meth:`to_json`.

        Raises:
            KeyError, TypeError, ValueError: the state is not one this version saved.
        """
        fold = cls()
        fold._load_skips(state)
        fold.start = _object_or_none(state["start"])
        fold.process = fold.start if state["same"] else _object_or_none(state["process"])
        fold.last_lifecycle = _object_or_none(state["last"])
        fold.deadline = number(state["deadline"])
        fold.first_time = number(state["first"])
        fold.max_seg = int(state["seg"])
        fold.newest_format = integer(state["format"])
        fold.tags = dict(state["tags"])
        fold.notes = [list(note) for note in state["notes"]]
        fold.alerts = [list(alert) for alert in state["alerts"]]
        if any(len(alert) != _ALERT_FIELDS for alert in fold.alerts):
            raise ValueError("not an alert this version saved")
        fold.errors = {
            (cause, key): [message, count] for cause, key, message, count in state["errors"]
        }
        return fold


class ParamsFold(FileFold):
    """The records of ``params.jsonl`` merged in file order.

    Attributes:
        stored: The merged params, stored form.
        changes: ``[time, seg, changes]`` of each record, the changes as stored.
    """

    name = PARAMS

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, Any] = {}
        self.changes: list[list[Any]] = []

    def add(self, line: int, record: dict[str, Any]) -> None:
        """Merge one params record (line number ``line``)."""
        changes = record.get("params")
        if not isinstance(changes, dict):
            self.skip(line, "params record without a 'params' object")
            return
        if too_deep(changes):
            self.skip(line, TOO_DEEP)
            return
        # A copy goes into the merged tree: merging later records must not change this one.
        merge_params(self.stored, orjson.loads(orjson.dumps(changes)))
        self.changes.append([number(record.get("time")), integer(record.get("seg")) or 0, changes])

    def to_json(self) -> dict[str, Any]:
        """The state as plain JSON (see :meth:`from_json`)."""
        return {**self._skips_json(), "stored": self.stored, "changes": self.changes}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> ParamsFold:
        """The state saved by :meth:`to_json`.

        Raises:
            KeyError, TypeError, ValueError: the state is not one this version saved.
        """
        fold = cls()
        fold._load_skips(state)
        fold.stored = dict(state["stored"])
        fold.changes = [list(change) for change in state["changes"]]
        return fold


def _object_or_none(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise TypeError("not an object")


def number(value: object) -> float | None:
    """A finite int or float (not bool) as a float, else None.

    Example:
        >>> number(3), number(True), number("1")
        (3.0, None, None)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def integer(value: object) -> int | None:
    """An int (not bool), else None."""
    return value if type(value) is int else None


def text(value: object) -> str | None:
    """A str, else None."""
    return value if isinstance(value, str) else None


def advance(
    fold: F | None, factory: type[F], path: Path, status: os.stat_result | None = None
) -> F:
    r"""``fold`` continued with what was appended to ``path`` since it was made.

    A new fold is started when there is none, or the file was replaced or
    shrank; a missing file gives an empty fold, an unreadable one a fold
    whose only problem says why.

    Example:
        >>> _ = Path("params.jsonl").write_bytes(b'{"time": 1.0, "seg": 0, "params": {"lr": 1}}\n')
        >>> advance(None, ParamsFold, Path("params.jsonl")).stored
        {'lr': 1}
    """
    result = scan(path, None if fold is None else fold.mark, status)
    if fold is not None and result.unchanged:
        fold.tail = []
        return fold
    if fold is None or result.reset:
        fold = factory()
    fold.mark, fold.error, fold.tail = result.mark, result.error, result.tail
    fold.parse_skipped.extend((skip.line, skip.reason) for skip in result.skipped)
    for line, record in zip(result.lines, result.records, strict=True):
        fold.add(line, record)
    return fold
