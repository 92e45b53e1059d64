"""Who is writing: the identity of a process, and whether a recorded one still lives.

A run records its host, pid and the process start time. On the same host a
reader can then tell a live writer from a dead one even when the pid has been
reused by another process since.
"""

from __future__ import annotations

import os
from functools import cache
from typing import NamedTuple

_START_TIME_TOLERANCE = 1.0
"""Seconds two readings of one process's start time may differ (clock rounding)."""


class ProcessIdentity(NamedTuple):
    """A process as recorded in a run: host, pid and start time (epoch seconds)."""

    host: str
    pid: int
    start_time: float | None


@cache
def hostname() -> str:
    """This machine's host name, as runs record it."""
    return os.uname().nodename  # what socket.gethostname() says, without importing socket


def current() -> ProcessIdentity:
    """The identity of the calling process."""
    pid = os.getpid()
    return ProcessIdentity(hostname(), pid, _start_time(pid))


def is_alive(process: ProcessIdentity) -> bool | None:
    """Whether a recorded process still runs.

    Returns:
        True or False when the process was recorded on this host; None when it
        ran on another host, where only heartbeats can tell.
    """
    if process.host != hostname():
        return None
    started = _start_time(process.pid)
    if started is None:
        return False
    if process.start_time is None:
        return True
    return abs(started - process.start_time) <= _START_TIME_TOLERANCE


def _start_time(pid: int) -> float | None:
    import psutil  # imported here so that `import runjournal` stays fast

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None
