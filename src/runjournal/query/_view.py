"""A run as a row of the run table, built from its row without building its record.

:class:`RunView` answers :meth:`~runjournal.query.RunRecord.column` for the
columns that filters, sorting and :func:`~runjournal.load_runs` use, straight
from the run's row (:mod:`runjournal.query._row`): making ten thousand
pydantic records (with every param change as a model) costs more than the
whole table. Its values are those the record would give, because both come
from the same row; :meth:`RunView.record` builds the record itself when a
caller wants it (a ``where`` function, :meth:`Store.runs`), from the run's
digest.

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
from runjournal.query._reader import placeholder_record, record_from_fields
from runjournal.query._records import _GIT_COLUMNS, _PLAIN_COLUMNS, RunRecord, flatten_params
from runjournal.query._row import row_fields, row_last, row_metrics, row_skipped
from runjournal.query._summary import MetricSummary
from runjournal.query._tolerant import warn_problems

__all__ = ["DataHash", "GitColumns", "RunView", "make_view", "record_view"]


class RunView:
    """One run of a query, as the run table sees it.

    Attributes:
        id: The run id.
        fields: The record's plain fields (name, status, start_time, params, tags, ...).
    """

    __slots__ = (
        "_entry",
        "_flat",
        "_metrics",
        "_record",
        "_reported",
        "_row",
        "_run_dir",
        "fields",
        "id",
    )

    def __init__(
        self,
        run_dir: Path,
        entry: Entry | None,
        fields: dict[str, Any],
        record: RunRecord | None = None,
    ) -> None:
        self.id = run_dir.name
        self.fields = fields
        self._run_dir = run_dir
        self._entry = entry
        self._record = record
        self._flat: dict[str, Any] | None = None
        self._reported: set[str] = set()
        row = entry.row if entry is not None else None
        self._row = row or {}
        known = row is not None and row.get("metrics") is not None
        self._metrics = LazyMetrics(
            run_dir,
            functools.partial(_saved_part, entry),  # not a method: no cycle through self
            fresh=known,
            summary=functools.partial(row_metrics, self._row) if known else None,
            last=row_last(self._row) if known else None,
            skipped=row_skipped(self._row) if known else None,
        )

    # ----------------------------------------------------------------- columns

    @property
    def name(self) -> str:
        """The run's name."""
        return str(self.fields.get("name", ""))

    @property
    def experiment(self) -> str | None:
        """The run's experiment."""
        return self.fields.get("experiment")

    @property
    def status(self) -> str:
        """The run's status, inferred when the view was made."""
        return str(self.fields["status"])

    @property
    def start_time(self) -> dt.datetime:
        """When the run started."""
        started: dt.datetime = self.fields["start_time"]
        return started

    @property
    def end_time(self) -> dt.datetime | None:
        """When it ended."""
        return self.fields.get("end_time")

    @property
    def duration(self) -> float | None:
        """How long it ran."""
        return self.fields.get("duration")

    @property
    def host(self) -> str | None:
        """The host of its latest writer."""
        return self.fields.get("host")

    @property
    def tags(self) -> dict[str, Any]:
        """Its tags."""
        tags: dict[str, Any] = self.fields.get("tags", {})
        return tags

    @property
    def git(self) -> GitColumns | None:
        """The git columns of the run table, or None without git state."""
        commit, branch, dirty = self.git_columns
        if commit is None and branch is None and dirty is None:
            return None
        return GitColumns(commit, branch, dirty)

    @property
    def data_by_name(self) -> dict[str, DataHash]:
        """The hash of the latest data record of each name."""
        return {name: DataHash(value) for name, value in self.data_hashes.items()}

    @property
    def flat_params(self) -> dict[str, Any]:
        """The params with nested names joined by dots."""
        if self._flat is None:
            self._flat = flatten_params(self.fields.get("params", {}))
        return self._flat

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
        self._warn_metrics()
        return self._metrics.last()

    @property
    def git_columns(self) -> tuple[Any, Any, Any]:
        """``(commit, branch, dirty)``; Nones for a run without usable git state."""
        captured = Captured.from_json(self._row.get("git"))
        if captured is None or self._record is not None:
            state = self.record().git
            return (state.commit, state.branch, state.dirty) if state else (None, None, None)
        if "git" not in self._reported:
            self._reported.add("git")
            warn_problems(f"{RUNS_DIR}/{self.id}/{captured.file}", captured.skipped())
        value = captured.value
        return (value[0], value[1], value[2]) if value else (None, None, None)

    @property
    def data_hashes(self) -> dict[str, Any]:
        """The hash of the latest data record of each name."""
        captured = Captured.from_json(self._row.get("data"))
        if captured is None or self._record is not None:
            return {name: record.hash for name, record in self.record().data_by_name.items()}
        if "data" not in self._reported:
            self._reported.add("data")
            warn_skipped(f"{RUNS_DIR}/{self.id}/{DATA}", captured.skipped())
        return dict(captured.value or {})

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
            return self.fields.get("tags", {}).get(key)
        if name in _PLAIN_COLUMNS:
            return self.fields.get(_PLAIN_COLUMNS[name])
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
                record = record_from_fields(
                    self._run_dir, dict(self.fields), digest.events, digest.params, self._metrics
                )
            except (ValueError, RecursionError) as error:  # content nobody foresaw
                self._record = placeholder_record(self._run_dir, error)
                return self._record
            if "metrics" in self._reported:  # warned about already: only keep the lines
                record._metrics_reported = True
                for skipped in self._metrics.skipped().values():
                    record.skipped.extend(skipped)
            self._record = record
        return self._record


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


def record_view(record: RunRecord) -> RunView:
    """A view of a record given by the caller (its history is the record's own)."""
    fields = {name: getattr(record, name) for name in RunRecord.model_fields}
    return RunView(record.dir or Path(record.id), None, fields, record)


def make_view(entry: Entry, now: float) -> RunView:
    """The view of a run from its catalog entry; a placeholder when its files make no sense."""
    if entry.row is None:
        return _placeholder(entry.run_dir, entry.error or ValueError("no row"))
    try:
        fields = row_fields(entry.run_dir.name, entry.row, now)
    except (KeyError, TypeError, ValueError, RecursionError) as error:
        return _placeholder(entry.run_dir, error)
    return RunView(entry.run_dir, entry, fields)


def _placeholder(run_dir: Path, error: BaseException) -> RunView:
    view = record_view(placeholder_record(run_dir, error))
    view._run_dir, view.id = run_dir, run_dir.name
    return view
