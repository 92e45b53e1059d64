"""How live runs learn that their process is ending: atexit, exceptions, SIGTERM, fork.

Hooks are installed once, at the first ``start()``, never at import:

- ``atexit``: every live run ends with its pending status (``completed``
  unless a SIGTERM came first);
- ``sys.excepthook``: an uncaught exception ends every live run as ``failed``
  (with the traceback), or ``interrupted`` for ``KeyboardInterrupt``, then the
  previous hook prints the traceback as usual;
- SIGTERM (main thread only, unless it is ignored): every live run is flushed
  and ends as ``killed``; then the previous handler runs, or the default action
  kills the process with the same signal, so the exit status is unchanged;
- SIGINT: the previous handler (``KeyboardInterrupt``) runs as before, only
  never in the middle of a flush of the main thread; ``sys.excepthook`` or
  the ``with`` block then records ``interrupted``;
- ``fork``: in the child, the parent's runs refuse every call (with a warning)
  and never write their parent's buffers or files;
- a run started inside a ``multiprocessing`` child is ended when the child's
  target returns, since such children leave through ``os._exit``, skipping atexit.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from runjournal._writer import defer_until_flushed
from runjournal.format import Status

if TYPE_CHECKING:
    from runjournal.run import Run

__all__ = ["active_run", "live_runs", "register", "unregister"]

_live: list[Run] = []
_installed = False
_install_lock = threading.Lock()
_previous_excepthook: Callable[..., Any] = sys.excepthook
_previous_sigterm: Any = signal.SIG_DFL
_previous_sigint: Any = signal.default_int_handler


def register(run: Run) -> None:
    """Track a started run so that process exit, exceptions and signals end it."""
    _install_once()
    _live.append(run)
    _end_with_multiprocessing_child(run)


def _end_with_multiprocessing_child(run: Run) -> None:
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is None or multiprocessing.parent_process() is None:
        return  # not a multiprocessing child (and not importing it for nothing)
    from multiprocessing import util

    # Run by the child's exit path (util._exit_function) before its os._exit.
    util.Finalize(run, run._end_from_lifecycle, args=(Status.COMPLETED, None), exitpriority=10)


def unregister(run: Run) -> None:
    """Stop tracking a run (it has ended)."""
    if run in _live:
        _live.remove(run)


def live_runs() -> list[Run]:
    """The runs this process has started and not ended, oldest first."""
    return list(_live)


def active_run() -> Run | None:
    """The most recently started run that has not ended, if any."""
    return _live[-1] if _live else None


def _install_once() -> None:
    global _installed, _previous_excepthook
    with _install_lock:
        if _installed:
            return
        _installed = True
        atexit.register(_at_exit)
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _install_signal_handlers()


def _install_signal_handlers() -> None:
    global _previous_sigterm, _previous_sigint
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_IGN, None):  # else the program chose to survive SIGTERM
        _previous_sigterm = previous
        signal.signal(signal.SIGTERM, _on_sigterm)
    previous = signal.getsignal(signal.SIGINT)
    if callable(previous):
        _previous_sigint = previous
        signal.signal(signal.SIGINT, _on_sigint)


def _end_all(status: str, exc: BaseException | None = None) -> None:
    for run in reversed(_live[:]):
        run._end_from_lifecycle(status, exc)


def _at_exit() -> None:
    for run in reversed(_live[:]):
        run._end_from_lifecycle(run._exit_status, None)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, traceback: TracebackType | None
) -> None:
    status = Status.INTERRUPTED if issubclass(exc_type, KeyboardInterrupt) else Status.FAILED
    try:
        _end_all(status, exc)
    finally:
        _previous_excepthook(exc_type, exc, traceback)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if not defer_until_flushed(lambda: _previous_sigint(signum, frame)):
        _previous_sigint(signum, frame)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if defer_until_flushed(lambda: _on_sigterm(signum, frame)):
        return
    previous = _previous_sigterm
    if previous in (signal.SIG_DFL, None) or not callable(previous):
        _end_all(Status.KILLED)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # die of the signal, as without runjournal
        return
    # A handler of the program's own (a checkpoint-and-requeue, say) decides
    # whether the process ends; if it does, the runs end as killed.
    runs = _live[:]
    for run in runs:
        run._exit_status = Status.KILLED
        run._flush_quietly()
    previous(signum, frame)
    for run in runs:
        run._exit_status = Status.COMPLETED


def _after_fork_in_child() -> None:
    # The runs stay listed, so that runjournal.log() in the child reaches the
    # inherited run and is refused with a warning rather than an exception.
    for run in _live:
        run._forget_after_fork()
