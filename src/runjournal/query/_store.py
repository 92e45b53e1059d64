"""The :class:`Store`: listing, finding and closing runs, and their metric history.

Reading never creates or changes a store; only :meth:`Store.close` appends
an ``end`` event to one run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from runjournal import _process
from runjournal.errors import (
    AmbiguousRunError,
    InvalidArgumentError,
    RunInProgressError,
    RunNotFoundError,
)
from runjournal.format import RUN_EVENTS, RUNS_DIR, Status, read_lines
from runjournal.query._append import append_line
from runjournal.query._catalog import Catalog, Entry
from runjournal.query._catalog import run_ids as catalog_run_ids
from runjournal.query._downsample import Sampling
from runjournal.query._history import Steps
from runjournal.query._metricsfile import paused_gc
from runjournal.query._reader import load_run
from runjournal.query._records import RunRecord
from runjournal.query._select import RunQuery, TimeBound
from runjournal.query._view import RunView, make_view, record_view
from runjournal.store import find_store, open_store
from runjournal.typing import PathLike

if TYPE_CHECKING:
    import pandas as pd

    from runjournal.query._artifacts import ArtifactRecord

__all__ = ["RunRefs", "Store", "Where"]

Where: TypeAlias = Callable[[RunRecord], bool]
"""A predicate on runs, for ``Store.runs(where=...)``."""

RunRefs: TypeAlias = Iterable[str | RunRecord] | str | RunRecord | None
"""Runs to read history from: ids, id prefixes, names or records; None for all."""

_MAX_LISTED_MATCHES = 10


class Store:
    r"""A runjournal store, opened for reading.

    Args:
        path: The store directory; by default ``RUNJOURNAL_STORE``, else the
            nearest ``.runjournal`` in the working directory or its parents.
        cache: Use the query cache under ``<store>/.cache/query`` by default
            (each method also takes ``cache=``). It is derived from the run
            files only, safe to delete, and never changes an answer.

    Raises:
        StoreError: there is no store there (reading never creates one).
        UnsupportedFormatError: the store was written by a newer runjournal.

    Example:
        >>> from pathlib import Path
        >>> from runjournal.store import init_store
        >>> root = init_store(Path("demo-store").absolute())
        >>> (root / "runs" / "r1").mkdir()
        >>> _ = (root / "runs" / "r1" / "run.jsonl").write_text(
        ...     '{"event": "start", "time": 1795000000.0, "seg": 0, "format": 1, "name": "demo",'
        ...     ' "host": "far-away", "pid": 7, "deadline": 1795000150.0}\n'
        ...     '{"event": "end", "time": 1795000060.0, "seg": 0, "status": "completed"}\n')
        >>> store = Store(root)
        >>> [(run.id, run.name, run.status, run.duration) for run in store.runs()]
        [('r1', 'demo', 'completed', 60.0)]
    """

    def __init__(self, path: PathLike | None = None, *, cache: bool = True) -> None:
        self.path: Path = open_store(find_store(path))
        self.cache = cache

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def runs(
        self,
        experiment: str | None = None,
        status: str | Collection[str] | None = None,
        tags: Mapping[str, Any] | None = None,
        where: Where | str | None = None,
        *,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        sort: str | None = None,
        limit: int | None = None,
        cache: bool | None = None,
    ) -> list[RunRecord]:
        """The runs of the store, oldest first (by start time, then id), or as ``sort`` says.

        Reads each run's ``run.jsonl`` and ``params.jsonl``; metrics are read
        when a record's ``metrics``, ``summary`` or ``history`` is used, or
        when ``where`` or ``sort`` name a ``metrics.`` column (then only their
        summaries). With the query cache (``.cache/query``, on by default),
        only what was appended since the last query is read.

        Args:
            experiment: Only runs of this experiment.
            status: Only runs with this status, or one of these statuses.
            tags: Only runs that have all these tags with these values.
            where: A filter expression such as ``"params.lr >= 0.01 and
                metrics.val_loss < 0.3"`` (``docs/query.md``), or a function of
                the record that returns true for the runs to keep.
            since: Only runs started at or after this time: a datetime (naive
                is local time), a date, epoch seconds, an ISO 8601 string, or
                a duration back from now (``"7d"``, ``"12h"``).
            until: Only runs started before this time (same forms).
            sort: A column to sort by (``"metrics.val/acc"``), with a leading
                ``-`` for descending; runs without a value come last.
            limit: At most this many runs, after sorting.
            cache: Use the query cache (default: the store's ``cache``).

        Raises:
            InvalidArgumentError: an unknown status or sort column, a bad time or limit.
            FilterError: ``where`` is an expression that does not parse.

        Example:
            >>> from runjournal.store import init_store
            >>> store = Store(init_store(Path("empty-store").absolute()))
            >>> store.runs(status="running", where="params.lr > 0.1", sort="-start_time")
            []
        """
        query = RunQuery.build(
            experiment, status, tags, where, since=since, until=until, sort=sort, limit=limit
        )
        with paused_gc():
            return [view.record() for view in self._views(query, cache=cache)]

    def run(self, ref: str, *, cache: bool | None = None) -> RunRecord:
        """The run with this id, unique id prefix, or unique name.

        Raises:
            RunNotFoundError: no run matches.
            AmbiguousRunError: several runs match; ``.matches`` holds their ids.

        Example:
            >>> from runjournal.store import init_store
            >>> try:
            ...     Store(init_store(Path("empty-store").absolute())).run("nope")
            ... except RunNotFoundError as error:
            ...     print(error.ref)
            nope
        """
        run_id = self._resolve(ref, cache=cache)
        (view,) = self._views(RunQuery(), cache=cache, only=[run_id])
        return view.record()

    def metrics(
        self,
        runs: RunRefs = None,
        keys: str | Collection[str] | None = None,
        *,
        steps: Steps | None = None,
        raw: bool = False,
        every: int | None = None,
        max_points: int | None = None,
        cache: bool | None = None,
        system: bool = False,
    ) -> list[dict[str, Any]]:
        """Metric history of several runs as rows with a ``run_id``, run by run.

        Args:
            runs: Run ids, prefixes, names or records; None for every run.
            keys: A metric name or names; None for all.
            steps: An inclusive ``(lo, hi)`` step range.
            raw: Every row with its segment, instead of the default view.
            every: Downsample each series (run, writer and key) in buckets of
                this many points, keeping the first, last, smallest and
                largest of each (``docs/query.md``).
            max_points: Downsample each series to at most this many points, the same way.
            cache: Use the query cache (default: the store's ``cache``).
            system: Add each run's system samples after its metrics, as
                :func:`runjournal.load_metrics` does (``docs/system-metrics.md``).

        Example:
            >>> from runjournal.store import init_store
            >>> Store(init_store(Path("empty-store").absolute())).metrics(system=True)
            []
        """
        sampling = Sampling.build(every, max_points)
        if system:
            from runjournal.query._history import _step_bounds, wanted_keys
            from runjournal.query._system import run_rows

            wanted, bounds = wanted_keys(keys), _step_bounds(steps)
        rows: list[dict[str, Any]] = []
        with paused_gc():
            for view in self._history_views(runs, cache=cache):
                history = view.history(keys, steps=steps, raw=raw)
                metric_rows = [{"run_id": view.id, **row} for row in sampling.rows(history)]
                if system:
                    run_dir = self._runs_dir / view.id
                    metric_rows = run_rows(view.id, run_dir, metric_rows, wanted, bounds, raw=raw)
                rows += metric_rows
        return rows

    def to_pandas(
        self,
        experiment: str | None = None,
        status: str | Collection[str] | None = None,
        tags: Mapping[str, Any] | None = None,
        where: Where | str | None = None,
        *,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        sort: str | None = None,
        limit: int | None = None,
        cache: bool | None = None,
    ) -> pd.DataFrame:
        """The runs as a DataFrame, one row per run; see :func:`runjournal.load_runs`.

        Example:
            >>> from runjournal.store import init_store
            >>> list(Store(init_store(Path("empty-store").absolute())).to_pandas().columns)[:3]
            ['run_id', 'name', 'experiment']
        """
        from runjournal.query._pandas import views_frame

        query = RunQuery.build(
            experiment, status, tags, where, since=since, until=until, sort=sort, limit=limit
        )
        with paused_gc():
            return views_frame(self._views(query, cache=cache, table=True))

    def to_polars(
        self,
        experiment: str | None = None,
        status: str | Collection[str] | None = None,
        tags: Mapping[str, Any] | None = None,
        where: Where | str | None = None,
        *,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        sort: str | None = None,
        limit: int | None = None,
        cache: bool | None = None,
    ) -> Any:
        """The runs as a Polars DataFrame (the ``polars`` extra); as :meth:`to_pandas`.

        Raises:
            MissingDependencyError: polars is not installed.

        Example:
            >>> from runjournal.store import init_store
            >>> Store(init_store(Path("empty-store").absolute())).to_polars().columns[:2]
            ['run_id', 'name']
        """
        from runjournal.query._engines import runs_polars

        query = RunQuery.build(
            experiment, status, tags, where, since=since, until=until, sort=sort, limit=limit
        )
        with paused_gc():
            return runs_polars(self._views(query, cache=cache, table=True))

    def metrics_to_pandas(
        self,
        runs: RunRefs = None,
        keys: str | Collection[str] | None = None,
        *,
        steps: Steps | None = None,
        raw: bool = False,
        every: int | None = None,
        max_points: int | None = None,
        wide: bool = False,
        cache: bool | None = None,
        system: bool = False,
    ) -> pd.DataFrame:
        """The metric history as a DataFrame; see :func:`runjournal.load_metrics`.

        ``system=True`` adds each run's system samples after its metrics
        (``docs/system-metrics.md``); it does not combine with ``wide``.

        Example:
            >>> from runjournal.store import init_store
            >>> list(Store(init_store(Path("empty-store").absolute())).metrics_to_pandas().columns)
            ['run_id', 'step', 'time', 'key', 'value']
        """
        from runjournal.query._history_frame import history_frame

        if system and wide:
            raise InvalidArgumentError(
                "system=True cannot be wide: system samples have steps of their own",
                argument="system",
                value=system,
            )
        sampling = Sampling.build(every, max_points)
        with paused_gc():
            views = self._history_views(runs, cache=cache)
            frame = history_frame(views, keys, steps=steps, raw=raw, sampling=sampling, wide=wide)
            if system:
                from runjournal.query._history import _step_bounds, wanted_keys
                from runjournal.query._system import with_system

                wanted, bounds = wanted_keys(keys), _step_bounds(steps)
                frame = with_system(frame, views, self._runs_dir, wanted, bounds, raw=raw)
            return frame

    def close(self, ref: str, status: str = Status.CRASHED) -> RunRecord:
        r"""Record the end of a run that died without one, and return it as now read.

        Appends ``{"event": "end", ..., "status": status, "closed_by": {...}}``
        to the run's ``run.jsonl``. Only for a run whose process is gone: a run
        still running on another host would then have two writers. The end's
        ``time`` is the last sign of life the run left (its last event or
        metric line), so its duration is how long it really ran; ``closed_at``
        says when it was closed.

        Raises:
            InvalidArgumentError: ``status`` is not one an end event records,
                or the run has ended already.
            RunInProgressError: the run's process is alive on this host.

        Example:
            >>> from runjournal.store import init_store
            >>> store = Store(init_store(Path("close-store").absolute()))
            >>> (store.path / "runs" / "r9").mkdir()
            >>> _ = (store.path / "runs" / "r9" / "run.jsonl").write_text(
            ...     '{"event": "start", "time": 1795000000.0, "seg": 0, "host": "gone",'
            ...     ' "pid": 1}\n')
            >>> store.close("r9").status
            'crashed'
        """
        if status not in Status.RECORDED:
            raise InvalidArgumentError(
                f"cannot close a run as {status!r}:"
                f" use one of {', '.join(sorted(Status.RECORDED))}",
                argument="status",
                value=status,
            )
        record = self.run(ref)
        _check_closable(record)
        me = _process.current()
        run_dir = self._runs_dir / record.id
        append_line(
            run_dir / RUN_EVENTS,
            {
                "event": "end",
                "time": _last_seen(run_dir, record),
                "seg": max(record.segments - 1, 0),
                "status": status,
                "closed_by": {"host": me.host, "pid": me.pid},
                "closed_at": time.time(),
            },
        )
        return load_run(self._runs_dir / record.id, time.time())

    def artifact_path(self, run: str | RunRecord, name: str) -> Path:
        """The file holding an artifact's content: its blob (read it, never write it).

        For an artifact logged with ``copy=False``, the path it was logged
        from (which may have changed or gone since). A directory artifact has
        no single file: use :meth:`get_artifact`.

        Args:
            run: A run reference (id, id prefix or name) or a record.
            name: The artifact name; the latest artifact of that name.

        Raises:
            ArtifactError: the run has no artifact of that name, or it is a directory.

        Example:
            >>> import pathlib, runjournal
            >>> with runjournal.start() as run:
            ...     _ = run.log_text("notes.txt", "hello")
            >>> runjournal.Store().artifact_path(run.id, "notes.txt").read_text()
            'hello'
        """
        from runjournal.query._artifacts import stored_path

        return stored_path(self.path, self._artifact(run, name))

    def get_artifact(self, run: str | RunRecord, name: str, target: PathLike) -> Path:
        """Copy an artifact out of the store to ``target``; a directory artifact is rebuilt.

        Raises:
            ArtifactError: no such artifact, ``target`` exists, or a blob is missing.

        Example:
            >>> import runjournal
            >>> with runjournal.start() as run:
            ...     _ = run.log_json("eval.json", {"acc": 0.5})
            >>> print(runjournal.Store().get_artifact(run.id, "eval.json", "out.json").read_text())
            {
              "acc": 0.5
            }
            <BLANKLINE>
        """
        from runjournal.query._artifacts import export_artifact

        return export_artifact(self.path, self._artifact(run, name), Path(target))

    def _artifact(self, run: str | RunRecord, name: str) -> ArtifactRecord:
        from runjournal.errors import ArtifactError
        from runjournal.query._artifacts import latest_artifacts

        record = run if isinstance(run, RunRecord) else self.run(run)
        found = latest_artifacts(record.artifacts).get(name)
        if found is None:
            known = ", ".join(repr(n) for n in latest_artifacts(record.artifacts)) or "none"
            raise ArtifactError(
                f"run {record.id} has no artifact {name!r} (its artifacts: {known})", name=name
            )
        return found

    @property
    def _runs_dir(self) -> Path:
        return self.path / RUNS_DIR

    def _catalog(self, cache: bool | None) -> Catalog:
        return Catalog(self.path, cache=self.cache if cache is None else cache)

    def _views(
        self,
        query: RunQuery,
        *,
        cache: bool | None,
        only: list[str] | None = None,
        metrics: bool = False,
        table: bool = False,
        history: bool = False,
    ) -> list[RunView]:
        """The runs the query keeps, in its order, as views.

        Args:
            query: The filters, order and limit.
            cache: Use the query cache (None: the store's default).
            only: Only these run ids.
            metrics: Bring the metrics summaries up to date (else only if the query needs them).
            table: The run table will be made: bring its git and data columns up to date too.
            history: The metric history will be read: fold the metrics files (the cache
                keeps their columns) rather than take summaries from end events.
        """
        catalog = self._catalog(cache)
        needs = {
            "metrics": metrics or table or query.needs_metrics,
            "captured": table or query.needs_captured,
            "history": history,
        }
        entries = catalog.entries(**needs, only=only)
        now = time.time()
        views = [make_view(entry, now) for entry in entries.values()]
        views = _settled(views, entries, lambda ids: catalog.entries(**needs, only=ids))
        views.sort(key=lambda view: view.sort_key)
        kept = [view for view in views if query.keep(view)]
        if query.where is not None:
            where = query.where
            kept = [view for view in kept if bool(where(view.record()))]
        return query.order(kept)

    def _history_views(self, runs: RunRefs, *, cache: bool | None) -> list[RunView]:
        """The views of the runs whose history is asked for, in order, with fresh metrics."""
        if runs is None:
            return self._views(RunQuery(), cache=cache, metrics=True, history=True)
        refs = [runs] if isinstance(runs, (str, RunRecord)) else list(runs)
        resolved = [
            ref if isinstance(ref, RunRecord) else self._resolve(ref, cache=cache) for ref in refs
        ]
        ids = [ref for ref in resolved if isinstance(ref, str)]
        found = (
            self._views(RunQuery(), cache=cache, only=ids, metrics=True, history=True)
            if ids
            else []
        )
        views = {view.id: view for view in found}
        return [views[ref] if isinstance(ref, str) else record_view(ref) for ref in resolved]

    def _resolve(self, ref: str, *, cache: bool | None) -> str:
        """The id of the run with this id, unique id prefix, or unique name."""
        if not isinstance(ref, str) or not ref:
            raise InvalidArgumentError(
                f"a run reference is a run id, id prefix or name, not {ref!r}",
                argument="ref",
                value=ref,
            )
        run_ids = catalog_run_ids(self.path)
        if ref in run_ids:
            return ref
        matches = [run_id for run_id in run_ids if run_id.startswith(ref)]
        if len(matches) != 1:
            entries = self._catalog(cache).entries(metrics=False, captured=False)
            named = [run_id for run_id, entry in entries.items() if _name_of(entry) == ref]
            matches = sorted(set(matches) | set(named))
        if not matches:
            raise RunNotFoundError(
                f"no run in {self.path} has the id, id prefix or name {ref!r}"
                " (see `runjournal ls`)",
                ref=ref,
            )
        if len(matches) > 1:
            shown = ", ".join(matches[:_MAX_LISTED_MATCHES])
            more = "" if len(matches) <= _MAX_LISTED_MATCHES else ", ..."
            raise AmbiguousRunError(
                f"{ref!r} matches {len(matches)} runs ({shown}{more}): give more of the id",
                ref=ref,
                matches=matches,
            )
        return matches[0]


def _settled(
    views: list[RunView],
    entries: dict[str, Entry],
    read_again: Callable[[list[str]], dict[str, Entry]],
) -> list[RunView]:
    """The views, with the runs that ended while they were read read again.

    A run whose process writes its ``end`` event and exits between the read of
    its ``run.jsonl`` and the check of that process would read as crashed.
    The process is gone by then, so whatever it wrote is on disk: a run found
    crashed whose ``run.jsonl`` grew since it was read is read once more.
    """
    ended = [
        view.id
        for view in views
        if view.status == Status.CRASHED and view.id in entries and entries[view.id].events_grew()
    ]
    if not ended:
        return views
    now = time.time()
    again = {run_id: make_view(entry, now) for run_id, entry in read_again(ended).items()}
    return [again.get(view.id, view) for view in views]


def _name_of(entry: Entry) -> str | None:
    """The name in a run's first start event (read quietly: no warnings)."""
    name = entry.row.get("name") if entry.row is not None else None
    return name if isinstance(name, str) and name else None


def _last_seen(run_dir: Path, record: RunRecord) -> float:
    """The time of the last event or metric line a run wrote."""
    times = [record.start_time.timestamp()]
    times += [
        event["time"]
        for event in read_lines(run_dir / RUN_EVENTS).records
        if isinstance(event.get("time"), (int, float))
    ]
    times += [row["time"] for row in record.history(raw=True)]
    return max(times)


def _check_closable(record: RunRecord) -> None:
    if record.end_time is not None:
        raise InvalidArgumentError(
            f"run {record.id} has ended already ({record.status}); there is nothing to close",
            argument="ref",
            value=record.id,
        )
    if record.status == Status.RUNNING and record.host == _process.hostname():
        raise RunInProgressError(
            f"run {record.id} is still running on this host (pid {record.pid});"
            " stop it rather than closing it",
            ref=record.id,
        )
