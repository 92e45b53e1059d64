"""Reading runs back: records, metric history and DataFrames.

Example:
    >>> from pathlib import Path
    >>> from runjournal.store import init_store
    >>> from runjournal.query import Store
    >>> Store(init_store(Path("query-store").absolute())).runs()
    []
"""

from runjournal.query._history import Steps
from runjournal.query._pandas import load_metrics, load_runs
from runjournal.query._records import LoggedError, Note, ParamChange, RunRecord, flatten_params
from runjournal.query._sort import sort_runs
from runjournal.query._status import STATUSES, UNKNOWN
from runjournal.query._store import RunRefs, Store, Where
from runjournal.query._summary import MetricSummary

__all__ = [
    "LoggedError",
    "MetricSummary",
    "Note",
    "ParamChange",
    "RunRecord",
    "RunRefs",
    "STATUSES",
    "Steps",
    "Store",
    "UNKNOWN",
    "Where",
    "flatten_params",
    "load_metrics",
    "load_runs",
    "sort_runs",
]
