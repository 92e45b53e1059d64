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
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from runjournal import _lifecycle
from runjournal._alert_verbs import AlertVerbs
from runjournal._artifact_verbs import ArtifactVerbs
from runjournal._problems import ProblemReporting
from runjournal._writer import RunWriter, signals_wait
from runjournal.errors import (
    InvalidNameError,
    InvalidValueError,
    RunjournalError,
    RunjournalWarning,
    StoreWriteError,
)
from runjournal.format import (
    METRICS,
    PARAMS,
    RUN_EVENTS,
    Event,
    Status,
    dumps_line,
    encode_int,
)
from runjournal.typing import Metrics, Params
from runjournal.values import (
    check_name,
    check_text,
    coerce_metrics,
    coerce_params_each,
    diff_params,
    merge_params,
    short_repr,
)

if TYPE_CHECKING:
    from runjournal._console import ConsoleCapture
    from runjournal._sampler import SystemSampler
    from runjournal.alerts import Alert
    from runjournal.capture.data import DataRecord
    from runjournal.typing import PathLike

__all__ = ["Run"]

_LINE = orjson.OPT_APPEND_NEWLINE
_PLAIN = frozenset({float, int})
_all_plain = _PLAIN.issuperset
_dumps = orjson.dumps
_now = time.time
_DATA = "data.jsonl"  # capture.data.DATA_FILE, not imported: hashing loads on first use
_SYSTEM = "system.jsonl"  # _sampler.SYSTEM, not imported: the sampler loads when asked for
_ARTIFACTS = "artifacts.jsonl"  # _artifacts.ARTIFACTS, not imported: loads on first use
_OUTPUT = "output.log"  # _console.OUTPUT
_FILES = (METRICS, RUN_EVENTS, PARAMS, _DATA, _SYSTEM, _ARTIFACTS, _OUTPUT)
_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1
"""Steps are signed 64-bit integers, the range readers accept."""


class _NoStepLeft:
    """The automatic steps after the largest step: there is none, so each call is refused."""

    def __iter__(self) -> _NoStepLeft:
        return self

    def __next__(self) -> int:
        raise InvalidValueError(
            f"no step follows step {_STEP_MAX}, the largest; pass step= explicitly",
            key="step",
            value=None,
        )


_NO_STEP_LEFT = _NoStepLeft()


def _steps_from(first: int) -> Iterator[int]:
    """The automatic steps from ``first`` on, up to the largest step and no further.

    As cheap per step as ``itertools.count`` (both are C iterators), and as
    safe for threads logging at once: each ``next()`` is one call under the GIL.
    """
    if first > _STEP_MAX:
        return _NO_STEP_LEFT
    return itertools.chain(range(first, _STEP_MAX), (_STEP_MAX,), _NO_STEP_LEFT)


_HEARTBEAT_SLACK = 2.5
"""A heartbeat's deadline is this many intervals after it: one late beat is not death."""


