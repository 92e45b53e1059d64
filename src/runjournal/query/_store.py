"""The :class:`Store`: listing, finding and closing runs, and their metric history.

Reading never creates or changes a store; only :meth:`Store.close` appends
an ``end`` event to one run.
"""

from __future__ import annotations

import os
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
from runjournal.format import RUN_EVENTS, RUN_ID_PATTERN, RUNS_DIR, Status, read_lines
from runjournal.query._append import append_line
from runjournal.query._history import Steps
from runjournal.query._reader import load_run
from runjournal.query._records import RunRecord
from runjournal.query._status import STATUSES
from runjournal.store import find_store, open_store
from runjournal.typing import PathLike

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RunRefs", "Store", "Where"]

Where: TypeAlias = Callable[[RunRecord], bool]
"""A predicate on runs, for ``Store.runs(where=...)``."""

RunRefs: TypeAlias = Iterable[str | RunRecord] | str | RunRecord | None
"""Runs to read history from: ids, id prefixes, names or records; None for all."""

_MAX_LISTED_MATCHES = 10
_MISSING = object()


class Store:
    r"""A runjournal store, opened for reading.

    Args:
        path: The store directory; by default ``RUNJOURNAL_STORE``, else the
            nearest ``.runjournal`` in the working directory or its parents.

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

    def __init__(self, path: PathLike | None = None) -> None:
        self.path: Path = open_store(find_store(path))

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def runs(
        self,
        experiment: str | None = None,
        status: str | Collection[str] | None = None,
        tags: Mapping[str, Any] | None = None,
        where: Where | str | None = None,
    ) -> list[RunRecord]:
        """The runs of the store, oldest first (by start time, then id).

        Reads each run's ``run.jsonl`` and ``params.jsonl`` only; metrics are
        read when a record's ``metrics``, ``summary`` or ``history`` is used.

        Args:
            experiment: Only runs of this experiment.
            status: Only runs with this status, or one of these statuses.
            tags: Only runs that have all these tags with these values.
            where: Only runs for which this function returns true.

        Raises:
            InvalidArgumentError: an unknown status, or ``where`` given as a string.

        Example:
            >>> from runjournal.store import init_store
            >>> Store(init_store(Path("empty-store").absolute())).runs(status="running")
            []
        """
        keep = _run_filter(experiment, status, tags, where)
        now = time.time()
        records = [load_run(run_dir, now) for run_dir in self._run_dirs()]
        return sorted(filter(keep, records), key=lambda run: (run.start_time, run.id))

    def run(self, ref: str) -> RunRecord:
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
        if not isinstance(ref, str) or not ref:
            raise InvalidArgumentError(
                f"a run reference is a run id, id prefix or name, not {ref!r}",
                argument="ref",
                value=ref,
            )
        run_ids = self._run_ids()
        if ref in run_ids:
            return load_run(self._runs_dir / ref, time.time())
        matches = [run_id for run_id in run_ids if run_id.startswith(ref)]
        if len(matches) != 1:
            named = [run_id for run_id in run_ids if self._name_of(run_id) == ref]
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
        return load_run(self._runs_dir / matches[0], time.time())

    def metrics(
        self,
        runs: RunRefs = None,
        keys: str | Collection[str] | None = None,
        *,
        steps: Steps | None = None,
        raw: bool = False,
    ) -> list[dict[str, Any]]:
        """Metric history of several runs as rows with a ``run_id``, run by run.

        Args:
            runs: Run ids, prefixes, names or records; None for every run.
            keys: A metric name or names; None for all.
            steps: An inclusive ``(lo, hi)`` step range.
            raw: Every row with its segment, instead of the default view.

        Example:
            >>> from runjournal.store import init_store
            >>> Store(init_store(Path("empty-store").absolute())).metrics()
            []
        """
        return [
            {"run_id": record.id, **row}
            for record in self._records(runs)
            for row in record.history(keys, steps=steps, raw=raw)
        ]

    def to_pandas(
        self,
        experiment: str | None = None,
        status: str | Collection[str] | None = None,
        tags: Mapping[str, Any] | None = None,
        where: Where | str | None = None,
    ) -> pd.DataFrame:
        """The runs as a DataFrame, one row per run; see :func:`runjournal.load_runs`.

        Example:
            >>> from runjournal.store import init_store
            >>> list(Store(init_store(Path("empty-store").absolute())).to_pandas().columns)[:3]
            ['run_id', 'name', 'experiment']
        """
        from runjournal.query._pandas import runs_frame

        return runs_frame(self.runs(experiment, status, tags, where))

    def metrics_to_pandas(
        self,
        runs: RunRefs = None,
        keys: str | Collection[str] | None = None,
        *,
        steps: Steps | None = None,
        raw: bool = False,
    ) -> pd.DataFrame:
        """The metric history as a long DataFrame; see :func:`runjournal.load_metrics`.

        Example:
            >>> from runjournal.store import init_store
            >>> list(Store(init_store(Path("empty-store").absolute())).metrics_to_pandas().columns)
            ['run_id', 'step', 'time', 'key', 'value']
        """
        from runjournal.query._pandas import metrics_frame

        return metrics_frame(self.metrics(runs, keys, steps=steps, raw=raw))

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

    @property
    def _runs_dir(self) -> Path:
        return self.path / RUNS_DIR

    def _run_ids(self) -> list[str]:
        """The ids of the run directories; other entries of ``runs/`` are ignored."""
        try:
            with os.scandir(self._runs_dir) as entries:
                return sorted(
                    entry.name
                    for entry in entries
                    if RUN_ID_PATTERN.fullmatch(entry.name) and entry.is_dir()
                )
        except FileNotFoundError:
            return []

    def _run_dirs(self) -> list[Path]:
        return [self._runs_dir / run_id for run_id in self._run_ids()]

    def _name_of(self, run_id: str) -> str | None:
        """The name in a run's first start event, read quietly (no warnings)."""
        try:
            events = read_lines(self._runs_dir / run_id / RUN_EVENTS).records
        except OSError:
            return None
        for event in events:
            if event.get("event") == "start":
                name = event.get("name")
                return name if isinstance(name, str) else None
        return None

    def _records(self, runs: RunRefs) -> list[RunRecord]:
        if runs is None:
            return self.runs()
        if isinstance(runs, (str, RunRecord)):
            runs = [runs]
        return [ref if isinstance(ref, RunRecord) else self.run(ref) for ref in runs]


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


