"""How a :class:`~runjournal.Run` reports what goes wrong: refused values, write problems, faults.

A mixin, so that ``run.py`` stays about the run's lifecycle. A run never
raises into the training loop unless it is strict; instead every problem is
counted per (cause, key), warned about once, and recorded as an ``error``
event whose count the flusher thread rewrites when it grows (heartbeats and
the end). A strict run raises the problem, or (for a write problem, seen by
the flusher thread) keeps it as the run's *fault* and raises it at the next
call of the training loop.

The counts and their first messages are kept together under the run's lock:
the flusher thread writes a grown count with its message, so a count never
exists without one.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runjournal._writer import WriteProblem
from runjournal.errors import (
    InvalidNameError,
    RunError,
    RunjournalError,
    RunjournalWarning,
    StoreWriteError,
)
from runjournal.format import METRICS, RUN_EVENTS, Event
from runjournal.values import short_repr, storable_text

if TYPE_CHECKING:
    from runjournal._writer import RunWriter

__all__ = ["ProblemReporting"]


class ProblemReporting:
    """``Run``'s problem accounting; it uses the run's writer, lock and counts."""

    if TYPE_CHECKING:
        _id: str
        _dir: Path | None
        _lock: threading.RLock
        _writer: RunWriter | None
        _strict: bool
        _owner_pid: int
        _secret_words: frozenset[str]
        _refusals: set[str]
        _warned_causes: set[str]
        _error_counts: dict[tuple[str, str], int]
        _error_messages: dict[tuple[str, str], str]
        _reported_counts: dict[tuple[str, str], int]
        _reported_dropped: int
        _fault: RunjournalError | None
        _refusing: bool
        _ended: bool

        def _event_line(self, kind: str, fields: Mapping[str, Any]) -> bytes: ...

        def _forked(self) -> bool: ...

    def _refuse(self, verb: str) -> None:
        """A call that cannot be honoured: after end, in a forked child, or after a fault."""
        self._raise_fault()
        if self._writer is None:
            return  # a disabled run accepts every call and writes nothing
        if self._forked():
            why = (
                f"this process was forked from {self._owner_pid}, which owns the run;"
                " start() a run of its own in the child"
            )
        else:
            why = "the run has ended"
        if self._strict:
            raise RunError(f"run {self._id}: {verb}() ignored: {why}", ref=self._id)
        if why not in self._refusals:
            self._refusals.add(why)
            warnings.warn(
                f"run {self._id}: {verb}() ignored: {why}", RunjournalWarning, stacklevel=3
            )

    def _report_all(self, problems: list[Exception], cause: str | None = None) -> None:
        for problem in problems:
            self._report(problem, cause=cause)

    def _report(self, problem: Exception, cause: str | None = None) -> None:
        """Raise (strict), or warn once per cause and key and record an error event."""
        if self._strict:
            raise problem
        if cause is None:
            cause = "invalid_name" if isinstance(problem, InvalidNameError) else "invalid_value"
        key = _problem_key(problem)
        message = str(problem)
        if self._count(cause, key, 1, message) == 1:
            message = self._disclosable(key, message)
            warnings.warn(f"run {self._id}: {message}", RunjournalWarning, stacklevel=4)
            self._queue_error(cause, key, message, 1)

    def _disclosable(self, key: str, message: str) -> str:
        """A problem's message fit for the run's files: it never quotes a secret value.

        Messages quote the value that was refused; under a name that marks a
        secret (``api_key``) that value is left out, and anything else that
        looks like a credential is redacted as in params.
        """
        try:
            from runjournal.capture._redact import is_secret_name, redact_text

            if is_secret_name(key, self._secret_words):
                return f"the value logged as {key!r} was refused (not quoted: it names a secret)"
            return redact_text(message, self._secret_words)
        except Exception:  # called from the flusher thread too: it must never die of it
            return f"a problem with {key!r} (its message could not be checked for secrets)"

    def _count(self, cause: str, key: str, increment: int, message: str | None = None) -> int:
        """Add to the count of (cause, key); its first message is kept with it, atomically.

        The flusher thread writes grown counts with their message (heartbeats),
        so a count must never exist without one.
        """
        with self._lock:
            if message is not None and (cause, key) not in self._error_messages:
                self._error_messages[cause, key] = self._disclosable(key, message)
            total = self._error_counts.get((cause, key), 0) + increment
            self._error_counts[(cause, key)] = total
            return total

    def _queue_error(self, cause: str, key: str, message: str, count: int) -> None:
        if self._writer is None:
            return
        self._reported_counts[(cause, key)] = count
        self._error_messages.setdefault((cause, key), message)
        fields = {
            "cause": cause,
            "key": storable_text(key),  # the refused name itself may be what UTF-8 cannot hold
            "message": storable_text(message),
            "count": count,
        }
        self._writer.queue(RUN_EVENTS, self._event_line(Event.ERROR, fields))

    def _queue_error_counts(self) -> None:
        """Append an error event for every count that grew since it was last written."""
        self._collect_dropped()
        with self._lock:
            grown = [
                (cause_key, count)
                for cause_key, count in self._error_counts.items()
                if count > self._reported_counts.get(cause_key, 0)
            ]
        for (cause, key), count in grown:
            self._queue_error(cause, key, self._error_messages.get((cause, key), cause), count)

    def _collect_dropped(self) -> None:
        """Count lines the hot path dropped because the buffer was over its cap."""
        assert self._writer is not None
        dropped = self._writer.dropped_lines - self._reported_dropped
        if dropped > 0:
            self._reported_dropped += dropped
            self._on_write_problem(WriteProblem(METRICS, None, dropped))

    def _on_write_problem(self, problem: WriteProblem) -> None:
        """Called from whichever thread flushed; never raises."""
        if problem.dropped_lines:
            message = (
                f"dropped {problem.dropped_lines} lines of {problem.file}: more unwritten"
                " lines than the memory cap allows"
            )
            self._handle_write_problem("dropped", problem, message, problem.dropped_lines)
        if problem.error is not None:
            message = (
                f"cannot write {problem.file} ({problem.error.strerror or problem.error});"
                " keeping the lines in memory and retrying at the next flush"
            )
            self._handle_write_problem("write_failed", problem, message, 1)

    def _handle_write_problem(
        self, cause: str, problem: WriteProblem, message: str, increment: int
    ) -> None:
        if self._strict:
            error = StoreWriteError(f"run {self._id}: {message}", path=self._dir or ".")
            error.__cause__ = problem.error
            self._fault = self._fault or error
            self._refusing = True
            return
        if self._count(cause, problem.file, increment, message) == increment:
            if cause not in self._warned_causes:  # one warning per cause, one event per file
                self._warned_causes.add(cause)
                warnings.warn(f"run {self._id}: {message}", RunjournalWarning, stacklevel=2)
            self._queue_error(cause, problem.file, message, increment)

    def _raise_fault(self) -> None:
        if self._fault is not None and self._strict:
            fault, self._fault = self._fault, None
            self._refusing = self._ended or self._writer is None or self._forked()
            raise fault

    def _record_capture_errors(self, errors: list[dict[str, str]]) -> None:
        """One ``capture_error`` event per failed part and one warning; never raises.

        Capture failures are not the caller's doing, so a strict run warns too.
        """
        if not errors or self._writer is None:
            return
        for error in errors:
            part, message = error["part"], error["message"]
            if self._count("capture_error", part, 1) == 1:
                self._queue_error("capture_error", part, message, 1)
        self._writer.flush(only=RUN_EVENTS)
        summary = "; ".join(f"{error['part']}: {error['message']}" for error in errors)
        warnings.warn(
            f"run {self._id}: capture incomplete ({summary}); the run goes on",
            RunjournalWarning,
            stacklevel=4,
        )


def _problem_key(problem: Exception) -> str:
    """The key or name a problem is about, as a string (even when it was not one)."""
    for attribute in ("key", "name"):
        value = getattr(problem, attribute, None)
        if value:
            return value if isinstance(value, str) else short_repr(value)
    return ""
