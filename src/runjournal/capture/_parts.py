"""Run capture parts concurrently under one deadline; a failure is data, never an exception.

Each part runs in a daemon thread of its own, so a part that hangs (a stuck
``nvidia-smi``, a git on a dead NFS mount) can neither delay ``start()``
beyond the deadline nor keep the interpreter from exiting. A part that raises
or is still running at the deadline becomes ``{"part", "message"}``.

Example:
    >>> from runjournal.capture._parts import run_parts
    >>> values, errors = run_parts({"two": lambda: 2, "bad": lambda: 1 / 0}, timeout=1.0)
    >>> values, errors
    ({'two': 2}, [{'part': 'bad', 'message': 'ZeroDivisionError: division by zero'}])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Concurrently", "Outcome", "describe_error", "run_concurrently", "run_parts"]

T = TypeVar("T")


class Outcome(Generic[T]):
    """What one function gave: a value, an exception, or nothing yet (still running).

    Example:
        >>> Outcome().done
        False
    """

    def __init__(self) -> None:
        self.value: T | None = None
        self.error: BaseException | None = None
        self.done = False


class Concurrently(Generic[T]):
    """Functions started in threads of their own at once; :meth:`wait` gives their outcomes.

    Example:
        >>> running = Concurrently({"a": lambda: 1})
        >>> running.wait(1.0)["a"].value
        1
    """

    def __init__(self, functions: Mapping[str, Callable[[], T]]) -> None:
        self._outcomes, self._threads = _start(functions)

    def wait(self, timeout: float) -> dict[str, Outcome[T]]:
        """Wait for the threads until ``timeout`` seconds from now; every outcome, done or not."""
        _wait(self._threads, time.monotonic() + timeout)
        return self._outcomes


def run_concurrently(
    functions: Mapping[str, Callable[[], T]], *, timeout: float, here: str | None = None
) -> dict[str, Outcome[T]]:
    """Call every function in a thread of its own and wait for them until ``timeout``.

    Args:
        functions: Name to function.
        timeout: Seconds to wait for the threads.
        here: The name of one function to call in the calling thread instead,
            while the others run (it must bound its own time, as a
            ``subprocess`` call with a timeout does): one thread fewer.

    Returns:
        One :class:`Outcome` per name; ``done`` is False for a function still
        running at the deadline (its thread is left to finish on its own).

    Example:
        >>> outcomes = run_concurrently({"a": lambda: 1, "b": lambda: 2}, timeout=1.0, here="a")
        >>> outcomes["a"].done, outcomes["a"].value, outcomes["b"].value
        (True, 1, 2)
    """
    deadline = time.monotonic() + timeout
    threaded = {name: function for name, function in functions.items() if name != here}
    outcomes, threads = _start(threaded)
    if here is not None:
        outcomes[here] = Outcome()
        _call(functions[here], outcomes[here])
    _wait(threads, deadline)
    return {name: outcomes[name] for name in functions}


def _start(
    functions: Mapping[str, Callable[[], T]],
) -> tuple[dict[str, Outcome[T]], list[threading.Thread]]:
    outcomes: dict[str, Outcome[T]] = {name: Outcome() for name in functions}
    threads = []
    for name, function in functions.items():
        thread = threading.Thread(
            target=_call,
            args=(function, outcomes[name]),
            name=f"runjournal-capture-{name}",
            daemon=True,  # a hung part must never keep the interpreter alive
        )
        thread.start()
        threads.append(thread)
    return outcomes, threads


def _wait(threads: list[threading.Thread], deadline: float) -> None:
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _call(function: Callable[[], T], outcome: Outcome[T]) -> None:
    try:
        outcome.value = function()
    except BaseException as error:  # reported as data by the caller, never raised
        outcome.error = error
    finally:
        outcome.done = True


def run_parts(
    parts: Mapping[str, Callable[[], Any]],
    *,
    timeout: float,
    inline: Mapping[str, Callable[[], Any]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Run capture parts: ``parts`` in threads, ``inline`` ones (cheap) in the calling thread.

    The inline parts run while the threaded ones do, so they cost no extra time.

    Returns:
        The value of every part that finished, and a ``{"part", "message"}``
        for every part that raised or timed out, in the order given.

    Example:
        >>> run_parts({}, timeout=1.0, inline={"one": lambda: 1})
        ({'one': 1}, [])
    """
    started = time.monotonic()
    outcomes, threads = _start(parts)
    values: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for name, function in (inline or {}).items():
        try:
            values[name] = function()
        except Exception as error:
            errors.append({"part": name, "message": describe_error(error)})
    _wait(threads, started + timeout)
    for name, outcome in outcomes.items():
        if not outcome.done:  # read first: a part sets its value or error before done
            waited = time.monotonic() - started
            errors.append({"part": name, "message": f"timed out after {waited:.1f} s"})
        elif outcome.error is not None:
            errors.append({"part": name, "message": describe_error(outcome.error)})
        else:
            values[name] = outcome.value
    return values, errors


def describe_error(error: BaseException) -> str:
    """``Type: message`` of an exception, as ``capture_errors`` records it.

    Example:
        >>> describe_error(OSError("disk gone"))
        'OSError: disk gone'
    """
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
