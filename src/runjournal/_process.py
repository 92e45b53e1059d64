"""Who is writing: the identity of a process, and whether a recorded one still lives.

A run records its host, pid and the process start time. On the same host a
reader can then tell a live writer from a dead one even when the pid has been
reused by another process since.

Writer and reader compute the start time with the same function,
:func:`start_time`. On Linux it is read from ``/proc/<pid>/stat`` and
``/proc/stat`` exactly as psutil computes ``Process.create_time()`` (the same
fields, the same float operations, so the same bits), without importing
psutil (about 10 ms); elsewhere, or when ``/proc`` cannot be read, psutil
answers. Runs recorded by either way compare equal.

Example:
    >>> import os
    >>> me = current()
    >>> me.pid == os.getpid(), is_alive(me)
    (True, True)
"""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import NamedTuple

__all__ = ["ProcessIdentity", "current", "hostname", "is_alive", "start_time"]

_START_TIME_TOLERANCE = 1.0
"""Seconds two readings of one process's start time may differ (clock rounding)."""

_PROC = "/proc"
_STAT_START_FIELD = 19
"""Index of ``starttime`` (field 22 of proc(5)) among the fields after the command name."""


class ProcessIdentity(NamedTuple):
    """A process as recorded in a run: host, pid and start time (epoch seconds).

    Example:
        >>> ProcessIdentity("node1", 4242, 1795449228.5).pid
        4242
    """

    host: str
    pid: int
    start_time: float | None


@cache
def hostname() -> str:
    """This machine's host name, as runs record it.

    Example:
        >>> hostname() == os.uname().nodename
        True
    """
    return os.uname().nodename  # what socket.gethostname() says, without importing socket


def current() -> ProcessIdentity:
    """The identity of the calling process.

    Example:
        >>> current().pid == os.getpid()
        True
    """
    pid = os.getpid()
    return ProcessIdentity(hostname(), pid, start_time(pid))


def is_alive(process: ProcessIdentity) -> bool | None:
    """Whether a recorded process still runs.

    Returns:
        True or False when the process was recorded on this host; None when it
        ran on another host, where only heartbeats can tell.

    Example:
        >>> is_alive(ProcessIdentity("another-host.example", 1, None)) is None
        True
    """
    if process.host != hostname():
        return None
    started = start_time(process.pid)
    if started is None:
        return False
    if process.start_time is None:
        return True
    return abs(started - process.start_time) <= _START_TIME_TOLERANCE


def start_time(pid: int) -> float | None:
    """When process ``pid`` started, in epoch seconds; None when there is no such process.

    The value is psutil's ``Process(pid).create_time()``, bit for bit: on
    Linux it is computed from ``/proc`` the way psutil does it, elsewhere
    psutil is asked.

    Example:
        >>> import psutil
        >>> start_time(os.getpid()) == psutil.Process(os.getpid()).create_time()
        True
        >>> start_time(0) is None
        True
    """
    if type(pid) is not int or pid <= 0:
        return None  # psutil: no such process (0), or a ValueError (negative)
    if _procfs():
        found = _proc_start_time(pid)
        if not isinstance(found, _Unreadable):
            return found
    return _psutil_start_time(pid)


class _Unreadable:
    """``/proc`` answered in a way we do not parse: let psutil decide."""


_UNREADABLE = _Unreadable()


@cache
def _procfs() -> bool:
    """Whether this is Linux with a ``/proc`` we can read start times from."""
    if not sys.platform.startswith("linux"):
        return False
    return isinstance(_proc_start_time(os.getpid()), float)


@cache
def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")  # psutil's CLOCK_TICKS


def _proc_start_time(pid: int) -> float | _Unreadable | None:
    """The ``create_time()`` of psutil, from ``/proc``: ``starttime / CLK_TCK + btime``."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as file:  # noqa: PTH123 - one small read
            data = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return None  # no such process (psutil: NoSuchProcess)
    except OSError:
        return None  # psutil: AccessDenied, which the caller also reads as unknown
    try:
        # The command name, in parentheses, may hold spaces and ")": split after the last one.
        fields = data[data.rindex(b")") + 2 :].split()
        ticks = float(fields[_STAT_START_FIELD])
        return ticks / _clock_ticks() + _boot_time()
    except (ValueError, IndexError, OSError):
        return _UNREADABLE


def _boot_time() -> float:
    """``btime`` of ``/proc/stat``, read at every call as psutil does (a clock step moves it)."""
    with open(f"{_PROC}/stat", "rb") as file:  # noqa: PTH123 - a kernel file, read whole
        data = file.read()
    at = data.index(b"\nbtime ") + 1
    return float(data[at : data.index(b"\n", at)].strip().split()[1])


def _psutil_start_time(pid: int) -> float | None:
    import psutil  # only where /proc cannot answer: `import runjournal` stays fast

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError, ValueError):
        return None
