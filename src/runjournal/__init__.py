"""runjournal: a zero-server experiment logger writing append-only JSON lines.

Write side: :func:`start` returns a :class:`Run` to ``log`` metrics, params,
tags and notes. Read side: :class:`Store` loads runs as :class:`RunRecord`
objects; :func:`load_runs` and :func:`load_metrics` give pandas DataFrames.

The read side (pydantic, pandas) is imported on first use, so that
``import runjournal`` stays fast for training scripts.

Example:
    >>> import runjournal
    >>> with runjournal.start("demo") as run:
    ...     run.log({"loss": 0.1})
    >>> [r.status for r in runjournal.Store().runs(experiment="demo")]
    ['completed']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runjournal import errors
from runjournal._attach import attach
from runjournal._start import active_run, end, log, log_data, log_params, note, start, tag
from runjournal._version import __version__
from runjournal.errors import RunjournalError, RunjournalWarning
from runjournal.run import Run

if TYPE_CHECKING:
    from runjournal.compare import diff
    from runjournal.query import RunRecord, Store, load_metrics, load_runs, sql

__all__ = [
    "Run",
    "RunRecord",
    "RunjournalError",
    "RunjournalWarning",
    "Store",
    "__version__",
    "active_run",
    "attach",
    "diff",
    "end",
    "errors",
    "load_metrics",
    "load_runs",
    "log",
    "log_data",
    "log_params",
    "note",
    "sql",
    "start",
    "tag",
]

_READ_SIDE = frozenset({"RunRecord", "Store", "load_metrics", "load_runs", "sql"})


def __getattr__(name: str) -> Any:
    """Import the read side (pydantic models, pandas helpers) on first use."""
    if name in _READ_SIDE:
        from runjournal import query

        return getattr(query, name)
    if name == "diff":
        from runjournal.compare import diff

        return diff
    raise AttributeError(f"module 'runjournal' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