class Run(ArtifactVerbs, AlertVerbs, ProblemReporting):
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
        secret_words: frozenset[str] = frozenset(),
    ) -> None:
        self._id = run_id
        self._name = name
        self._experiment = experiment
        self._dir = run_dir
        self._seg = segment
        # The automatic steps: the int after which they start (the last step given, one
        # store per call that gives one), made into an iterator (_steps_from) once a call
        # omits its step.
        self._steps: Iterator[int] | int = next_step - 1
        self._params = params
        self._strict = strict
        self._heartbeat_interval = heartbeat_interval
        self._fsync = fsync  # durability="fsync": blobs are synced too (ArtifactVerbs)
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
        self._secret_words = secret_words  # extra words for the redaction of params and tags
        self._writer: RunWriter | None = None
        self._sampler: SystemSampler | None = None
        self._console: ConsoleCapture | None = None
        self._watched: dict[str, list[Alert]] = {}  # metric name to its alerts
        self._on_nan_raise = False
        if run_dir is not None:
            self._writer = RunWriter(
                run_dir,
                _FILES,
                flush_interval=flush_interval,
                fsync=fsync,
                on_problem=self._on_write_problem,
                on_tick=self._tick,
                summarize=True,  # the end event carries the summary of metrics.jsonl
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
        if step is None:
            try:
                step = next(self._steps)  # type: ignore[arg-type]  # atomic under the GIL
            except InvalidValueError as problem:  # no step after the largest (costs nothing else)
                self._report(problem)
                return
            except TypeError:  # an int: the last call gave its step; count on from there
                if (step := self._count_on()) is None:
                    return
        elif type(step) is int and -0x8000000000000000 <= step <= 0x7FFFFFFFFFFFFFFF:
            self._steps = step  # the automatic steps are made only if a call omits one
        elif (step := self._checked_step(step)) is None:
            return
        else:
            self._steps = step
        record = {"step": step, "time": _now(), "seg": self._seg, "m": metrics}
        # The fast path: a dict of plain floats and ints goes to orjson untouched.
        if type(metrics) is dict and _all_plain(map(type, metrics.values())) and "" not in metrics:
            try:
                encoded = _dumps(record, None, _LINE)
            except orjson.JSONEncodeError:
                line = None  # a key that is not a str, an int beyond 64 bits, a lone surrogate
            else:  # NaN or infinity, which orjson writes as null, take the slow path
                line = encoded if encoded.find(b"null") < 0 else None
            if line is None and (line := self._encode_slowly(record)) is None:
                return
        elif (line := self._encode_slowly(record)) is None:
            return
        buffer = self._buffer
        if len(buffer) >= self._writer.wake_bytes and self._writer.buffer_full():  # type: ignore[union-attr]
            return  # dropped (and counted): the disk cannot keep up
        buffer += line
        if self._watched:  # all that alerts cost a run that has none
            self._check_alerts(metrics, step)

    def _count_on(self) -> int | None:
        """The next automatic step after calls that gave theirs: make the steps, once.

        Threads that omit the step at once all land here and share one
        iterator (made under the lock), so each still gets a step of its own.
        """
        with self._lock:
            steps = self._steps
            if type(steps) is int:
                steps = self._steps = _steps_from(steps + 1)
        try:
            return next(steps)  # type: ignore[arg-type]
        except InvalidValueError as problem:  # no step after the largest
            self._report(problem)
            return None

    def _encode_slowly(self, record: dict[str, Any]) -> bytes | None:
        """Coerce every value, report the ones that cannot be logged, encode the rest."""
        try:
            values, problems = coerce_metrics(record["m"])
        except InvalidValueError as problem:  # not a mapping at all
            self._report(problem)
            return None
        self._report_all(problems)
        if self._on_nan_raise:
            self._stop_if_not_finite(record, values)
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
            if not _STEP_MIN <= value <= _STEP_MAX:
                raise ValueError("outside the signed 64-bit range")
        except Exception as error:  # __index__ is the caller's code: whatever it raises
            self._report(
                InvalidValueError(
                    f"step {short_repr(step)} is not valid ({error}); steps are integers",
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
        coerced = self._redacted(coerced)
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

    def log_data(
        self,
        name: str,
        source: PathLike | Any,
        *,
        role: str = "input",
        mode: str = "full",
        algo: str = "sha256",
    ) -> DataRecord | None:
        r"""Hash a file, a directory or a DataFrame and record it in ``data.jsonl`` at once.

        Hashes are cached in the store by path, size, mtime, ctime and inode,
        so logging unchanged data again costs only its ``stat`` calls. See
        ``docs/data.md`` for the modes and what the hash covers.

        Args:
            name: What to call the data (``train``, ``tokenizer``...).
            source: A path to a file or a directory, or a pandas DataFrame.
            role: ``input`` (default), ``output`` or any role you name.
            mode: ``full`` (every byte), ``sample`` (size plus 1 MiB at the
                head, middle and tail of each file) or ``stat`` (sizes and
                mtimes only).
            algo: A hashlib algorithm (default ``sha256``).

        Returns:
            The record written; None when the data could not be hashed (with a
            warning and an ``error`` event, or raised in a strict run), and for
            a disabled run, which hashes nothing.

        Example:
            >>> import pathlib, runjournal
            >>> _ = pathlib.Path("train.csv").write_text("x,y\n1,2\n")
            >>> with runjournal.start() as run:
            ...     record = run.log_data("train", "train.csv")
            >>> record.name, record.kind, record.size, len(record.hash)
            ('train', 'file', 8, 64)
        """
        if self._refusing:
            self._refuse("log_data")
            return None
        from runjournal.capture.data import data_record
        from runjournal.errors import DataError

        assert self._dir is not None
        store = self._dir.parent.parent
        try:
            record = data_record(
                name, source, role=role, mode=mode, algo=algo, seg=self._seg, store=store
            )
        except DataError as problem:
            self._report(problem, cause="invalid_data")
            return None
        self._write_now(_DATA, dumps_line(record.to_json()))
        return record

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
        try:
            given = {**(tags or {}), **more}
        except Exception as error:  # not a mapping, or its own code failed
            given = {}
            self._report(
                InvalidValueError(
                    f"tag() takes a mapping of names to values, not a {type(tags).__name__}"
                    f" ({type(error).__name__}: {error})",
                    key="",
                    value=tags,
                ),
                cause="invalid_tag",
            )
        for key, value in given.items():
            try:
                clean[check_name(key, "tag")] = _tag_value(key, value)
            except (InvalidNameError, InvalidValueError) as problem:
                self._report(problem, cause="invalid_tag")
        if clean:
            self._event(Event.TAGS, tags=self._redacted(clean))

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
        try:
            if not isinstance(text, str):
                raise InvalidValueError(
                    f"a note is text, not a {type(text).__name__}", key="note", value=text
                )
            check_text(text, "note", key="note")
        except InvalidValueError as problem:
            self._report(problem, cause="invalid_note")
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
        if not isinstance(status, str) or status not in Status.RECORDED:
            problem = InvalidValueError(
                f"status {short_repr(status)} is not one of {sorted(Status.RECORDED)}; "
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

    def _mark_ended(self) -> RunWriter | None:
        """Mark the run ended, once; return its writer, or None when nothing is to be written."""
        with self._lock:
            if self._ended:
                return None
            self._ended = True
            self._refusing = True
        _lifecycle.unregister(self)
        return None if self._forked() else self._writer

    def _end(self, status: str, exc: BaseException | None) -> None:
        writer = self._mark_ended()
        if writer is None:
            return
        with signals_wait():  # a SIGINT while the sampler stops waits for the end event
            self._write_end(writer, status, exc)

    def _write_end(self, writer: RunWriter, status: str, exc: BaseException | None) -> None:
        if self._sampler is not None:
            self._sampler.stop()  # before the last flush: its last line lands before the end
        fields: dict[str, Any] = {"status": status}
        if exc is not None and status != Status.COMPLETED:
            fields["exception"] = _describe(exc)
        if self._console is not None:
            self._console.stop()  # the output printed so far is in output.log
            if "exception" in fields:  # printed after the streams are restored: log it too
                traceback = fields["exception"]["traceback"]
                writer.queue(_OUTPUT, traceback.encode("utf-8", "backslashreplace"))
        self._queue_error_counts()

        def end_line(summary: dict[str, Any] | None) -> bytes:
            """The end event, made once every metric line is written (and summarized)."""
            return self._event_line(
                Event.END, fields if summary is None else {**fields, "summary": summary}
            )

        writer.close(last=(RUN_EVENTS, end_line))

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
        params, tags = self._redacted(params), self._redacted(tags)
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

    def _start_sampler(self, interval: float | None) -> None:
        """Sample system metrics every ``interval`` seconds (None: off) into the system file."""
        if interval is None or self._writer is None:
            return
        from runjournal._sampler import SystemSampler

        writer, name = self._writer, self._system_file()
        sampler = SystemSampler(
            lambda line: writer.queue(name, line), seg=self._seg, interval=interval
        )
        try:
            sampler.start()
        except RuntimeError as error:  # no thread can be started: the run goes on without
            self._sampler_failed(str(error))
            return
        self._sampler = sampler

    def _system_file(self) -> str:
        """The file this writer's system samples go to."""
        from runjournal._sampler import SYSTEM

        return SYSTEM

    def _sampler_failed(self, message: str) -> None:
        self._record_capture_errors([{"part": "system_metrics", "message": message}])

    def _start_console(self, mode: str | None) -> None:
        """Tee stdout and stderr to ``output.log`` (``"python"`` or ``"fd"``; None: off)."""
        if mode is None or self._writer is None:
            return
        from runjournal._console import OUTPUT, ConsoleCapture

        writer = self._writer
        console = ConsoleCapture(
            lambda chunk: writer.queue(OUTPUT, chunk), mode=mode, run_dir=self._dir
        )
        try:
            console.start()
        except (OSError, RuntimeError) as error:  # a closed descriptor, no thread: no capture
            self._record_capture_errors([{"part": "console", "message": str(error)}])
            return
        self._console = console

    def _redacted(self, values: dict[str, Any]) -> dict[str, Any]:
        """Params or tags with secret values as ``"<redacted>"``; rare calls, never the hot path."""
        from runjournal.capture._redact import redact_params

        return redact_params(values, self._secret_words) if values else values


def _tag_value(key: str, value: object) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return check_text(str.__str__(value), f"tag {key!r}:", key=key)
    if isinstance(value, int):
        try:
            return encode_int(int(value))
        except ValueError as error:  # too long to write in decimal
            raise InvalidValueError(f"tag {key!r}: {error}", key=key, value=value) from None
    if isinstance(value, float) and math.isfinite(value):
        return float(value)  # a float subclass (np.float64) as the plain float orjson writes
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
