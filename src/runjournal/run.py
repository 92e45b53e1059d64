"""The ``Run``: what a training script logs to, from ``start()`` to ``end()``.

A run never raises into the training loop once ``start()`` has returned
(unless it is strict): a value that cannot be logged, a full disk or a vanished
store gives one :class:`~runjournal.errors.RunjournalWarning` per cause, an
``error`` event in the run, and a count that ``runjournal show`` prints. A
strict run (``start(strict=True)`` or ``RUNJOURNAL_STRICT=1``) raises instead.
"""

from __future__ import annotations

import itertools
import math
import operator
import os
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from runjournal import _lifecycle
from runjournal._writer import RunWriter, WriteProblem
from runjournal.errors import (
    InvalidNameError,
    InvalidValueError,
    RunError,
    RunjournalError,
    RunjournalWarning,
    StoreWriteError,
)
from runjournal.format import (
    INT_MAX,
    INT_MIN,
    METRICS,
    PARAMS,
    RUN_EVENTS,
    Event,
    Status,
    dumps_line,
    encode_float,
)
from runjournal.typing import Metrics, Params
from runjournal.values import (
    check_name,
    coerce_metrics,
    coerce_params_each,
    diff_params,
    merge_params,
)

__all__ = ["Run"]

_LINE = orjson.OPT_APPEND_NEWLINE
_PLAIN = frozenset({float, int})
_dumps = orjson.dumps
_now = time.time
_FILES = (METRICS, RUN_EVENTS, PARAMS)
_HEARTBEAT_SLACK = 2.5
"""A heartbeat's deadline is this many intervals after it: one late beat is not death."""


