"""Optional engines: SQL with DuckDB, frames in Polars, exports to Parquet and CSV.

Each engine is an extra; a missing one raises
:class:`~runjournal.errors.MissingDependencyError` whose message is the
command that installs it:

- ``runjournal[duckdb]``: :func:`sql` runs SQL over three views, ``runs``
  (the run table of :func:`~runjournal.load_runs`), ``params`` (one row per
  run and flattened param: ``run_id, key, value`` with ``value`` the param
  as JSON text, and ``number``, the value when it is a number) and
  ``metrics`` (the long history of :func:`~runjournal.load_metrics`). The
  metric history is loaded only when the query names ``metrics``.
- ``runjournal[polars]``: ``load_runs(engine="polars")``,
  ``load_metrics(engine="polars")`` and :meth:`Store.to_polars`.
- ``runjournal[parquet]``: :func:`export` to Parquet (CSV needs only pandas),
  the metric history written a few hundred runs at a time.

Example:
    >>> from pathlib import Path
    >>> from runjournal.store import init_store
    >>> store = init_store(Path("engine-store").absolute())
    >>> sql("SELECT count(*) AS n FROM runs", store)["n"].tolist()  # doctest: +SKIP
    [0]
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from runjournal.errors import InvalidArgumentError, MissingDependencyError, StoreWriteError
from runjournal.query._json import to_tagged
from runjournal.query._view import RunView
from runjournal.typing import PathLike

if TYPE_CHECKING:
    import pandas as pd

    from runjournal.query._store import Store

__all__ = ["export", "frame_to_polars", "params_frame", "runs_polars", "sql"]

ExportFormat = Literal["parquet", "csv"]
_EXPORT_BATCH = 256
"""Runs whose history is written to an export file at once (bounds the memory used)."""
_METRICS_WORD = re.compile(r"\bmetrics\b", re.IGNORECASE)


def _require(module: str, package: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(package, extra=extra) from error


# ------------------------------------------------------------------ DuckDB


def sql(
    query: str,
    store: Store | PathLike | None = None,
    *,
    engine: Literal["pandas", "polars"] = "pandas",
    cache: bool | None = None,
) -> Any:
    """Run a SQL query with DuckDB over the views ``runs``, ``params`` and ``metrics``.

    ``runs`` has the columns of :func:`runjournal.load_runs`, ``params`` one
    row per run and flattened param (``run_id, key, value, number``: the value
    as JSON text, and as a double when it is a number) and ``metrics`` those
    of :func:`runjournal.load_metrics` (loaded only when the query names it).

    Args:
        query: The SQL, in DuckDB's dialect.
        store: A :class:`Store` or the path of one (default: the current store).
        engine: The result as a ``"pandas"`` or a ``"polars"`` DataFrame.
        cache: Use the query cache (default: the store's).

    Raises:
        MissingDependencyError: duckdb (or pandas) is not installed.
        InvalidArgumentError: DuckDB refused the query (its message says why).

    Example:
        >>> from pathlib import Path
        >>> from runjournal.store import init_store
        >>> store = init_store(Path("sql-store").absolute())
        >>> sql("SELECT count(*) AS runs FROM runs", store)["runs"].tolist()
        [0]
    """
    duckdb = _require("duckdb", "duckdb", "duckdb")
    _require("pandas", "pandas", "duckdb")
    opened = _open(store)
    connection = duckdb.connect()
    try:
        runs = opened.to_pandas(cache=cache)
        connection.register("runs", runs)
        connection.register("params", params_frame(opened, cache=cache))
        if _METRICS_WORD.search(query):
            connection.register("metrics", opened.metrics_to_pandas(cache=cache))
        try:
            result = connection.sql(query)
            if result is None:  # a statement without a result (SET, CREATE ...)
                return None
            return result.pl() if engine == "polars" else result.df()
        except duckdb.Error as error:
            raise InvalidArgumentError(
                f"DuckDB could not run the query: {error}", argument="query", value=query
            ) from error
    finally:
        connection.close()


def params_frame(store: Store, *, cache: bool | None = None) -> pd.DataFrame:
    """One row per run and flattened param: ``run_id, key, value`` (JSON text), ``number``.

    Example:
        >>> from pathlib import Path
        >>> from runjournal.query import Store
        >>> from runjournal.store import init_store
        >>> list(params_frame(Store(init_store(Path("p-store").absolute()))).columns)
        ['run_id', 'key', 'value', 'number']
    """
    import pandas as pd

    from runjournal.query._select import RunQuery

    rows = [
        (view.id, key, _json_text(value), _number(value))
        for view in store._views(RunQuery(), cache=cache)
        for key, value in view.flat_params.items()
    ]
    return pd.DataFrame(
        {
            "run_id": pd.Series([row[0] for row in rows], dtype="str"),
            "key": pd.Series([row[1] for row in rows], dtype="str"),
            "value": pd.Series([row[2] for row in rows], dtype="str"),
            "number": pd.Series([row[3] for row in rows], dtype="float64"),
        }
    )


def _json_text(value: Any) -> str:
    return orjson.dumps(to_tagged(value)).decode()


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


# ------------------------------------------------------------------ Polars


def runs_polars(views: Sequence[RunView]) -> Any:
    """The run table of some views as a Polars DataFrame (columns as in ``load_runs``).

    Numbers are ``Int64`` (ints only) or ``Float64``, strings ``String``,
    booleans ``Boolean``, times ``Datetime(us, UTC)``; a param or tag column
    mixing kinds (or holding lists and objects) is ``String``, each value as
    JSON text.

    Raises:
        MissingDependencyError: polars is not installed.
    """
    pl = _require("polars", "polars", "polars")
    columns: dict[str, Any] = {
        "run_id": pl.Series([view.id for view in views], dtype=pl.String),
        "name": pl.Series([view.name for view in views], dtype=pl.String),
        "experiment": pl.Series([view.experiment for view in views], dtype=pl.String),
        "status": pl.Series([view.status for view in views], dtype=pl.String),
        "start_time": pl.Series([view.start_time for view in views], dtype=_TIME(pl)),
        "end_time": pl.Series([view.end_time for view in views], dtype=_TIME(pl)),
        "duration": pl.Series([view.duration for view in views], dtype=pl.Float64),
        "host": pl.Series([view.host for view in views], dtype=pl.String),
    }
    git = [view.git_columns for view in views]
    columns["git.commit"] = pl.Series([g[0] for g in git], dtype=pl.String)
    columns["git.branch"] = pl.Series([g[1] for g in git], dtype=pl.String)
    columns["git.dirty"] = pl.Series([g[2] for g in git], dtype=pl.Boolean)
    for prefix, per_run, suffix in (
        ("params", [view.flat_params for view in views], ""),
        ("metrics", [view.metrics for view in views], ""),
        ("tags", [view.tags for view in views], ""),
        ("data", [view.data_hashes for view in views], ".hash"),
    ):
        for key in sorted({key for values in per_run for key in values}):
            values = [per.get(key) for per in per_run]
            columns[f"{prefix}.{key}{suffix}"] = _polars_series(pl, values)
    return pl.DataFrame(columns)


def _TIME(pl: Any) -> Any:  # noqa: N802 (reads as the dtype it is)
    return pl.Datetime("us", "UTC")


def _polars_series(pl: Any, values: list[Any]) -> Any:
    present = [value for value in values if value is not None]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if present and all(type(v) is int and -(2**63) <= v < 2**63 for v in present):
            return pl.Series(values, dtype=pl.Int64)
        if all(not isinstance(v, int) or abs(v) <= 2**53 for v in present):
            return pl.Series([None if v is None else float(v) for v in values], dtype=pl.Float64)
    elif all(isinstance(v, bool) for v in present):
        return pl.Series(values, dtype=pl.Boolean)
    elif all(isinstance(v, str) for v in present):
        return pl.Series(values, dtype=pl.String)
    return pl.Series([None if v is None else _json_text(v) for v in values], dtype=pl.String)


def frame_to_polars(frame: pd.DataFrame) -> Any:
    """A pandas frame of metric history as a Polars DataFrame (NumPy columns, no copy of text).

    Raises:
        MissingDependencyError: polars is not installed.
    """
    pl = _require("polars", "polars", "polars")
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        kind = str(series.dtype)
        if kind.startswith("datetime64"):
            naive = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
            columns[name] = pl.Series(name, naive).dt.replace_time_zone("UTC")
        elif kind in ("int64", "float64"):
            columns[name] = pl.Series(name, series.to_numpy())
        elif kind == "object":
            columns[name] = _polars_series(pl, [None if v is None else v for v in series])
        else:
            values = series.astype(object).where(series.notna(), None).tolist()
            columns[name] = pl.Series(name, values, dtype=pl.String)
    return pl.DataFrame(columns)


# ------------------------------------------------------------------ export


def export(
    store: Store | PathLike | None,
    destination: PathLike,
    *,
    format: ExportFormat = "parquet",
    where: str | None = None,
    cache: bool | None = None,
) -> list[Path]:
    """Write the run table, the params and the metric history to ``destination``.

    Writes ``runs.<ext>``, ``params.<ext>`` and ``metrics.<ext>`` in the
    directory ``destination`` (created if needed), ``<ext>`` being
    ``parquet`` or ``csv``. The history is written a few hundred runs at a
    time, so a store bigger than memory can be exported. Columns that mix
    kinds of values (or hold lists) are written as JSON text.

    Args:
        store: A :class:`Store` or the path of one (default: the current store).
        destination: The directory to write into.
        format: ``"parquet"`` (needs ``runjournal[parquet]``) or ``"csv"`` (needs pandas).
        where: Only the runs this filter expression keeps.
        cache: Use the query cache (default: the store's).

    Returns:
        The files written.

    Raises:
        MissingDependencyError: pyarrow (Parquet) or pandas is not installed.
        InvalidArgumentError: an unknown format.
        StoreWriteError: the files cannot be written.

    Example:
        >>> from pathlib import Path
        >>> from runjournal.store import init_store
        >>> store = init_store(Path("export-store").absolute())
        >>> [path.name for path in export(store, "out", format="csv")]
        ['runs.csv', 'params.csv', 'metrics.csv']
    """
    if format not in ("parquet", "csv"):
        raise InvalidArgumentError(
            f"format must be 'parquet' or 'csv', not {format!r}", argument="format", value=format
        )
    _require("pandas", "pandas", "pandas" if format == "csv" else "parquet")
    writer = _ParquetWriter if format == "parquet" else _CsvWriter
    if format == "parquet":
        _require("pyarrow", "pyarrow", "parquet")
    opened = _open(store)
    directory = Path(destination)
    from runjournal.query._select import RunQuery

    query = RunQuery.build(where=where)
    views = opened._views(query, cache=cache, table=True)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = [
            writer.whole(directory / f"runs.{format}", _plain(opened.to_pandas(where=where))),
            writer.whole(directory / f"params.{format}", _params_of(opened, views)),
        ]
        metrics = directory / f"metrics.{format}"
        with writer(metrics) as output:
            for frame in _history_batches(views):
                output.add(frame)
        written.append(metrics)
    except OSError as error:
        message = f"cannot write the export to {directory}: {error}"
        raise StoreWriteError(message, path=directory) from error
    return written


def _params_of(store: Store, views: list[RunView]) -> pd.DataFrame:
    frame = params_frame(store)
    kept = {view.id for view in views}
    return frame[frame["run_id"].isin(kept)].reset_index(drop=True)


def _history_batches(views: list[RunView]) -> Iterator[pd.DataFrame]:
    import pandas as pd

    from runjournal.query._downsample import Sampling
    from runjournal.query._history_frame import history_frame

    for start in range(0, max(len(views), 1), _EXPORT_BATCH):
        batch = views[start : start + _EXPORT_BATCH]
        frame = history_frame(batch, None, steps=None, raw=False, sampling=Sampling(), wide=False)
        if "writer" not in frame.columns:  # the same columns in every batch
            frame["writer"] = pd.Series([None] * len(frame), dtype="str")
        frame["value"] = frame["value"].astype("float64")  # ints beyond 2**53 are rounded
        yield frame


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every column of mixed or nested values as JSON text."""
    for name in frame.columns:
        if str(frame[name].dtype) == "object":
            values = frame[name].tolist()
            if not all(v is None or isinstance(v, str) for v in values):
                frame[name] = [None if v is None else _json_text(v) for v in values]
    return frame


class _ParquetWriter:
    """Appends frames to one Parquet file, a row group each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: Any = None

    @classmethod
    def whole(cls, path: Path, frame: pd.DataFrame) -> Path:
        with cls(path) as writer:
            writer.add(frame)
        return path

    def __enter__(self) -> _ParquetWriter:
        return self

    def add(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def __exit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
        elif not self.path.exists():
            self.path.touch()


class _CsvWriter:
    """Appends frames to one CSV file, the header once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header = True

    @classmethod
    def whole(cls, path: Path, frame: pd.DataFrame) -> Path:
        with cls(path) as writer:
            writer.add(frame)
        return path

    def __enter__(self) -> _CsvWriter:
        self.path.write_text("")
        return self

    def add(self, frame: pd.DataFrame) -> None:
        if not self.header and frame.empty:
            return
        frame.to_csv(self.path, mode="a", header=self.header, index=False)
        self.header = False

    def __exit__(self, *exc: object) -> None:
        return None


def _open(store: Store | PathLike | None) -> Store:
    from runjournal.query._store import Store

    return store if isinstance(store, Store) else Store(store)
