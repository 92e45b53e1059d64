"""Metric history as a DataFrame, built column by column with NumPy from the runs' folds.

:func:`history_frame` gives exactly the frame that
:func:`~runjournal.query._pandas.metrics_frame` makes of
:meth:`Store.metrics` rows, without making a Python object per value: for
each run it takes the columns of the keys asked for (from the query cache's
chunks, mapped without copying, or from what was just parsed), keeps the
default view (only for the few keys a resumed run re-logged), the step range
and the downsampled points, sorts them as the rows are sorted (by step, then
file, line and place in the line), and concatenates runs. Fifty million
points of one key take a few hundred megabytes, not the tens of gigabytes
dicts would.

Values stay exact: the ``value`` column is float64 (every int up to 2**53 is
exact in it); when some value is an int beyond that, the frame is made from
rows instead, as ``metrics_frame`` would, with a column of Python numbers.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runjournal.errors import InvalidArgumentError
from runjournal.query._columns import Batch
from runjournal.query._downsample import Sampling
from runjournal.query._history import Steps, wanted_keys
from runjournal.query._metricsfile import ChunkError, MetricsPart
from runjournal.query._view import RunView

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["history_frame", "wide_frame"]

_EXACT = 2**53


class _NeedsRowsError(Exception):
    """A value a float64 column cannot hold exactly: make the frame from rows."""


@dataclass
class _Columns:
    """The columns of the frame being built, one array per run and column."""

    run: list[np.ndarray] = field(default_factory=list)
    step: list[np.ndarray] = field(default_factory=list)
    time: list[np.ndarray] = field(default_factory=list)
    key: list[np.ndarray] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)
    seg: list[np.ndarray] = field(default_factory=list)
    writer: list[np.ndarray] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)
    writers: dict[str | None, int] = field(default_factory=dict)
    with_writer: bool = False


def history_frame(
    views: list[RunView],
    keys: str | Collection[str] | None,
    *,
    steps: Steps | None,
    raw: bool,
    sampling: Sampling,
    wide: bool,
) -> pd.DataFrame:
    """The history of some runs as a DataFrame (see :func:`runjournal.load_metrics`).

    Raises:
        MissingDependencyError: pandas is not installed.
        InvalidArgumentError: bad ``keys`` or ``steps``, or ``wide`` with ``raw``.
    """
    from runjournal.query._pandas import _require_pandas, metrics_frame

    _require_pandas()
    if wide and raw:
        raise InvalidArgumentError(
            "wide=True shows one value per step: it cannot show raw rows",
            argument="wide",
            value=wide,
        )
    wanted = wanted_keys(keys)
    bounds = _bounds(steps)
    try:
        frame = _frame(_collect(views, wanted, bounds, raw, sampling), raw)
    except _NeedsRowsError:
        rows = [
            {"run_id": view.id, **row}
            for view in views
            for row in sampling.rows(view.history(keys, steps=steps, raw=raw))
        ]
        frame = metrics_frame(rows, raw=raw)
    return wide_frame(frame) if wide else frame


def _bounds(steps: Steps | None) -> tuple[float, float]:
    from runjournal.query._history import _step_bounds

    return _step_bounds(steps)


def _collect(
    views: list[RunView],
    wanted: frozenset[str] | None,
    bounds: tuple[float, float],
    raw: bool,
    sampling: Sampling,
) -> _Columns:
    import numpy as np

    columns = _Columns()
    for view in views:
        pieces = list(_run_pieces(view, wanted, bounds, raw, columns))
        if not pieces:
            continue
        run = _in_order(pieces)
        if sampling.active:
            run = _sampled(run, sampling)
        code = len(columns.run_ids)
        columns.run_ids.append(view.id)
        columns.run.append(np.full(len(run["step"]), code, dtype=np.int32))
        columns.key.append(run["key"].astype(np.int32))
        columns.writer.append(run["writer"].astype(np.int32))
        for name in ("step", "time", "value", *(("seg",) if raw else ())):
            getattr(columns, name).append(run[name])
    return columns


def _in_order(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The rows of a run's pieces in the rows' order: step, then file, line, place in line."""
    import numpy as np

    if len(pieces) == 1:
        run = pieces[0]  # one key of one file: in file order; sorted by step already, usually
        steps = run["step"]
        if len(steps) < 2 or bool((steps[1:] >= steps[:-1]).all()):
            return run
    else:
        run = {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}
    order = np.lexsort((run["slot"], run["line"], run["rank"], run["step"]))
    return {name: array[order] for name, array in run.items()}


