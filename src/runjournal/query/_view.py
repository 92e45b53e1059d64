"""A run as a row of the run table, built from its row without building its record.

:class:`RunView` answers :meth:`~runjournal.query.RunRecord.column` for the
columns that filters, sorting and :func:`~runjournal.load_runs` use, straight
from the run's row (:mod:`runjournal.query._row`): making ten thousand
pydantic records (with every param change as a model) costs more than the
whole table. Its values are those the record would give, because both come
from the same row; :meth:`RunView.record` builds the record itself when a
caller wants it (a ``where`` function, :meth:`Store.runs`), from the run's
digest. A view computes each field when it is first used.

Warnings about unreadable lines are given as a record would give them: those
of ``run.jsonl`` and ``params.jsonl`` when the view is made, those of the
metrics files, ``git.json`` and ``data.jsonl`` when their columns are first used.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection
from pathlib import Path
from typing import Any, NamedTuple

from runjournal.format import RUNS_DIR
from runjournal.query._catalog import Entry
from runjournal.query._data import DATA
from runjournal.query._digest import Captured
from runjournal.query._history import Steps, select_rows, wanted_keys
from runjournal.query._lines import warn_skipped
from runjournal.query._metricsfile import LazyMetrics, MetricsPart
from runjournal.query._reader import _decode_members, placeholder_record, record_from_fields
from runjournal.query._records import _GIT_COLUMNS, _PLAIN_COLUMNS, RunRecord
from runjournal.query._row import (
    check_row,
    row_fields,
    row_flat,
    row_last,
    row_metrics,
    row_skipped,
    warn_row,
)
from runjournal.query._status import infer_status
from runjournal.query._summary import MetricSummary
from runjournal.query._tolerant import warn_problems

__all__ = ["DataHash", "GitColumns", "RunView", "make_view", "record_view"]

_EMPTY: dict[str, Any] = {}


class RunView:
    """One run of a query, as the run table sees it.

    Attributes:
        id: The run id.
    """

    __slots__ = (
        "_entry",
        "_fields",
        "_flat",
        "_lazy",
        "_now",
        "_record",
        "_reported",
        "_row",
        "_run_dir",
        "_status",
        "id",
    )

    def __init__(
        self,
        run_dir: Path | None,
        entry: Entry | None,
        now: float,
        record: RunRecord | None = None,
    ) -> None:
        self._run_dir = run_dir
        self.id = run_dir.name if run_dir is not None else entry.run_id if entry else ""
        self._entry = entry
        self._now = now
        self._record = record
        self._row: dict[str, Any] = entry.row if entry is not None and entry.row else _EMPTY
        self._fields: dict[str, Any] | None = None
        self._status: str | None = None
        self._flat: dict[str, Any] | None = None
        self._lazy: LazyMetrics | None = None
        self._reported: set[str] = set()

    # ----------------------------------------------------------------- fields

    @property
    def run_dir(self) -> Path:
        """The run's directory."""
        if self._run_dir is None:
            assert self._entry is not None
            self._run_dir = self._entry.run_dir
        return self._run_dir

    @property
    def fields(self) -> dict[str, Any]:
        """The record's plain fields (name, status, start_time, tags, ...), but its params."""
        if self._fields is None:
            if self._record is not None:
                self._fields = {name: getattr(self._record, name) for name in _FIELDS}
            else:
                fields = row_fields(self.id, self._row, self._now)
                if self._status is None:  # one inference per view: the same everywhere
                    self._status = fields["status"]
                fields["status"] = self._status
                self._fields = fields
        return self._fields

    @property
    def sort_key(self) -> tuple[Any, str]:
        """The default order: start time, then id."""
        start = self._row.get("start")
        if start is None:
            moment: dt.datetime = self.fields["start_time"]
            start = (moment - _EPOCH) // _MICROSECOND
        return start, self.id

    @property
    def name(self) -> str:
        """The run's name."""
        if self._row:
            return str(self._row["name"])
        return str(self.fields.get("name") or "")

    @property
    def experiment(self) -> str | None:
        """The run's experiment."""
        return self._row["experiment"] if self._row else self.fields.get("experiment")

    @property
    def status(self) -> str:
        """The run's status, inferred when the view was made."""
        if self._status is None:
            row = self._row
            found = infer_status(row["last"], row["deadline"], self._now) if row else None
            self._status = found or str(self.fields["status"])
        return self._status

    @property
    def start_time(self) -> dt.datetime:
        """When the run started."""
        if self._row:
            micros: int = self._row["start"]
            return _EPOCH + micros * _MICROSECOND
        started: dt.datetime = self.fields["start_time"]
        return started

    @property
    def end_time(self) -> dt.datetime | None:
        """When it ended."""
        if self._row:
            end = self._row["end"]
            return None if end is None else _EPOCH + end * _MICROSECOND
        return self.fields.get("end_time")

    @property
    def duration(self) -> float | None:
        """How long it ran."""
        return self._row["duration"] if self._row else self.fields.get("duration")

    @property
    def host(self) -> str | None:
        """The host of its latest writer."""
        return self._row["host"] if self._row else self.fields.get("host")

    @property
    def tags(self) -> dict[str, Any]:
        """Its tags."""
        if self._row and self._fields is None:
            return _decode_members(self._row["tags"])
        tags: dict[str, Any] = self.fields.get("tags", {})
        return tags

    @property
    def flat_params(self) -> dict[str, Any]:
        """The params with nested names joined by dots."""
        if self._flat is None:
            self._flat = self._record.flat_params if self._record else row_flat(self._row)
        return self._flat

    # ----------------------------------------------------------------- metrics

    @property
    def _metrics(self) -> LazyMetrics:
        if self._lazy is None:
            row, known = self._row, self._row.get("metrics") is not None
            self._lazy = LazyMetrics(
                self.run_dir,
                functools.partial(_saved_part, self._entry),  # no cycle through self
                fresh=known,
                summary=functools.partial(row_metrics, row) if known else None,
                last=row_last(row) if known else None,
                skipped=row_skipped(row) if known else None,
            )
        return self._lazy

    @property
    def summary(self) -> dict[str, MetricSummary]:
        """The metric summaries (warning once about skipped metrics lines)."""
        if self._record is not None:
            return self._record.summary
        self._warn_metrics()
        return self._metrics.summary()

    @property
    def metrics(self) -> dict[str, Any]:
        """Per metric key, the last value."""
        if self._record is not None:
            return self._record.metrics
        saved = self._row.get("metrics")
        if saved is not None and self._lazy is None and not saved["skipped"]:
            return row_last(self._row)  # nothing to warn about, nothing else to make
        self._warn_metrics()
        return self._metrics.last()

    def history(
        self, keys: str | Collection[str] | None, *, steps: Steps | None, raw: bool
    ) -> list[dict[str, Any]]:
        """The history rows, as :meth:`RunRecord.history` gives them (only ``keys`` are read)."""
        if self._record is not None:
            return self._record.history(keys, steps=steps, raw=raw)
        wanted = wanted_keys(keys)
        self._warn_metrics()
        return select_rows(self._metrics.history(wanted), keys, steps=steps, raw=raw)

    def metrics_part(self) -> MetricsPart:
        """The run's metrics files, read up to now (warning once about skipped lines)."""
        self._warn_metrics()
        return self._metrics.part()

    def _warn_metrics(self) -> None:
        if "metrics" not in self._reported:
            self._reported.add("metrics")
            for name, skipped in self._metrics.skipped().items():
                warn_skipped(f"{RUNS_DIR}/{self.id}/{name}", skipped)

    # ----------------------------------------------------------------- captured

    @property
    def git_columns(self) -> tuple[Any, Any, Any]:
        """``(commit, branch, dirty)``; Nones for a run without usable git state."""
        saved = self._row.get("git")  # [file, key, value, problems] (Captured.to_json)
        if saved is None or self._record is not None:
            state = self.record().git
            return (state.commit, state.branch, state.dirty) if state else (None, None, None)
        if saved[3] and "git" not in self._reported:
            self._reported.add("git")
            captured = Captured.from_json(saved)
            assert captured is not None
            warn_problems(f"{RUNS_DIR}/{self.id}/{captured.file}", captured.skipped())
        value = saved[2]
        return (value[0], value[1], value[2]) if value else (None, None, None)

    @property
    def git(self) -> GitColumns | None:
        """The git columns of the run table, or None without git state."""
        commit, branch, dirty = self.git_columns
        if commit is None and branch is None and dirty is None:
            return None
        return GitColumns(commit, branch, dirty)

    @property
    def data_hashes(self) -> dict[str, Any]:
        """The hash of the latest data record of each name."""
        saved = self._row.get("data")  # [file, key, value, problems] (Captured.to_json)
        if saved is None or self._record is not None:
            return {name: record.hash for name, record in self.record().data_by_name.items()}
        if saved[3] and "data" not in self._reported:
            self._reported.add("data")
            captured = Captured.from_json(saved)
            assert captured is not None
            warn_skipped(f"{RUNS_DIR}/{self.id}/{DATA}", captured.skipped())
        return dict(saved[2] or {})

    @property
    def data_by_name(self) -> dict[str, DataHash]:
        """The hash of the latest data record of each name."""
        return {name: DataHash(value) for name, value in self.data_hashes.items()}

    # ----------------------------------------------------------------- columns

    def column(self, name: str) -> Any:
        """The value of a column of the run table, as :meth:`RunRecord.column` gives it.

        Raises:
            InvalidArgumentError: ``name`` is not a column.
        """
        group, _, key = name.partition(".")
        if key and group == "params":
            return self.flat_params.get(key)
        if key and group == "metrics":
            return self.metrics.get(key)
        if key and group == "tags":
            return self.tags.get(key)
        if name in _PLAIN_COLUMNS:
            field = _PLAIN_COLUMNS[name]
            if field in _FAST_FIELDS:
                return getattr(self, field)
            return self.fields.get(field)
        if name in _GIT_COLUMNS:
            return self.git_columns[_GIT_COLUMNS.index(name)]
        if group == "data" and key.endswith(".hash") and self._row.get("data") is not None:
            return self.data_hashes.get(key[: -len(".hash")])
        return self.record().column(name)

    # ----------------------------------------------------------------- record

    def record(self) -> RunRecord:
        """The run's record (built once), sharing this view's metrics."""
        if self._record is None:
            assert self._entry is not None
            digest = self._entry.digest()
            try:
                fields = {**self.fields, "params": _decode_members(digest.params.stored)}
                record = record_from_fields(
                    self.run_dir, fields, digest.events, digest.params, self._metrics
                )
            except (ValueError, RecursionError) as error:  # content nobody foresaw
                self._record = placeholder_record(self.run_dir, error)
                return self._record
            if "metrics" in self._reported:  # warned about already: only keep the lines
                record._metrics_reported = True
                for skipped in self._metrics.skipped().values():
                    record.skipped.extend(skipped)
            self._record = record
        return self._record