class Run:
    """One run of a training script; create it with :func:`runjournal.start`.

    Example:
        >>> import runjournal
        >>> with runjournal.start("demo", params={"lr": 0.1}) as run:
        ...     run.log({"loss": 0.5})
        ...     run.log({"loss": 0.25})
        >>> runjournal.Store().run(run.id).metrics
        {'loss': 0.25}
    """

    def __init__(
        self,
        *,
        run_id: str,
        name: str,
        experiment: str | None,
        run_dir: Path | None,
        segment: int,
        next_step: int,
        params: dict[str, Any],
        strict: bool,
        flush_interval: float,
        heartbeat_interval: float,
        fsync: bool,
    ) -> None:
        self._id = run_id
        self._name = name
        self._experiment = experiment
        self._dir = run_dir
        self._seg = segment
        self._steps = itertools.count(next_step)
        self._params = params
        self._strict = strict
        self._heartbeat_interval = heartbeat_interval
        self._next_heartbeat = time.time() + heartbeat_interval
        self._error_counts: dict[tuple[str, str], int] = {}
        self._reported_counts: dict[tuple[str, str], int] = {}
        self._error_messages: dict[tuple[str, str], str] = {}
        self._warned_causes: set[str] = set()
        self._reported_dropped = 0
        self._fault: RunjournalError | None = None
        self._refusals: set[str] = set()
        self._ended = False
        self._exit_status = Status.COMPLETED
        self._owner_pid = os.getpid()
        self._writer: RunWriter | None = None
        if run_dir is not None:
            self._writer = RunWriter(
                run_dir,
                _FILES,
                flush_interval=flush_interval,
                fsync=fsync,
                on_problem=self._on_write_problem,
                on_tick=self._tick,
            )
        self._buffer = self._writer.metric_buffer if self._writer else bytearray()
        self._lock = threading.RLock()  # re-entrant: a signal handler may end the run mid-call
        self._refusing = self._writer is None  # one flag for the hot path: ended, forked, faulty

    # -- identity -----------------------------------------------------------------

    @property
    def id(self) -> str:
        """The run id, also the name of the run's directory."""
        return self._id

    @property
    def name(self) -> str:
        """The human-readable name (given, or generated like ``brisk-heron-7``)."""
        return self._name

    @property
    def experiment(self) -> str | None:
        """The experiment the run belongs to, if any."""
        return self._experiment

    @property
    def dir(self) -> Path | None:
        """The run directory; None for a disabled run, which writes nothing."""
        return self._dir

    @property
    def segment(self) -> int:
        """0 for a new run, one more for each resume."""
        return self._seg

    @property
    def ended(self) -> bool:
        """Whether ``end()`` has been called (or the process's exit ended the run)."""
        return self._ended

    def __repr__(self) -> str:
        state = "ended" if self._ended else "live"
        return f"<Run {self._id} {self._name!r} experiment={self._experiment!r} {state}>"

    # -- logging ------------------------------------------------------------------

    def log(self, metrics: Metrics, step: int | None = None) -> None:
        """Log metric values at a step; costs no system call and takes no lock.

        Args:
            metrics: Names to numbers (int, float, bool, NumPy or torch scalars,
                anything with ``__float__``). Any non-empty string is a name.
            step: The step; one more than the last one when omitted.

        Example:
            >>> import runjournal
            >>> run = runjournal.start()
            >>> run.log({"loss": 0.9, "val/AR@100": 0.1})
            >>> run.log({"loss": 0.7}, step=10)
            >>> run.end()
        """
        if self._refusing:
            self._refuse("log")
            return
        # The fast path: a dict of plain floats and ints goes to orjson untouched.
        plain = type(metrics) is dict and _PLAIN.issuperset(map(type, metrics.values()))
        if step is None:
            step = next(self._steps)  # atomic: threads logging at once get distinct steps
        elif type(step) is int:
            self._steps = itertools.count(step + 1)
        elif (step := self._checked_step(step)) is None:
            return
        record = {"step": step, "time": _now(), "seg": self._seg, "m": metrics}
        line = None
        if plain and "" not in metrics:
            try:
                line = _dumps(record, option=_LINE)
            except orjson.JSONEncodeError:
                pass  # a key that is not a str, an int beyond 64 bits, a lone surrogate
            else:
                if line.find(b"null") >= 0:
                    line = None  # NaN or infinity, which orjson writes as null
        if line is None and (line := self._encode_slowly(record)) is None:
            return
        buffer = self._buffer
        buffer += line
        writer = self._writer
        if len(buffer) >= writer.wake_bytes:  # type: ignore[union-attr]
            writer.buffer_full(len(line))  # type: ignore[union-attr]

    def _encode_slowly(self, record: dict[str, Any]) -> bytes | None:
        """Coerce every value, report the ones that cannot be logged, encode the rest."""
        values, problems = coerce_metrics(record["m"])
        self._report_all(problems)
        try:
            return dumps_line({**record, "m": values}) if values else None
        except orjson.JSONEncodeError:
            pass
        clean: dict[str, Any] = {}
        for key, value in values.items():  # find the names orjson refuses
            try:
                orjson.dumps({key: value})
                clean[key] = value
            except orjson.JSONEncodeError as error:
                self._report(InvalidNameError(f"metric {key!r}: {error}", name=key, kind="metric"))
        return dumps_line({**record, "m": clean}) if clean else None

    def _checked_step(self, step: object) -> int | None:
        try:
            if isinstance(step, bool):
                raise TypeError("bool is not a step")
            value = operator.index(step)  # type: ignore[arg-type]
            if not INT_MIN <= value <= INT_MAX:
                raise ValueError("outside the 64-bit range")
        except (TypeError, ValueError) as error:
            self._report(
                InvalidValueError(
                    f"step {step!r} is not valid ({error}); steps are integers",
                    key="step",
                    value=step,
                )
            )
            return None
        return int(value)

    def log_params(self, params: Params | Any) -> None:
        """Record params; a changed value is a new record (and a warning), never a rewrite.

        Args:
            params: A mapping (nested as you like), a dataclass, a pydantic model
                or an ``argparse.Namespace``. Re-logging an unchanged value writes
                nothing.

        Example:
            >>> import runjournal
            >>> with runjournal.start() as run:
            ...     run.log_params({"model": {"depth": 50}, "lr": 0.1})
            ...     run.log_params({"model": {"width": 64}})
            >>> runjournal.Store().run(run.id).params
            {'model': {'depth': 50, 'width': 64}, 'lr': 0.1}
        """
        if self._refusing:
            self._refuse("log_params")
            return
        try:
            coerced, problems = coerce_params_each(params)
        except InvalidValueError as problem:
            coerced, problems = {}, [problem]
        self._report_all(problems, cause="invalid_param")
        with self._lock:
            changes, changed = diff_params(self._params, coerced)
            merge_params(self._params, changes)
        for name, old, new in changed:
            warnings.warn(
                f"run {self._id}: param {name!r} changed from {old!r} to {new!r};"
                " both values are kept in params.jsonl",
                RunjournalWarning,
                stacklevel=2,
            )
        if changes:
            record = {"time": time.time(), "seg": self._seg, "params": changes}
            self._write_now(PARAMS, dumps_line(record))

    def tag(self, tags: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Set tags: short key/values (str, number or bool) to find runs by.

        Example:
            >>> import runjournal
            >>> with runjournal.start() as run:
            ...     run.tag(model="resnet50", baseline=True)
            ...     run.tag({"data/version": "v2"})
        """
        if self._refusing:
            self._refuse("tag")
            return
        clean: dict[str, Any] = {}
        for key, value in {**(tags or {}), **more}.items():
            try:
                clean[check_name(key, "tag")] = _tag_value(key, value)
            except (InvalidNameError, InvalidValueError) as problem:
                self._report(problem, cause="invalid_tag")
        if clean:
            self._event(Event.TAGS, tags=clean)

    def note(self, text: str) -> None:
        """Record a free-text observation, with the time it was made.

        Example:
            >>> import runjournal
            >>> with runjournal.start() as run:
            ...     run.note("loss spikes at step 1200: bad shard?")
        """
        if self._refusing:
            self._refuse("note")
            return
        if not isinstance(text, str):
            self._report(
                InvalidValueError(
                    f"a note is text, not a {type(text).__name__}", key="note", value=text
                ),
                cause="invalid_note",
            )
            return
        self._event(Event.NOTE, text=text)

    def flush(self) -> None:
        r"""Return once everything logged so far is written (and fsynced, if asked).

        Example:
            >>> import runjournal
            >>> run = runjournal.start()
            >>> run.log({"loss": 1.0})
            >>> run.flush()
            >>> (run.dir / "metrics.jsonl").read_bytes().count(b"\n")
            1
            >>> run.end()
        """
        if self._writer is None or self._forked():
            return
        self._writer.flush()
        self._raise_fault()

    def end(self, status: str = Status.COMPLETED) -> None:
        """End the run: flush, record the status, stop the flusher. Idempotent.

        Args:
            status: ``completed`` (default), ``failed``, ``interrupted``, ``killed``
                or ``crashed``.

        Example:
            >>> import runjournal
            >>> run = runjournal.start()
            >>> run.end()
            >>> run.end()  # a second call does nothing
            >>> runjournal.Store().run(run.id).status
            'completed'
        """
        if status not in Status.RECORDED:
            problem = InvalidValueError(
                f"status {status!r} is not one of {sorted(Status.RECORDED)}; "
                "the run ended as completed",
                key="status",
                value=status,
            )
            if not self._strict:
                self._report(problem, cause="invalid_status")
            self._end(Status.COMPLETED, None)
            if self._strict:
                raise problem
            return
        self._end(status, None)
        self._raise_fault()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status = _status_of(exc)
        if isinstance(exc, SystemExit) and self._exit_status != Status.COMPLETED:
            status = self._exit_status  # sys.exit() from a SIGTERM handler: killed
        self._end(status, exc)
        if exc is None:
            self._raise_fault()

    # -- ending -------------------------------------------------------------------

    def _end(self, status: str, exc: BaseException | None) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self._refusing = True
        _lifecycle.unregister(self)
        if self._writer is None or self._forked():
            return
        self._queue_error_counts()
        fields: dict[str, Any] = {"status": status}
        if exc is not None and status != Status.COMPLETED:
            fields["exception"] = _describe(exc)
        self._writer.queue(RUN_EVENTS, self._event_line(Event.END, fields))
        self._writer.close()

    def _end_from_lifecycle(self, status: str, exc: BaseException | None) -> None:
        """End at process exit, on an uncaught exception or a signal; never raises."""
        try:
            self._end(status, exc)
        except Exception as error:  # the process is ending: say so, do not mask its exit
            warnings.warn(
                f"run {self._id}: could not end cleanly: {error}", RunjournalWarning, stacklevel=1
            )

    def _flush_quietly(self) -> None:
        if self._writer is not None and not self._forked():
            self._writer.flush()

    def _forked(self) -> bool:
        return os.getpid() != self._owner_pid

    def _forget_after_fork(self) -> None:
        """In a forked child: never write the parent's buffers or files."""
        self._refusing = True
        self._lock = threading.RLock()
        if self._writer is not None:
            self._writer.forget_after_fork()

    # -- events and problems ------------------------------------------------------

    def _event_line(self, kind: str, fields: Mapping[str, Any]) -> bytes:
        return dumps_line({"event": kind, "time": time.time(), "seg": self._seg, **fields})

    def _event(self, kind: str, **fields: Any) -> None:
        self._write_now(RUN_EVENTS, self._event_line(kind, fields))

    def _write_now(self, file: str, line: bytes) -> None:
        assert self._writer is not None
        if self._writer.write_now(file, line) is not None:
            self._raise_fault()

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
        key = str(getattr(problem, "key", None) or getattr(problem, "name", ""))
        if self._count(cause, key, 1) == 1:
            warnings.warn(f"run {self._id}: {problem}", RunjournalWarning, stacklevel=4)
            self._queue_error(cause, key, str(problem), 1)

    def _count(self, cause: str, key: str, increment: int) -> int:
        with self._lock:
            total = self._error_counts.get((cause, key), 0) + increment
            self._error_counts[(cause, key)] = total
            return total

    def _queue_error(self, cause: str, key: str, message: str, count: int) -> None:
        if self._writer is None:
            return
        self._reported_counts[(cause, key)] = count
        self._error_messages.setdefault((cause, key), message)
        fields = {"cause": cause, "key": key, "message": message, "count": count}
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
            self._queue_error(cause, key, self._error_messages[(cause, key)], count)

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
        if self._count(cause, problem.file, increment) == increment:
            if cause not in self._warned_causes:  # one warning per cause, one event per file
                self._warned_causes.add(cause)
                warnings.warn(f"run {self._id}: {message}", RunjournalWarning, stacklevel=2)
            self._queue_error(cause, problem.file, message, increment)

    def _raise_fault(self) -> None:
        if self._fault is not None and self._strict:
            fault, self._fault = self._fault, None
            self._refusing = self._ended or self._writer is None or self._forked()
            raise fault

    def _tick(self) -> None:
        """Called by the flusher thread: heartbeats and grown error counts."""
        now = time.time()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self._heartbeat_interval
        self._queue_error_counts()
        assert self._writer is not None
        self._writer.queue(RUN_EVENTS, self._event_line(Event.HEARTBEAT, self._deadline(now)))
        self._writer.flush(only=RUN_EVENTS)

    def _deadline(self, now: float) -> dict[str, float]:
        """The ``deadline`` field of a start, resume or heartbeat event written at ``now``."""
        return {"deadline": now + _HEARTBEAT_SLACK * self._heartbeat_interval}

    def _start_events(
        self, start_fields: dict[str, Any], tags: dict[str, Any], params: dict[str, Any]
    ) -> None:
        """Write the start (or resume) event, params and tags before ``start()`` returns.

        Raises:
            StoreWriteError: the file system refused any of them.
        """
        assert self._writer is not None
        now = time.time()
        kind = start_fields.pop("event")
        lines = [(RUN_EVENTS, self._event_line(kind, {**start_fields, **self._deadline(now)}))]
        changes, _ = diff_params(self._params, params)
        if changes:
            merge_params(self._params, changes)
            lines.append((PARAMS, dumps_line({"time": now, "seg": self._seg, "params": changes})))
        if tags:
            lines.append((RUN_EVENTS, self._event_line(Event.TAGS, {"tags": tags})))
        for file, line in lines:
            problem = self._writer.write_now(file, line)
            if problem is not None:
                raise StoreWriteError(
                    f"cannot write the start of run {self._id} to {self._dir}: {problem.error}",
                    path=self._dir or ".",
                ) from problem.error
        self._writer.start()


def _tag_value(key: str, value: object) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return encode_float(value)
    raise InvalidValueError(
        f"tag {key!r}: a {type(value).__name__} is not a tag value; use str, int, finite"
        " float, bool or None",
        key=key,
        value=value,
    )


def coerce_tags(tags: Mapping[str, Any]) -> dict[str, Any]:
    """Check tag names and values for ``start(tags=...)``; raises on the first bad one."""
    return {check_name(key, "tag"): _tag_value(key, value) for key, value in tags.items()}


def _status_of(exc: BaseException | None) -> str:
    if exc is None:
        return Status.COMPLETED
    if isinstance(exc, KeyboardInterrupt):
        return Status.INTERRUPTED
    if isinstance(exc, SystemExit):
        return Status.COMPLETED if exc.code in (0, None) else Status.FAILED
    return Status.FAILED


def _describe(exc: BaseException) -> dict[str, str]:
    import traceback  # only a failing run pays for it

    return {
        "type": type(exc).__qualname__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