def _run_pieces(
    view: RunView,
    wanted: frozenset[str] | None,
    bounds: tuple[float, float],
    raw: bool,
    columns: _Columns,
) -> Iterator[dict[str, np.ndarray]]:
    """The rows of one run, per (file, key), as arrays: step, time, seg, line, slot, value..."""
    if view._record is not None:
        raise _NeedsRowsError  # a record the caller built: its own history, as rows
    files = _saved_files(view, wanted)
    if files is None:
        part = view.metrics_part()
        try:
            files = _file_batches(part, wanted)
        except ChunkError:
            part._rebuild()
            files = _file_batches(part, wanted)
    with_writer = len(files) > 1
    for rank, (writer_name, keys, batches) in enumerate(files):
        writer = columns.writers.setdefault(writer_name, len(columns.writers))
        for key, dirty in keys.items():
            if wanted is not None and key not in wanted:
                continue
            piece = _key_piece(batches, key, bounds, raw=raw, dirty=dirty)
            if piece is None:
                continue
            columns.with_writer = columns.with_writer or with_writer
            code = columns.keys.setdefault(key, len(columns.keys))
            size = len(piece["step"])
            piece["rank"] = _full(size, rank)
            piece["key"] = _full(size, code)
            piece["writer"] = _full(size, writer)
            yield piece


_Files = list[tuple[str | None, dict[str, bool], list[Batch]]]
"""Per metrics file: its writer, its keys (whether each is dirty), its columns."""


def _saved_files(view: RunView, wanted: frozenset[str] | None) -> _Files | None:
    """An unchanged run's columns straight from the cache's chunks (its digest is not read)."""
    entry = view._entry
    loader = entry.chunk_loader() if entry is not None else None
    if entry is None or loader is None or entry.chunks is None:
        return None
    view._warn_metrics()
    try:
        return [
            (writer, keys, [loader(name, wanted, numpy=True) for name in chunks])
            for _, writer, chunks, keys in entry.chunks
        ]
    except (ChunkError, TypeError, ValueError):
        return None


def _file_batches(part: MetricsPart, wanted: frozenset[str] | None) -> _Files:
    return [
        (
            fold.writer,
            {key: state.dirty for key, state in fold.keys.items()},
            fold.batches(part.loader, wanted, numpy=True),
        )
        for fold in part.files
    ]


def _full(size: int, value: int) -> np.ndarray:
    import numpy as np

    return np.full(size, value, dtype=np.int64)


def _key_piece(
    batches: list[Batch], key: str, bounds: tuple[float, float], *, raw: bool, dirty: bool
) -> dict[str, np.ndarray] | None:
    import numpy as np

    parts: list[dict[str, np.ndarray]] = []
    for batch in batches:
        column = batch.keys.get(key)
        if column is None:
            continue
        idx = None if column.idx is None else np.asarray(column.idx, dtype=np.int64)

        def pick(array: np.ndarray, idx: np.ndarray | None = idx) -> np.ndarray:
            return array if idx is None else array[idx]

        values = _values(column.values)
        slot = column.slot
        parts.append(
            {
                "step": pick(np.asarray(batch.step, dtype=np.int64)),
                "time": pick(_times(batch.time)),
                "seg": pick(_ints(batch.seg)),
                "line": pick(np.asarray(batch.line, dtype=np.int64)),
                "slot": np.full(len(values), slot) if isinstance(slot, int) else np.asarray(slot),
                "value": values,
            }
        )
    if not parts:
        return None
    piece = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    keep = (piece["step"] >= bounds[0]) & (piece["step"] <= bounds[1])
    if dirty and not raw:
        keep &= _latest_segments(piece["step"], piece["seg"])
    if not keep.all():
        piece = {name: array[keep] for name, array in piece.items()}
    return piece if len(piece["step"]) else None


def _times(times: Any) -> np.ndarray:
    import numpy as np

    if isinstance(times, np.ndarray):
        return times
    return np.array([math.nan if t is None else t for t in times], dtype=np.float64)


def _ints(values: Any) -> np.ndarray:
    import numpy as np

    try:
        return np.asarray(values, dtype=np.int64)
    except OverflowError:
        raise _NeedsRowsError from None