_FIELDS = tuple(
    name
    for name in RunRecord.model_fields
    if name not in ("params", "param_history", "notes", "alerts")  # from the digest
)
_FAST_FIELDS = frozenset(
    {"id", "name", "experiment", "status", "start_time", "end_time", "duration", "host"}
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _saved_part(entry: Entry | None) -> MetricsPart | None:
    return entry.digest().metrics if entry is not None else None


class GitColumns(NamedTuple):
    """The ``git.*`` columns of the run table."""

    commit: str | None
    branch: str | None
    dirty: bool | None


class DataHash(NamedTuple):
    """The ``data.<name>.hash`` column of the run table."""

    hash: str | None


def record_view(record: RunRecord, run_dir: Path | None = None) -> RunView:
    """A view of a record given by the caller (its history is the record's own)."""
    return RunView(run_dir or record.dir or Path(record.id), None, 0.0, record)


def make_view(entry: Entry, now: float) -> RunView:
    """The view of a run from its catalog entry; a placeholder when its files make no sense."""
    if entry.row is None:
        return _placeholder(entry.run_dir, entry.error or ValueError("no row"))
    try:
        check_row(entry.row)
        warn_row(entry.run_id, entry.row)
    except (KeyError, TypeError, ValueError, RecursionError) as error:
        return _placeholder(entry.run_dir, error)
    return RunView(None, entry, now)


def _placeholder(run_dir: Path, error: BaseException) -> RunView:
    return record_view(placeholder_record(run_dir, error), run_dir)
