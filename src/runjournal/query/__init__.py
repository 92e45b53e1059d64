"""Reading runs back: records, metric history and DataFrames.

Example:
    >>> from pathlib import Path
    >>> from runjournal.store import init_store
    >>> from runjournal.query import Store
    >>> Store(init_store(Path("query-store").absolute())).runs()
    []
"""

from runjournal.query._artifacts import ArtifactFile, ArtifactRecord
from runjournal.query._data import DataRecord
from runjournal.query._engines import export, sql
from runjournal.query._environment import Command, Environment
from runjournal.query._filter import parse_filter
from runjournal.query._git import GitState, PatchInfo
from runjournal.query._history import Steps
from runjournal.query._pandas import load_metrics, load_runs
from runjournal.query._records import (
    AlertRecord,
    LoggedError,
    Note,
    ParamChange,
    RunRecord,
    flatten_params,
)
from runjournal.query._sort import sort_runs
from runjournal.query._status import STATUSES, UNKNOWN
from runjournal.query._store import RunRefs, Store, Where
from runjournal.query._summary import MetricSummary

__all__ = [
    "AlertRecord",
    "ArtifactFile",
    "ArtifactRecord",
    "Command",
    "DataRecord",
    "Environment",
    "GitState",
    "LoggedError",
    "MetricSummary",
    "Note",
    "ParamChange",
    "PatchInfo",
    "RunRecord",
    "RunRefs",
    "STATUSES",
    "Steps",
    "Store",
    "UNKNOWN",
    "Where",
    "export",
    "flatten_params",
    "load_metrics",
    "load_runs",
    "parse_filter",
    "sort_runs",
    "sql",
]