def _values(values: Any) -> np.ndarray:
    """A float64 array of the values, when that holds them exactly."""
    import numpy as np

    array = values if isinstance(values, np.ndarray) else np.array(values, dtype=object)
    if array.dtype == np.float64:
        return array
    if array.dtype == np.int64:
        if bool(((array > _EXACT) | (array < -_EXACT)).any()):  # not abs(): -2**63 overflows
            raise _NeedsRowsError
        return array.astype(np.float64)
    if array.dtype == np.int8:  # never a value column; kept for completeness
        return array.astype(np.float64)
    items = array.tolist()
    if any(isinstance(v, int) and not -_EXACT <= v <= _EXACT for v in items):
        raise _NeedsRowsError
    return np.array(items, dtype=np.float64)


def _latest_segments(step: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Which rows belong to the latest segment that logged their step."""
    import numpy as np

    unique, inverse = np.unique(step, return_inverse=True)
    latest = np.full(len(unique), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest, inverse, seg)
    kept: np.ndarray = seg == latest[inverse]
    return kept


def _sampled(run: dict[str, np.ndarray], sampling: Sampling) -> dict[str, np.ndarray]:
    """The rows of one run (sorted) that downsampling keeps, series by series."""
    import numpy as np

    series = run["writer"] * (int(run["key"].max()) + 1) + run["key"]
    keep = np.zeros(len(series), dtype=bool)
    order = np.argsort(series, kind="stable")
    bounds = np.flatnonzero(np.diff(series[order])) + 1
    for group in np.split(order, bounds):
        keep[group] = sampling.mask(run["value"][group])
    return {name: array[keep] for name, array in run.items()}


def _frame(columns: _Columns, raw: bool) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    from runjournal.query._pandas import _epoch_times

    def joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        """The parts as one array; the parts are let go at once (memory: one column at a time)."""
        array = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
        parts.clear()
        return array

    frame: dict[str, Any] = {
        "run_id": _labels(joined(columns.run, np.int32), columns.run_ids),
        "step": pd.Series(joined(columns.step, np.int64), dtype="int64"),
        "time": _epoch_times(joined(columns.time, np.float64)),  # type: ignore[arg-type]
        "key": _labels(joined(columns.key, np.int32), list(columns.keys)),
        "value": pd.Series(joined(columns.value, np.float64), dtype="float64"),
    }
    if raw:
        frame["segment"] = pd.Series(joined(columns.seg, np.int64), dtype="int64")
    writers = joined(columns.writer, np.int32)
    if columns.with_writer:
        frame["writer"] = _labels(writers, list(columns.writers))
    return pd.DataFrame(frame, copy=False)


def _labels(codes: np.ndarray, labels: Sequence[str | None]) -> pd.Series:
    """A ``str`` column of labels chosen by code (None for a missing label)."""
    import numpy as np
    import pandas as pd

    if not len(codes):
        return pd.Series([], dtype="str")
    if getattr(pd.Series([], dtype="str").dtype, "storage", None) == "pyarrow":
        import pyarrow as pa  # pandas stores "str" in Arrow: decode there, no Python strings

        dictionary = pa.array(list(labels), pa.large_string())
        decoded = pa.DictionaryArray.from_arrays(pa.array(codes), dictionary).dictionary_decode()
        return pd.Series(decoded, dtype="str")
    table = np.array(labels, dtype=object)
    return pd.Series(table[codes], dtype="str")


def wide_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, [writer,] step), one column per key: the value logged last there.

    ``time`` is the latest time of the step's values. Keys are sorted by name;
    rows keep the order of the long frame.

    Example:
        >>> import pandas as pd
        >>> long = pd.DataFrame({"run_id": ["r", "r", "r"], "step": [0, 0, 1],
        ...                      "time": pd.to_datetime([1, 2, 3], unit="s", utc=True),
        ...                      "key": ["b", "a", "b"], "value": [1.0, 2.0, 3.0]})
        >>> wide_frame(long)[["run_id", "step", "a", "b"]].values.tolist()
        [['r', 0, 2.0, 1.0], ['r', 1, nan, 3.0]]
    """
    import pandas as pd

    index = ["run_id", "writer", "step"] if "writer" in frame.columns else ["run_id", "step"]
    last = frame.drop_duplicates(subset=[*index, "key"], keep="last")
    values = last.pivot(index=index, columns="key", values="value")
    times = frame.groupby(index, sort=False, dropna=False)["time"].max()
    order = pd.MultiIndex.from_frame(frame[index].drop_duplicates())
    values = values.reindex(order)
    keys = sorted(str(key) for key in values.columns)
    wide = pd.concat([times.reindex(order).rename("time"), values[keys]], axis=1)
    wide.columns.name = None
    return wide.reset_index()
