"""Selecting the rows of some writers of a metric history (``load_metrics(writer=...)``).

A run's main writer appends to ``metrics.jsonl`` and is named ``main`` here;
an extra writer (``runjournal.attach``, a rank of ``start(per_rank=True)``)
appends to ``metrics.<writer>.jsonl``. A frame has a ``writer`` column only
when some run in it has more than one metrics file; there the main writer's
rows hold a null writer.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from runjournal.errors import InvalidArgumentError
from runjournal.format import RUNS_DIR
from runjournal.query._history import metric_files

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MAIN_WRITER", "only_writers", "wanted_writers"]

MAIN_WRITER = "main"
"""The name that selects the rows of a run's main writer (``metrics.jsonl``)."""


def wanted_writers(writer: str | Collection[str] | None) -> frozenset[str] | None:
    """The writer names asked for, checked; None for all.

    Example:
        >>> sorted(wanted_writers(["rank1", "main"]))
        ['main', 'rank1']
    """
    if writer is None:
        return None
    names = (writer,) if isinstance(writer, str) else tuple(writer)
    if not names or not all(isinstance(name, str) for name in names):
        raise InvalidArgumentError(
            f"writer must be a writer name or a collection of names, not {writer!r}",
            argument="writer",
            value=writer,
        )
    return frozenset(names)


def only_writers(frame: pd.DataFrame, store: Path, wanted: frozenset[str]) -> pd.DataFrame:
    """The rows of ``frame`` (long or wide) logged by the ``wanted`` writers."""
    if "writer" in frame.columns:
        labels = frame["writer"].astype(object).where(frame["writer"].notna(), MAIN_WRITER)
        keep = labels.isin(wanted)
    else:  # each run of the frame has one metrics file: keep the runs where it is wanted
        runs = {run_id for run_id in frame["run_id"].unique() if _sole(store, run_id) in wanted}
        keep = frame["run_id"].isin(runs)
    return frame[keep.to_numpy()].reset_index(drop=True)


def _sole(store: Path, run_id: str) -> str:
    files = metric_files(store / RUNS_DIR / run_id)
    writer = files[0][0] if files else None
    return writer if writer is not None else MAIN_WRITER
