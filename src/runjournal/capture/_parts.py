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

__all__ = ["Outcome", "describe_error", "run_concurrently", "run_parts"]

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


def run_concurrently(
    functions: Mapping[str, Callable[[], T]], *, timeout: float
) -> dict[str, Outcome[T]]:
    """Call every function in a thread of its own and wait for them until ``timeout``.

    Returns:
        One :class:`Outcome` per name; ``done`` is False for a function still
        running at the deadline (its thread is left to finish on its own).

    Example:
        >>> outcomes = run_concurrently({"a": lambda: 1}, timeout=1.0)
        >>> outcomes["a"].done, outcomes["a"].value
        (True, 1)
    """
    outcomes, threads = _start(functions)
    _wait(threads, time.monotonic() + timeout)
    return outcomes


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