def _run_filter(
    experiment: str | None,
    status: str | Collection[str] | None,
    tags: Mapping[str, Any] | None,
    where: Where | str | None,
) -> Callable[[RunRecord], bool]:
    """One predicate for all the filters of :meth:`Store.runs`, checked up front."""
    statuses = _statuses(status)
    if isinstance(where, str):
        raise InvalidArgumentError(
            "where= takes a function of a RunRecord for now; filter expressions in a"
            f" string are not supported yet: {where!r}",
            argument="where",
            value=where,
        )
    wanted_tags = dict(tags or {})

    def keep(run: RunRecord) -> bool:
        return (
            (experiment is None or run.experiment == experiment)
            and (statuses is None or run.status in statuses)
            and all(run.tags.get(key, _MISSING) == value for key, value in wanted_tags.items())
            and (where is None or bool(where(run)))
        )

    return keep


def _statuses(status: str | Collection[str] | None) -> frozenset[str] | None:
    if status is None:
        return None
    statuses = frozenset({status} if isinstance(status, str) else status)
    unknown = sorted(str(value) for value in statuses - STATUSES)
    if unknown:
        raise InvalidArgumentError(
            f"unknown status {', '.join(unknown)}: use {', '.join(sorted(STATUSES))}",
            argument="status",
            value=status,
        )
    return statuses


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
