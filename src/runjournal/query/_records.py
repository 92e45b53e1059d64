"""What a reader shows of a run: :class:`RunRecord` and the small records inside it.

A record is built from ``run.jsonl`` and ``params.jsonl`` only, so listing a
thousand runs reads two small files per run. The metric history is read from
the metrics files on first use of :attr:`RunRecord.metrics`,
:attr:`RunRecord.summary` or :meth:`RunRecord.history`, and kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    computed_field,
    model_serializer,
)

from runjournal.errors import InvalidArgumentError
from runjournal.format import RUNS_DIR, SkippedLine
from runjournal.query._history import (
    LoadedHistory,
    Steps,
    default_view,
    read_history,
    select_rows,
)
from runjournal.query._lines import warn_skipped
from runjournal.query._summary import MetricSummary, summarize

__all__ = ["LoggedError", "Note", "ParamChange", "RunRecord", "flatten_params"]

_FROZEN = ConfigDict(frozen=True)


class ParamChange(BaseModel):
    """One param set or changed by a ``params.jsonl`` line.

    Attributes:
        time: When it was logged (UTC), or None if the line had no time.
        seg: The segment that logged it.
        key: The flat dotted name, e.g. ``model.depth``.
        value: The value logged.

    Example:
        >>> ParamChange(time=None, seg=0, key="model.depth", value=50).key
        'model.depth'
    """

    model_config = _FROZEN

    time: dt.datetime | None
    seg: int
    key: str
    value: Any


class Note(BaseModel):
    """A free-text note of a run, from ``run.note(text)``.

    Example:
        >>> Note(time=None, seg=0, text="loss plateaus").text
        'loss plateaus'
    """

    model_config = _FROZEN

    time: dt.datetime | None
    seg: int
    text: str


class LoggedError(BaseModel):
    """A logging problem the writer handled, with how often it happened.

    Attributes:
        cause: ``invalid_name``, ``invalid_value``, ``write_failed``, ``dropped``, ...
        key: The metric or file concerned, if any.
        message: The last message recorded for it.
        count: The largest cumulative count recorded for (cause, key).

    Example:
        >>> LoggedError(cause="invalid_value", key="acc", message="not a number", count=3).count
        3
    """

    model_config = _FROZEN

    cause: str
    key: str | None
    message: str
    count: int


class RunRecord(BaseModel):
    """Everything a run's files say about it, as plain Python values.

    Built by :class:`runjournal.Store`; ``docs/format.md`` describes the
    files it comes from. ``metrics`` and ``summary`` read the metrics files
    on first access; a record from :meth:`Store.runs` has not read them yet.

    Attributes:
        id: The run id, the name of its directory.
        name: The human-readable name ("" when the run has no start event).
        experiment: The experiment, or None.
        status: ``completed``, ``failed``, ``interrupted``, ``killed`` or
            ``crashed`` as recorded; else inferred: ``running``, ``crashed``
            or ``stale``; ``unknown`` for a directory without a start event.
        start_time: When the run started (aware, UTC).
        end_time: When it ended, if its last lifecycle event is an end.
        duration: ``end_time - start_time`` in seconds, None until it ends.
        params: The merged params, nested as logged.
        param_history: Every param change, in file order.
        tags: The tags; a later tags event wins per key.
        notes: The notes, in file order.
        errors: The logging problems the writer recorded, with counts.
        exception: ``{"type", "message", "traceback"}`` of a failed run.
        host: The host of the latest writing process.
        pid: Its process id.
        job_id: Its batch scheduler job id.
        segments: How many segments (one plus the number of resumes).
        format: The format version of the run's files.
        library: The library that wrote them.
        skipped: Lines skipped and problems met while reading the files read so
            far (``line`` 0 means the whole file).

    Example:
        >>> import datetime as dt
        >>> record = RunRecord(id="r1", name="demo", status="completed",
        ...                    start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        >>> record.column("name"), record.metrics
        ('demo', {})
    """

    model_config = _FROZEN

    id: str
    name: str = ""
    experiment: str | None = None
    status: str
    start_time: dt.datetime
    end_time: dt.datetime | None = None
    duration: float | None = None
    params: dict[str, Any] = {}
    param_history: list[ParamChange] = []
    tags: dict[str, Any] = {}
    notes: list[Note] = []
    errors: list[LoggedError] = []
    exception: dict[str, Any] | None = None
    host: str | None = None
    pid: int | None = None
    job_id: str | None = None
    segments: int = 0
    format: int | None = None
    library: str | None = None
    skipped: list[SkippedLine] = []

    _run_dir: Path | None = PrivateAttr(default=None)
    """The run's directory; None for a record built by hand, which has no history."""
    _history: LoadedHistory | None = PrivateAttr(default=None)
    _summary: dict[str, MetricSummary] | None = PrivateAttr(default=None)

    @computed_field(repr=False)  # type: ignore[prop-decorator]
    @property
    def metrics(self) -> dict[str, Any]:
        """Per metric key, the value at the highest step (default view)."""
        return {key: summary.last for key, summary in self.summary.items()}

    @computed_field(repr=False)  # type: ignore[prop-decorator]
    @property
    def summary(self) -> dict[str, MetricSummary]:
        """Per metric key: last, min and max values with their steps, and the count."""
        if self._summary is None:
            self._summary = summarize(default_view(self._loaded_history()))
        return self._summary

    @property
    def flat_params(self) -> dict[str, Any]:
        """The params with nested names joined by dots, e.g. ``{"model.depth": 50}``."""
        return flatten_params(self.params)

    def history(
        self,
        keys: str | Collection[str] | None = None,
        *,
        steps: Steps | None = None,
        raw: bool = False,
    ) -> list[dict[str, Any]]:
        """The metric history as rows ``{"step", "time", "key", "value"}`` sorted by step.

        Args:
            keys: A metric name or names; None for all.
            steps: An inclusive ``(lo, hi)`` step range; either side may be None.
            raw: Keep every row, with its ``"segment"``, instead of only the
                latest segment's rows for each (key, step).

        ``time`` is epoch seconds (float). Rows get a ``"writer"`` when the run
        has more than one metrics file (None for the main writer).

        Example:
            >>> import datetime as dt
            >>> RunRecord(id="r1", status="running",
            ...           start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).history()
            []
        """
        return select_rows(self._loaded_history(), keys, steps=steps, raw=raw)

    def column(self, name: str) -> Any:
        """The value of one column of the run table: ``status``, ``params.lr``, ``metrics.loss``...

        Missing params, metrics and tags are None.

        Raises:
            InvalidArgumentError: ``name`` is not a column.

        Example:
            >>> import datetime as dt
            >>> record = RunRecord(id="r1", status="completed", params={"model": {"depth": 50}},
            ...                    start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
            >>> record.column("params.model.depth"), record.column("tags.baseline")
            (50, None)
        """
        group, _, key = name.partition(".")
        if key and group == "params":
            return self.flat_params.get(key)
        if key and group == "metrics":
            return self.metrics.get(key)
        if key and group == "tags":
            return self.tags.get(key)
        if name in _PLAIN_COLUMNS:
            return getattr(self, _PLAIN_COLUMNS[name])
        raise InvalidArgumentError(
            f"unknown column {name!r}: use one of {', '.join(sorted(_PLAIN_COLUMNS))},"
            " or params.<name>, metrics.<name>, tags.<name>",
            argument="column",
            value=name,
        )

    @model_serializer(mode="wrap")
    def _dump_with_history(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Read the history first so that the skipped lines of metrics files are in the dump.
        self._loaded_history()
        dumped: dict[str, Any] = handler(self)
        return dumped

    def _loaded_history(self) -> LoadedHistory:
        if self._history is None:
            self._history = self._read_history()
        return self._history

    def _read_history(self) -> LoadedHistory:
        if self._run_dir is None:
            return LoadedHistory()
        history = read_history(self._run_dir)
        for name, skipped in history.skipped.items():
            self.skipped.extend(skipped)
            warn_skipped(f"{RUNS_DIR}/{self.id}/{name}", skipped)
        return history


_PLAIN_COLUMNS = {
    "run_id": "id",
    "id": "id",
    "name": "name",
    "experiment": "experiment",
    "status": "status",
    "start_time": "start_time",
    "start": "start_time",
    "end_time": "end_time",
    "duration": "duration",
    "host": "host",
    "pid": "pid",
    "job_id": "job_id",
    "segments": "segments",
}


def flatten_params(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as one level, names joined by ``.``; an empty dict is a leaf.

    Example:
        >>> flatten_params({"lr": 0.1, "model": {"depth": 50, "act": {}}})
        {'lr': 0.1, 'model.depth': 50, 'model.act': {}}
    """
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = value
    return flat
