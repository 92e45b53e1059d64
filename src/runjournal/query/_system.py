"""System samples (``system.jsonl``, ``system.<writer>.jsonl``) as rows of the long metric history.

Each series comes back under its name prefixed with ``system/``
(``system/proc/rss_bytes``), so it never mixes with a metric the user logged,
and its ``step`` is the sample's number in its file: 0, 1, 2... in file order,
across segments. The run's main writer samples into ``system.jsonl``; a rank
of ``start(per_rank=True)`` (or an ``attach(..., system_metrics=...)``) into
``system.<writer>.jsonl``. Rows are labelled with their writer as metric rows
are: a run whose metrics and system files come from more than one writer has
a ``writer`` on every row (None for the main writer).

Example:
    >>> system_rows("r1", Path("no-such-run"), None, None, raw=False)
    []
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runjournal.format import JSONL_SUFFIX, decode_value, read_lines
from runjournal.query._history import metric_files, writer_files

if TYPE_CHECKING:
    import pandas as pd

    from runjournal.query._view import RunView

__all__ = [
    "PREFIX",
    "SYSTEM",
    "SYSTEM_PREFIX",
    "run_rows",
    "system_file",
    "system_files",
    "system_rows",
    "with_system",
]

SYSTEM = "system.jsonl"
"""The system samples of a run's main writer."""
SYSTEM_PREFIX = "system."
"""What the file of an extra writer's samples starts with: ``system.<writer>.jsonl``."""
PREFIX = "system/"
"""What the name of a system series starts with in a history frame."""


def system_file(writer: str | None) -> str:
    """The file of a writer's system samples.

    Example:
        >>> system_file(None), system_file("rank1")
        ('system.jsonl', 'system.rank1.jsonl')
    """
    return SYSTEM if writer is None else f"{SYSTEM_PREFIX}{writer}{JSONL_SUFFIX}"


def system_files(run_dir: Path) -> list[tuple[str | None, Path]]:
    """The system files of a run with their writer: the main writer's first, then by name.

    Example:
        >>> system_files(Path("no-such-run"))
        []
    """
    return writer_files(run_dir, SYSTEM)


def system_rows(
    run_id: str,
    run_dir: Path,
    wanted: Collection[str] | None,
    bounds: tuple[float, float] | None,
    *,
    raw: bool,
) -> list[dict[str, Any]]:
    """The rows of one run's system samples, every file's, keys prefixed by ``system/``.

    Each row has a ``writer`` (None for ``system.jsonl``); the callers drop it
    where the run has one writer. A torn or undecodable line is skipped, as
    in every reader; a sample line counts as a step even when none of its
    series is wanted.
    """
    rows: list[dict[str, Any]] = []
    for writer, path in system_files(run_dir):
        rows += _file_rows(run_id, path, writer, wanted, bounds, raw=raw)
    return rows


def _file_rows(
    run_id: str,
    path: Path,
    writer: str | None,
    wanted: Collection[str] | None,
    bounds: tuple[float, float] | None,
    *,
    raw: bool,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for step, record in enumerate(read_lines(path).records):
        values = record.get("s")
        if not isinstance(values, dict) or not _number(record.get("time")):
            continue
        if bounds is not None and not bounds[0] <= step <= bounds[1]:
            continue
        for name, stored in values.items():
            key, value = PREFIX + str(name), decode_value(stored)
            if (wanted is not None and key not in wanted) or not _number(value):
                continue
            row = {"run_id": run_id, "step": step, "time": record["time"], "key": key}
            row["value"] = value
            if raw:
                row["segment"] = record.get("seg", 0) if isinstance(record.get("seg"), int) else 0
            row["writer"] = writer
            rows.append(row)
    return rows


def _writers(run_dir: Path) -> tuple[list[str | None], set[str | None]]:
    """The writers of a run's metrics files, and those of all its metrics and system files."""
    metrics = [writer for writer, _ in metric_files(run_dir)]
    return metrics, {*metrics, *(writer for writer, _ in system_files(run_dir))}


def run_rows(
    run_id: str,
    run_dir: Path,
    metric_rows: list[dict[str, Any]],
    wanted: Collection[str] | None,
    bounds: tuple[float, float],
    *,
    raw: bool,
) -> list[dict[str, Any]]:
    """A run's metric rows followed by its system rows, as ``Store.metrics(system=True)`` gives.

    Every row has a ``writer`` when the run's metrics and system files come
    from more than one writer, and none otherwise.

    Example:
        >>> run_rows("r1", Path("no-such-run"), [], None, (0, 10), raw=False)
        []
    """
    samples = system_rows(run_id, run_dir, wanted, bounds, raw=raw)
    metric_writers, writers = _writers(run_dir)
    if len(writers) <= 1:
        for row in samples:
            del row["writer"]
        return metric_rows + samples
    if len(metric_writers) == 1:  # the metric rows have no writer yet: their file's
        metric_rows = [{**row, "writer": metric_writers[0]} for row in metric_rows]
    return metric_rows + samples


def with_system(
    frame: pd.DataFrame,
    views: Iterable[RunView],
    runs_dir: Path,
    wanted: Collection[str] | None,
    bounds: tuple[float, float],
    *,
    raw: bool,
) -> pd.DataFrame:
    """The history frame with each run's system samples after its metrics.

    The frame gets a ``writer`` column when some run's metrics and system
    files come from more than one writer (or it has one already).
    """
    import pandas as pd

    from runjournal.query._pandas import _text, metrics_frame

    parts, sole, labelled = [], {}, "writer" in frame.columns
    for view in views:
        run_dir = runs_dir / view.id
        rows = system_rows(view.id, run_dir, wanted, bounds, raw=raw)
        metric_writers, writers = _writers(run_dir)
        sole[view.id] = metric_writers[0] if len(metric_writers) == 1 else None
        labelled = labelled or len(writers) > 1
        if rows:
            parts.append(metrics_frame(rows, raw=raw))
    if not parts:
        return frame
    if labelled and "writer" not in frame.columns:
        frame = frame.assign(writer=_text([sole.get(run_id) for run_id in frame["run_id"]]))
    columns = list(frame.columns)
    parts = [frame, *(part.reindex(columns=columns) for part in parts)]
    joined = pd.concat(parts, ignore_index=True)
    order = {run_id: index for index, run_id in enumerate(dict.fromkeys(joined["run_id"]))}
    joined = joined.sort_values("run_id", key=lambda ids: ids.map(order), kind="stable")
    return joined.reset_index(drop=True).astype(frame.dtypes.to_dict())


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
