"""What a reader shows of a run: :class:`RunRecord` and the small records inside it.

A record is built from ``run.jsonl`` and ``params.jsonl`` only, so listing a
thousand runs reads two small files per run. The metric history is read from
the metrics files on first use of :attr:`RunRecord.metrics`,
:attr:`RunRecord.summary` or :meth:`RunRecord.history`, and kept; so are the
captured parts: ``environment.json`` on first use of
:attr:`RunRecord.environment` or :attr:`RunRecord.command`, ``git.json`` of
:attr:`RunRecord.git`, ``data.jsonl`` of :attr:`RunRecord.data`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    computed_field,
    model_serializer,
)

from runjournal.errors import InvalidArgumentError
from runjournal.format import RUNS_DIR, SkippedLine
from runjournal.query._artifacts import ARTIFACTS, ArtifactRecord, read_artifacts
from runjournal.query._data import DATA, DataRecord, latest_by_name, read_data
from runjournal.query._environment import ENVIRONMENT, Command, Environment, parse_environment
from runjournal.query._git import GIT, GitState, parse_git, read_patch
from runjournal.query._history import (
    LoadedHistory,
    Steps,
    default_view,
    read_history,
    select_rows,
)
from runjournal.query._lines import warn_skipped
from runjournal.query._summary import MetricSummary, summarize
from runjournal.query._tolerant import latest_file, read_json_object, warn_problems

__all__ = [
    "AlertRecord",
    "LoggedError",
    "MetricsSource",
    "Note",
    "ParamChange",
    "RunRecord",
    "flatten_params",
]


class MetricsSource(Protocol):
    """Where a record's metrics come from: the store's incremental read of its metrics files."""

    def summary(self) -> dict[str, MetricSummary]:
        """The summary per key."""
        ...

    def skipped(self) -> dict[str, list[SkippedLine]]:
        """The lines skipped per metrics file."""
        ...

    def history(self) -> LoadedHistory:
        """Every row."""
        ...


_FROZEN = ConfigDict(frozen=True)
_T = TypeVar("_T")
_CAPTURED_FIELDS = ("environment", "git", "data", "artifacts")


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


class AlertRecord(BaseModel):
    """An alert that fired: an ``alert`` event of ``run.jsonl`` (``docs/alerts.md``).

    Attributes:
        time: When it fired (UTC).
        seg: The segment that logged the value.
        key: The metric watched.
        rule: The rule as written, e.g. ``not_finite()`` or ``above(5.0)``.
        step: The step of the value that made it fire (None if not recorded).
        value: That value (NaN and infinities decoded to floats).
        message: One line saying what happened.
        count: How many times this alert had fired in the segment, this time included.

    Example:
        >>> alert = AlertRecord(time=None, seg=0, key="loss", rule="not_finite()", step=120,
        ...                     value=float("nan"), message="loss = nan at step 120: not finite")
        >>> alert.key, alert.step, alert.count
        ('loss', 120, 1)
    """

    model_config = _FROZEN

    time: dt.datetime | None
    seg: int
    key: str
    rule: str = ""
    step: int | None = None
    value: Any = None
    message: str = ""
    count: int = 1


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
    on first access, ``environment`` and ``command`` read ``environment.json``,
    ``git`` reads ``git.json`` and ``data`` reads ``data.jsonl``; a record
    from :meth:`Store.runs` has read none of them yet. A damaged file reads
    as missing (a field that does not fit, as None), with a problem entry in
    ``skipped`` and a warning that names the file.

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
        alerts: The alerts that fired, in file order (``docs/alerts.md``).
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
        environment: The latest segment's environment snapshot, or None.
        command: How the process was started (from the environment), or None.
        git: The git state at the latest start or resume, or None when not captured.
        data: Every data record, in the order logged.
        artifacts: Every artifact record, in the order logged.

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
    alerts: list[AlertRecord] = []
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
    _metrics_source: MetricsSource | None = PrivateAttr(default=None)
    """Where the metrics come from when the store read them (or will) for this record."""
    _metrics_reported: bool = PrivateAttr(default=False)
    _captured: dict[str, Any] = PrivateAttr(default_factory=dict)
    """What was read of the captured files, by part, once each."""

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
            source = self._metrics_source
            if source is None:
                self._summary = summarize(default_view(self._loaded_history()))
            else:
                self._report_metric_skips(source)
                self._summary = source.summary()
        return self._summary

    @computed_field(repr=False)  # type: ignore[prop-decorator]
    @property
    def environment(self) -> Environment | None:
        """The latest segment's ``environment.<seg>.json``, else ``environment.json``."""
        return self._once("environment", self._read_environment)

    @computed_field(repr=False)  # type: ignore[prop-decorator]
    @property
    def command(self) -> Command | None:
        """The command line, working directory and executable, from the environment file."""
        environment = self.environment
        return environment.command if environment is not None else None

    @computed_field(repr=False)  # type: ignore[prop-decorator]
    @property
    def git(self) -> GitState | None:
        """The latest segment's ``git.<seg>.json``, else ``git.json``; None when there is none."""
        return self._once("git", self._read_git)

    @computed_field(repr=False)  # type: ignore[prop-decorator]
    @property
    def data(self) -> list[DataRecord]:
        """Every record of ``data.jsonl``, in the order logged."""
        return self._once("data", self._read_data)

    @computed_field(repr=False)  # type: ignore[prop-decorator]
    @property
    def artifacts(self) -> list[ArtifactRecord]:
        """Every record of ``artifacts.jsonl``, in the order logged (read on first use)."""
        return self._once("artifacts", self._read_artifacts)

    @property
    def data_by_name(self) -> dict[str, DataRecord]:
        """The latest data record of each name."""
        return latest_by_name(self.data)

    @property
    def dir(self) -> Path | None:
        """The run's directory, ``<store>/runs/<run_id>``; None for a record built by hand."""
        return self._run_dir

    @property
    def git_patch_path(self) -> Path | None:
        """The run's ``git.patch`` (of the latest segment), when it holds changes that apply."""
        git = self.git
        if self._run_dir is None or git is None or not git.has_patch or git.patch is None:
            return None
        name = git.patch.file or "git.patch"
        if Path(name).name != name:  # a name from the store is never a path out of the run
            return None
        return self._run_dir / name

    def git_patch(self) -> str | None:
        """The text of the uncommitted changes (``git.patch``), read now; None without any.

        Bytes that are not UTF-8 read as U+FFFD; apply the file itself
        (:attr:`git_patch_path`) rather than this text.

        Example:
            >>> import datetime as dt
            >>> RunRecord(id="r1", status="completed",
            ...           start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).git_patch() is None
            True
        """
        if self._run_dir is None:
            return None
        data, problems = read_patch(self._run_dir, self.git)
        if "patch" not in self._captured:  # report a bad patch once, however often it is read
            self._captured["patch"] = True
            self._report(problems[0].file if problems else "git.patch", problems)
        return None if data is None else data.decode("utf-8", errors="replace")

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
        if name in _GIT_COLUMNS:
            return getattr(self.git, name[len("git.") :], None)
        data_name, _, field = key.rpartition(".")
        if group == "data" and data_name and field in DataRecord.model_fields:
            return getattr(self.data_by_name.get(data_name), field, None)
        if name in _PLAIN_COLUMNS:
            return getattr(self, _PLAIN_COLUMNS[name])
        raise InvalidArgumentError(
            f"unknown column {name!r}: use one of {', '.join(sorted(_PLAIN_COLUMNS))},"
            f" {', '.join(_GIT_COLUMNS)},"
            " or params.<name>, metrics.<name>, tags.<name>, data.<name>.hash",
            argument="column",
            value=name,
        )

    @model_serializer(mode="wrap")
    def _dump_with_history(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        # Read the history and the captured files first, so that their skipped lines
        # are in the dump; parts left out of the dump are not read.
        if self._metrics_source is None:
            self._loaded_history()
        else:
            self._report_metric_skips(self._metrics_source)
        excluded = info.exclude if isinstance(info.exclude, (set, dict)) else ()
        for part in _CAPTURED_FIELDS:
            if part not in excluded:
                getattr(self, part)
        dumped: dict[str, Any] = handler(self)
        return dumped

    def _once(self, part: str, read: Callable[[], _T]) -> _T:
        if part not in self._captured:
            self._captured[part] = read()
        return cast(_T, self._captured[part])

    def _report(self, file_name: str, problems: list[SkippedLine]) -> None:
        self.skipped.extend(problems)
        warn_problems(f"{RUNS_DIR}/{self.id}/{file_name}", problems)

    def _read_environment(self) -> Environment | None:
        if self._run_dir is None:
            return None
        path = latest_file(self._run_dir, ENVIRONMENT)
        document, problems = read_json_object(path)
        environment = None
        if document is not None:
            environment, more = parse_environment(document, path.name)
            problems += more
        self._report(path.name, problems)
        return environment

    def _read_git(self) -> GitState | None:
        if self._run_dir is None:
            return None
        path = latest_file(self._run_dir, GIT)
        document, problems = read_json_object(path)
        state = None
        if document is not None:
            state, more = parse_git(document, path.name)
            problems += more
        self._report(path.name, problems)
        return state

    def _read_data(self) -> list[DataRecord]:
        if self._run_dir is None:
            return []
        records, skipped = read_data(self._run_dir)
        self.skipped.extend(skipped)
        warn_skipped(f"{RUNS_DIR}/{self.id}/{DATA}", skipped)
        return records

    def _read_artifacts(self) -> list[ArtifactRecord]:
        if self._run_dir is None:
            return []
        records, skipped = read_artifacts(self._run_dir)
        self.skipped.extend(skipped)
        warn_skipped(f"{RUNS_DIR}/{self.id}/{ARTIFACTS}", skipped)
        return records

    def _loaded_history(self) -> LoadedHistory:
        if self._history is None:
            self._history = self._read_history()
        return self._history

    def _report_metric_skips(self, source: MetricsSource) -> None:
        """Report the lines the metrics files skipped, once per record."""
        if not self._metrics_reported:
            self._metrics_reported = True
            for name, skipped in source.skipped().items():
                self.skipped.extend(skipped)
                warn_skipped(f"{RUNS_DIR}/{self.id}/{name}", skipped)

    def _read_history(self) -> LoadedHistory:
        if self._metrics_source is not None:
            history = self._metrics_source.history()
            self._report_metric_skips(self._metrics_source)
            return history
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


_GIT_COLUMNS = ("git.commit", "git.branch", "git.dirty")


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
