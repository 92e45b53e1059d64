"""Names and numbers of the on-disk layout, format version 1 (see docs/format.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable

FORMAT_VERSION = 1
"""The format this runjournal writes, and the newest it reads."""

STORE_DIRNAME = ".runjournal"
"""The directory name searched for in the working directory and its ancestors."""

STORE_MARKER = "runjournal.json"
RUNS_DIR = "runs"
BLOBS_DIR = "blobs"
CACHE_DIR = ".cache"

RUN_EVENTS = "run.jsonl"
PARAMS = "params.jsonl"
METRICS = "metrics.jsonl"
METRICS_PREFIX = "metrics."
JSONL_SUFFIX = ".jsonl"

TEMP_PREFIX = ".tmp-"
"""Files being written under a temporary name start with this and are never read."""


def writer_file_names(names: Iterable[str], main: str) -> list[tuple[str | None, str]]:
    """The files of one kind among a run directory's names, with their writer, in reading order.

    ``main`` is the main writer's file (``metrics.jsonl``, ``system.jsonl``):
    it comes first (writer None), then every ``<kind>.<writer>.jsonl`` by
    name; temporary files are left out.

    Example:
        >>> writer_file_names(["system.b.jsonl", "run.jsonl", "system.jsonl"], "system.jsonl")
        [(None, 'system.jsonl'), ('b', 'system.b.jsonl')]
    """
    ordered = sorted(names)
    prefix = main.removesuffix(JSONL_SUFFIX) + "."
    files: list[tuple[str | None, str]] = [(None, main)] if main in ordered else []
    for name in ordered:
        if name.startswith(TEMP_PREFIX) or name == main:
            continue
        if name.startswith(prefix) and name.endswith(JSONL_SUFFIX):
            writer = name[len(prefix) : -len(JSONL_SUFFIX)]
            if writer:
                files.append((writer, name))
    return files


RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""What a run id may look like: it names a directory, so it must be a safe file name."""


class Event:
    """The ``event`` values of ``run.jsonl`` lines."""

    START = "start"
    RESUME = "resume"
    TAGS = "tags"
    NOTE = "note"
    HEARTBEAT = "heartbeat"
    ERROR = "error"
    ALERT = "alert"
    END = "end"

    LIFECYCLE = frozenset({START, RESUME, END})


class Status:
    """Run statuses: recorded in an end event, or inferred by a reader."""

    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    KILLED = "killed"
    CRASHED = "crashed"
    RUNNING = "running"
    STALE = "stale"

    RECORDED = frozenset({COMPLETED, FAILED, INTERRUPTED, KILLED, CRASHED})
    """Values ``Run.end`` and ``runjournal close`` accept."""

    ALL = RECORDED | {RUNNING, STALE}
