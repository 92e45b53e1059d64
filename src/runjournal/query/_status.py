"""The status of a run: recorded by its last ``end`` event, or inferred by the reader.

``docs/format.md`` gives the rule. When the last lifecycle event (``start``,
``resume`` or ``end``) is an ``end``, its ``status`` is the run's. Otherwise
nobody recorded how the run finished, or it has not finished:

- on the host that wrote it, the run is ``running`` while a process with the
  recorded pid *and* start time lives (a reused pid does not count), and
  ``crashed`` otherwise;
- on another host no process can be checked, so the run is ``running`` until
  the last ``deadline`` of its ``start``, ``resume`` or ``heartbeat`` events
  has passed, and ``stale`` after that.

A run directory with no lifecycle event at all (being created this very
moment, or damaged) has the reader-only status ``unknown``.
"""

from __future__ import annotations

from typing import Any

from runjournal import _process
from runjournal.format import Status

__all__ = ["STATUSES", "UNKNOWN", "infer_status"]

UNKNOWN = "unknown"
"""The status of a run directory without a ``start`` or ``resume`` event."""

STATUSES = frozenset(Status.ALL | {UNKNOWN})
"""Every status a reader reports."""

_MAX_PID = 2**32


def infer_status(last_lifecycle: dict[str, Any] | None, deadline: float | None, now: float) -> str:
    """The status of a run from its last lifecycle event and last heartbeat deadline.

    Args:
        last_lifecycle: The last ``start``, ``resume`` or ``end`` event, or None.
        deadline: The last ``deadline`` recorded by the run, or None.
        now: The current time, epoch seconds.

    Example:
        >>> infer_status({"event": "end", "status": "completed"}, None, 0.0)
        'completed'
        >>> start = {"event": "start", "host": "a-host-far-away", "pid": 1}
        >>> infer_status(start, 100.0, 50.0), infer_status(start, 100.0, 150.0)
        ('running', 'stale')
    """
    if last_lifecycle is None:
        return UNKNOWN
    if last_lifecycle.get("event") == "end":
        status = last_lifecycle.get("status")
        return status if isinstance(status, str) and status else UNKNOWN
    alive = _process_alive(last_lifecycle)
    if alive is not None:
        return Status.RUNNING if alive else Status.CRASHED
    if deadline is not None and now <= deadline:
        return Status.RUNNING
    return Status.STALE


def _process_alive(event: dict[str, Any]) -> bool | None:
    """Whether the writer recorded by ``event`` lives; None when it cannot be checked here."""
    host, pid, started = event.get("host"), event.get("pid"), event.get("pid_start")
    if not isinstance(host, str):
        return None  # without a host, only the deadline can tell
    if type(pid) is not int or not 0 < pid < _MAX_PID:
        return False if host == _process.hostname() else None  # no such process can live
    if not isinstance(started, (int, float)) or isinstance(started, bool):
        started = None
    return _process.is_alive(_process.ProcessIdentity(host, pid, started))
