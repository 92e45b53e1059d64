"""Runs and metric history as pandas DataFrames (the optional ``pandas`` extra).

pandas is imported inside these functions only, so ``import runjournal``
stays fast and works without it.

Numbers stay exact: a column of numbers is ``float64`` (every int up to
2**53 is exact in it), unless some value is an int of larger magnitude; then
the column has dtype ``object`` and holds the Python ints and floats as
logged, so they compare identical to what was logged. A column of ints only
(``params.epochs``) is the nullable ``Int64``, so 100 stays 100, not 100.0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from runjournal.errors import InvalidArgumentError, MissingDependencyError
from runjournal.query._history import Steps
from runjournal.query._records import RunRecord
from runjournal.query._select import RunQuery, TimeBound
from runjournal.query._store import RunRefs, Store, Where
from runjournal.query._view import RunView
from runjournal.query._writers import only_writers, wanted_writers
from runjournal.typing import PathLike

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Engine", "load_metrics", "load_runs", "metrics_frame", "runs_frame", "views_frame"]

Engine: TypeAlias = Literal["pandas", "polars"]
"""The DataFrame library a loader returns a frame of."""

_EXACT_FLOAT_INT = 2**53
"""Every int of at most this magnitude is exact as a float64."""
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def load_runs(
    store: Store | PathLike | None = None,
    *,
    experiment: str | None = None,
    status: str | Collection[str] | None = None,
    tags: Mapping[str, Any] | None = None,
    where: Where | str | None = None,
    since: TimeBound | None = None,
    until: TimeBound | None = None,
    sort: str | None = None,
    limit: int | None = None,
    engine: Engine = "pandas",
    cache: bool | None = None,
) -> Any:
    """The runs as a DataFrame, one row per run.

    The columns are ``run_id, name, experiment, status, start_time, end_time,
    duration, host, git.commit, git.branch, git.dirty``, then
    ``params.<name>``, ``metrics.<name>``, ``tags.<name>`` and
    ``data.<name>.hash``, each group sorted by name. Times are
    ``datetime64[ns, UTC]``, ``duration`` is float seconds, ``git.dirty`` is
    the nullable ``boolean``, and a ``metrics.<name>`` column holds the last
    value of each run. The ``git.*`` columns (null for a run without git
    state) read each run's small ``git.json``, ``data.*`` its ``data.jsonl``;
    ``environment.json`` is not read. The filters, ``sort`` and ``limit`` are
    those of :meth:`Store.runs`; filters are applied to the runs' summaries
    before any history is read. With the query cache (the default), only what
    was appended since the last query is read.

    Args:
        store: A :class:`Store` or the path of one (default: the current store).
        experiment: Only runs of this experiment.
        status: Only runs with this status, or one of these statuses.
        tags: Only runs with all these tags at these values.
        where: A filter expression (``docs/query.md``) or a function of the record.
        since: Only runs started at or after this time (see :meth:`Store.runs`).
        until: Only runs started before this time.
        sort: A column to sort by, with a leading ``-`` for descending.
        limit: At most this many runs.
        engine: ``"pandas"`` (a pandas DataFrame) or ``"polars"`` (a polars DataFrame).
        cache: Use the query cache (default: the store's).

    Raises:
        MissingDependencyError: pandas (or polars) is not installed.
        FilterError: ``where`` does not parse.

    Example:
        >>> from pathlib import Path
        >>> from runjournal.store import init_store
        >>> load_runs(init_store(Path("empty-store").absolute())).shape
        (0, 11)
    """
    opened = _store(store)
    if engine == "polars":
        from runjournal.query._engines import runs_polars

        query = RunQuery.build(
            experiment, status, tags, where, since=since, until=until, sort=sort, limit=limit
        )
        return runs_polars(opened._views(query, cache=cache, table=True))
    _check_engine(engine)
    return opened.to_pandas(
        experiment,
        status,
        tags,
        where,
        since=since,
        until=until,
        sort=sort,
        limit=limit,
        cache=cache,
    )


def load_metrics(
    store: Store | PathLike | None = None,
    runs: RunRefs = None,
    keys: str | Collection[str] | None = None,
    *,
    steps: Steps | None = None,
    raw: bool = False,
    every: int | None = None,
    max_points: int | None = None,
    wide: bool = False,
    engine: Engine = "pandas",
    cache: bool | None = None,
    system: bool = False,
    writer: str | Collection[str] | None = None,
) -> Any:
    """Metric history, one row per value: ``run_id, step, time, key, value``.

    ``raw`` adds ``segment`` and keeps the rows that later segments replaced;
    a run with several metrics files adds ``writer``. ``step`` is int64 and
    ``time`` datetime64[ns, UTC]. Only the metrics files of the runs asked
    for are read, and of them only the columns of ``keys`` (from the query
    cache; a file is parsed only where it grew).

    Args:
        store: A :class:`Store` or the path of one (default: the current store).
        runs: Run ids, id prefixes, names or records; None for every run.
        keys: A metric name or names; None for all.
        steps: An inclusive ``(lo, hi)`` step range; either side may be None.
        raw: Every row with its segment, instead of the latest segment's per step.
        every: Downsample each series (run, writer, key) in buckets of this
            many points, keeping the first, last, smallest and largest of each,
            so that spikes survive (``docs/query.md``).
        max_points: Downsample each series to at most this many points (at least 4).
        wide: One row per (run, step) and one column per key (the value
            logged last at that step), instead of one row per value.
        engine: ``"pandas"`` or ``"polars"``.
        cache: Use the query cache (default: the store's).
        system: Add the system samples of ``system.jsonl`` and of every
            ``system.<writer>.jsonl`` (``docs/system-metrics.md``) after each
            run's metrics: keys ``system/<series>``, step the sample's number
            in its file (0, 1, ...), and the ``writer`` as for metrics.
            ``keys``, ``steps`` and ``raw`` apply to them; ``every`` and
            ``max_points`` do not (samples are few); ``wide`` does not combine
            with it.
        writer: Only the rows of this writer or these writers: ``main`` for a
            run's main writer (``metrics.jsonl``, ``system.jsonl``), else the
            name of an extra writer (``metrics.<writer>.jsonl``,
            ``system.<writer>.jsonl``; ``docs/distributed.md``).

    Raises:
        MissingDependencyError: pandas (or polars) is not installed.

    Example:
        >>> from pathlib import Path
        >>> from runjournal.store import init_store
        >>> list(load_metrics(init_store(Path("empty-store").absolute()), raw=True).columns)
        ['run_id', 'step', 'time', 'key', 'value', 'segment']
    """
    opened = _store(store)
    frame = opened.metrics_to_pandas(
        runs,
        keys,
        steps=steps,
        raw=raw,
        every=every,
        max_points=max_points,
        wide=wide,
        cache=cache,
        system=system,
    )
    if (writers := wanted_writers(writer)) is not None:
        frame = only_writers(frame, opened.path, writers)
    if engine == "polars":
        from runjournal.query._engines import frame_to_polars

        return frame_to_polars(frame)
    _check_engine(engine)
    return frame


def _check_engine(engine: object) -> None:
    if engine not in ("pandas", "polars"):
        raise InvalidArgumentError(
            f"engine must be 'pandas' or 'polars', not {engine!r}", argument="engine", value=engine
        )


def views_frame(views: Iterable[RunView]) -> pd.DataFrame:
    """The run table of some run views (the same frame as :func:`runs_frame` of their records)."""
    from runjournal.query._table import views_frame as table

    return table(list(views))


def runs_frame(runs: Iterable[RunRecord | RunView]) -> pd.DataFrame:
    """The run table of some records; see :func:`load_runs`.

    Example:
        >>> runs_frame([]).columns[0]
        'run_id'
    """
    _require_pandas()
    import pandas as pd

    records = list(runs)
    columns: dict[str, Any] = {
        "run_id": _text([run.id for run in records]),
        "name": _text([run.name for run in records]),
        "experiment": _text([run.experiment for run in records]),
        "status": _text([run.status for run in records]),
        "start_time": _datetimes([run.start_time for run in records]),
        "end_time": _datetimes([run.end_time for run in records]),
        "duration": pd.Series([run.duration for run in records], dtype="float64"),
        "host": _text([run.host for run in records]),
        **_git_columns(records),
    }
    for prefix, per_run, suffix in (
        ("params", [run.flat_params for run in records], ""),
        ("metrics", [run.metrics for run in records], ""),
        ("tags", [run.tags for run in records], ""),
        ("data", [_data_hashes(run) for run in records], ".hash"),
    ):
        for key in sorted({key for values in per_run for key in values}):
            column = [values.get(key, _MISSING) for values in per_run]
            columns[f"{prefix}.{key}{suffix}"] = _values(column, int_column=True)
    return pd.DataFrame(columns)


def _git_columns(records: list[RunRecord | RunView]) -> dict[str, pd.Series]:
    import pandas as pd

    states = [run.git for run in records]
    return {
        "git.commit": _text([state.commit if state else None for state in states]),
        "git.branch": _text([state.branch if state else None for state in states]),
        "git.dirty": pd.Series(
            [pd.NA if state is None or state.dirty is None else state.dirty for state in states],
            dtype="boolean",
        ),
    }


def _data_hashes(run: RunRecord | RunView) -> dict[str, str | None]:
    return {name: record.hash for name, record in run.data_by_name.items()}


def metrics_frame(rows: list[dict[str, Any]], *, raw: bool = False) -> pd.DataFrame:
    """The long history table of some rows; see :func:`load_metrics`.

    Example:
        >>> row = {"run_id": "r1", "step": 0, "time": 0.0, "key": "x", "value": 2**60}
        >>> metrics_frame([row])["value"].dtype
        dtype('O')
    """
    _require_pandas()
    import pandas as pd

    columns: dict[str, Any] = {
        "run_id": _text([row["run_id"] for row in rows]),
        "step": pd.Series([row["step"] for row in rows], dtype="int64"),
        "time": _epoch_times([row["time"] for row in rows]),
        "key": _text([row["key"] for row in rows]),
        "value": _values([row["value"] for row in rows]),
    }
    if raw or any("segment" in row for row in rows):
        columns["segment"] = pd.Series([row.get("segment", 0) for row in rows], dtype="int64")
    if any("writer" in row for row in rows):
        columns["writer"] = _text([row.get("writer") for row in rows])
    return pd.DataFrame(columns)


class _Missing:
    """A value a run does not have (unlike None, which a param may be)."""


_MISSING: Any = _Missing()


def _values(values: list[Any], *, int_column: bool = False) -> pd.Series:
    """A column of logged values: as exact as the values need, as plain as they allow.

    With ``int_column``, a column of ints only is a nullable ``Int64`` (one
    param or metric per column); the long ``value`` column stays ``float64``
    whatever the keys, so that its dtype does not depend on the data.
    """
    import pandas as pd

    present = [value for value in values if value is not _MISSING]
    if all(_is_number(value) for value in present):  # also an empty column: float64
        if any(isinstance(value, int) and abs(value) > _EXACT_FLOAT_INT for value in present):
            return pd.Series([None if v is _MISSING else v for v in values], dtype=object)
        if (
            int_column
            and present
            and all(type(v) is int and _INT64_MIN <= v <= _INT64_MAX for v in present)
        ):
            return pd.Series([pd.NA if v is _MISSING else v for v in values], dtype="Int64")
        return pd.Series([float("nan") if v is _MISSING else v for v in values], dtype="float64")
    if present and len(present) == len(values) and all(type(v) is bool for v in values):
        return pd.Series(values, dtype=bool)
    if present and all(isinstance(value, str) for value in present):
        return _text([None if v is _MISSING else v for v in values])
    return pd.Series([None if v is _MISSING else v for v in values], dtype=object)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(values: list[str | None]) -> pd.Series:
    import pandas as pd

    return pd.Series(values, dtype="str")


def _datetimes(values: list[dt.datetime | None]) -> pd.Series:
    import pandas as pd

    stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    return stamps.astype("datetime64[ns, UTC]")


def _epoch_times(values: list[float | None]) -> pd.Series:
    import pandas as pd

    seconds = pd.Series(values, dtype="float64")
    return pd.to_datetime(seconds, unit="s", utc=True).astype("datetime64[ns, UTC]")


def _store(store: Store | PathLike | None) -> Store:
    return store if isinstance(store, Store) else Store(store)


def _require_pandas() -> None:
    """Import pandas, or raise the error that says how to install it."""
    try:
        import pandas  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError("pandas", extra="pandas") from error
