"""The buffered, append-only writer of one run's files, and its flusher thread.

The hot path (``Run.log``) appends each encoded line to the bytearray
:attr:`RunWriter.metric_buffer`; nothing else happens per call, and no lock is
taken: ``+=`` on a bytearray is atomic under the GIL, and the flusher takes
lines with a slice and a ``del`` of the same prefix, each atomic too, so a line
appended in between stays for the next flush. (A bytearray, not a list of
``bytes``: keeping 100k small objects alive costs far more than copying them.) A daemon thread
writes the buffer every ``flush_interval`` seconds, or sooner once it holds
``flush_bytes``. Rare events (params, tags, notes, lifecycle) are written at
once with :meth:`RunWriter.write_now`.

A write the file system refuses (disk full, file too large, a deleted or
read-only directory) never raises into the training loop: the bytes stay in
memory, up to ``max_unwritten`` bytes per file, and are retried first at the
next flush, so lines land in order once space is back. Past the cap new lines
are dropped and counted. The owner learns of both through ``on_problem``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from runjournal._permissions import open_file

if TYPE_CHECKING:
    from runjournal._end_summary import MetricsSummary

__all__ = ["AppendFile", "RunWriter", "WriteProblem", "defer_until_flushed", "signals_wait"]

_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
_MAX_UNWRITTEN = 64 * 1024 * 1024
_CHUNK_BYTES = 1 << 20
_JOIN_TIMEOUT = 5.0

# Python runs signal handlers in the main thread, between any two bytecodes, so
# a handler that flushes or raises could cut into a flush of the main thread.
# Handlers ask defer_until_flushed() first; these are only touched by that thread.
_main_flush_depth = 0
_deferred: list[Callable[[], None]] = []


def defer_until_flushed(action: Callable[[], None]) -> bool:
    """Run ``action`` once the main thread's flush in progress is done, if there is one.

    Returns:
        True if ``action`` was deferred; False if no flush is in progress and
        the caller should act now.
    """
    if _main_flush_depth and threading.current_thread() is threading.main_thread():
        _deferred.append(action)
        return True
    return False


@contextlib.contextmanager
def signals_wait() -> Iterator[None]:
    """Hold signal handlers that ask :func:`defer_until_flushed` until the block is done.

    Only the main thread runs signal handlers; in other threads this does nothing.
    """
    global _main_flush_depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _main_flush_depth += 1
    try:
        yield
    finally:
        _main_flush_depth -= 1
        if not _main_flush_depth:
            while _deferred:
                _deferred.pop(0)()


class WriteProblem(NamedTuple):
    """A write that did not happen, as reported to the writer's owner.

    Attributes:
        file: The file name within the run directory.
        error: What the file system said, or None when lines were dropped because
            the buffer of unwritten lines was full.
        dropped_lines: How many lines were given up for good (0 if all are kept).
    """

    file: str
    error: OSError | None
    dropped_lines: int = 0


class AppendFile:
    """One append-only file of a run and the bytes that could not be written yet.

    Not thread-safe: :class:`RunWriter` serialises all writes.
    """

    def __init__(self, path: Path, *, fsync: bool, max_unwritten: int = _MAX_UNWRITTEN) -> None:
        self.path = path
        self._fsync = fsync
        self._max_unwritten = max_unwritten
        self._fd: int | None = None
        self._unwritten = bytearray()
        self._written = 0
        self.observer: MetricsSummary | None = None
        """Told of every open (with the size found) and of every byte written, in order."""

    @property
    def unwritten_bytes(self) -> int:
        """Bytes held in memory because earlier writes failed."""
        return len(self._unwritten)

    def write(self, chunk: bytes | bytearray) -> WriteProblem | None:
        """Append ``chunk`` (whole lines) after any bytes still unwritten.

        The unwritten bytes are retried first; only while they still cannot be
        written does the memory cap apply to ``chunk`` (kept, or dropped whole
        and counted), so once space is back nothing new is dropped.

        Returns:
            None on success; otherwise what went wrong. Unwritten bytes are
            kept for the next call unless the memory cap forced a drop.
        """
        if self._unwritten:
            try:
                self._write_all(self._unwritten)
            except OSError as error:
                dropped = 0
                if len(self._unwritten) - self._written + len(chunk) > self._max_unwritten:
                    dropped = chunk.count(b"\n")
                else:
                    self._unwritten += chunk
                return WriteProblem(self.path.name, error, dropped)
            finally:
                self._keep_unwritten(self._unwritten)
        try:
            self._write_all(chunk)
        except OSError as error:
            return WriteProblem(self.path.name, error)
        finally:
            self._keep_unwritten(chunk)
        return None

    def _write_all(self, chunk: bytes | bytearray) -> None:
        """Write all of ``chunk``; on failure, what was written is not written again."""
        self._written = 0
        if not chunk:
            return
        fd = self._usable_fd()
        try:
            with memoryview(chunk) as view:
                while self._written < len(view):
                    self._written += os.write(fd, view[self._written :])
        finally:
            if self.observer is not None and self._written:
                self.observer.written(chunk[: self._written])
        if self._fsync:
            os.fsync(fd)

    def _keep_unwritten(self, chunk: bytes | bytearray) -> None:
        """After a write: keep the part of ``chunk`` that did not reach the file."""
        if chunk is self._unwritten:
            del self._unwritten[: self._written]
        else:
            self._unwritten += memoryview(chunk)[self._written :]

    def _usable_fd(self) -> int:
        """The open descriptor, reopened if the file was deleted under us."""
        if self._fd is not None and os.fstat(self._fd).st_nlink == 0:
            # Writing on would put lines into an unlinked inode nobody can read.
            self.close()
        if self._fd is None:
            self._fd = self._open()
        return self._fd

    def _open(self) -> int:
        fd = open_file(self.path, _OPEN_FLAGS)
        try:
            # Where O_APPEND is not honoured (some FUSE file systems), writes go
            # to the file offset: start at the end, never over the first lines.
            size = os.lseek(fd, 0, os.SEEK_END)
            if self.observer is not None:
                self.observer.opened(size)
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A crash tore the last line: end it here, so it stays a line of
                # its own (unreadable, and reported by readers) and the next
                # line starts fresh.
                os.write(fd, b"\n")
        except OSError:
            os.close(fd)
            raise
        return fd

    def close(self) -> None:
        """Close the descriptor; unwritten bytes stay for a later write."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            # Nothing more can be lost by a failed close of an append-only file.
            with contextlib.suppress(OSError):
                os.close(fd)

    def discard(self) -> None:
        """Forget the descriptor and the unwritten bytes (a forked child's copy)."""
        self._fd = None
        self._unwritten.clear()


class RunWriter:
    """Buffers and writes the files of one run, with a background flusher thread.

    Args:
        run_dir: The run directory; files are created in it on first write.
        file_names: The files this writer appends to; the first is the metrics file.
        flush_interval: Seconds between background flushes.
        flush_bytes: Buffered bytes that wake the flusher early.
        fsync: Whether every flush ends with ``fsync``.
        on_problem: Called (from whichever thread flushes) for every failed write.
        on_tick: Called by the flusher thread after each background flush
            (heartbeats, error counts).
        max_buffered: Buffered metric bytes beyond which new lines are dropped
            and counted, when the file system cannot keep up.
        summarize: Summarize the metric lines written, for the end event
            (:mod:`runjournal._end_summary`): the flusher thread folds each
            chunk it wrote, and :meth:`close` gives the result to ``last``.
    """

    def __init__(
        self,
        run_dir: Path,
        file_names: tuple[str, ...],
        *,
        flush_interval: float,
        flush_bytes: int = 1 << 20,
        fsync: bool = False,
        on_problem: Callable[[WriteProblem], None],
        on_tick: Callable[[], None],
        max_buffered: int = _MAX_UNWRITTEN,
        summarize: bool = False,
    ) -> None:
        self.lock = threading.RLock()  # re-entrant: a signal handler may end the run mid-call
        self.metric_buffer = bytearray()
        self.wake_bytes = flush_bytes
        self._flush_bytes = flush_bytes
        self.max_buffered = max_buffered
        self.dropped_lines = 0
        self._drop_lock = threading.Lock()
        self._metrics_file = file_names[0]
        self._files = {name: AppendFile(run_dir / name, fsync=fsync) for name in file_names}
        self._event_lines: dict[str, list[bytes]] = {name: [] for name in file_names[1:]}
        self._io_lock = threading.RLock()
        self._interval = flush_interval
        self._on_problem = on_problem
        self._on_tick = on_tick
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._owner_pid = os.getpid()
        self.summary: MetricsSummary | None = None
        if summarize:
            from runjournal._end_summary import MetricsSummary

            self.summary = MetricsSummary(self._metrics_file)
            self._files[self._metrics_file].observer = self.summary

    def start(self) -> None:
        """Start the background flusher (a daemon thread)."""
        self._thread = threading.Thread(target=self._flush_loop, name="runjournal-flusher")
        self._thread.daemon = True
        self._thread.start()

    def buffer_full(self) -> bool:
        """Called by the hot path, before it adds a line, once the buffer holds ``wake_bytes``.

        Wakes the flusher. Past ``max_buffered`` the line must not be added:
        returns True and counts it as dropped, so memory stays bounded when the
        disk cannot keep up. (Deciding before the line is added, never removing
        it afterwards: a line taken back from the end could be another
        thread's, or already written by the flusher.)
        """
        if self.wake_bytes < self.max_buffered:
            self.wake_bytes = self.max_buffered  # one wake-up per flush is enough
            self._wake.set()
        if len(self.metric_buffer) < self.max_buffered:
            return False
        with self._drop_lock:  # threads dropping at once must all be counted
            self.dropped_lines += 1
        return True

    def queue(self, file_name: str, line: bytes) -> None:
        """Queue a line for ``file_name``, written at the next flush."""
        with self.lock:
            self._event_lines[file_name].append(line)

    def write_now(self, file_name: str, line: bytes) -> WriteProblem | None:
        """Write a line to ``file_name`` at once, after everything queued before it."""
        self.queue(file_name, line)
        return self.flush(only=file_name)

    def flush(self, *, only: str | None = None) -> WriteProblem | None:
        """Write buffered lines (of every file, or ``only`` one) and return the first problem.

        Every problem is also reported through ``on_problem``.
        """
        if os.getpid() != self._owner_pid:
            return None  # a forked child never writes its parent's lines
        with signals_wait():
            return self._flush(only)

    def _flush(self, only: str | None, *, metrics: bool = True) -> WriteProblem | None:
        with self._io_lock:
            problems = []
            if metrics and only in (None, self._metrics_file):
                problems.append(self._flush_metrics())
            for name, chunk in self._take_events(only).items():
                problems.append(self._files[name].write(chunk))
            first: WriteProblem | None = None
            for problem in problems:
                if problem is not None:
                    self._on_problem(problem)
                    first = first or problem
            return first

    def _flush_metrics(self) -> WriteProblem | None:
        """Write the metric lines buffered so far, a bounded chunk at a time.

        Copying a chunk holds the GIL; writing it releases it. Chunks of at
        most ``_CHUNK_BYTES`` keep each hold short, so the training loop is
        never stalled by a large backlog (after a slow write, say).
        """
        self.wake_bytes = self._flush_bytes
        file = self._files[self._metrics_file]
        remaining = len(self.metric_buffer)  # lines logged during the flush wait for the next
        while True:
            chunk = self._take_metric_chunk(remaining)
            remaining -= len(chunk)
            problem = file.write(chunk)
            if problem is not None or remaining <= 0:
                return problem

    def _take_metric_chunk(self, limit: int) -> bytearray:
        """Take whole lines from the front of the buffer, at most about ``_CHUNK_BYTES``.

        Only the hot path appends, and only at the end, so the prefix measured
        here is still the prefix when it is sliced and deleted.
        """
        buffer = self.metric_buffer
        end = min(limit, len(buffer))
        if end > _CHUNK_BYTES:
            cut = buffer.rfind(b"\n", 0, _CHUNK_BYTES) + 1
            end = cut or buffer.find(b"\n") + 1  # a single line longer than a chunk
        chunk = buffer[:end]
        del buffer[:end]
        return chunk

    def _take_events(self, only: str | None) -> dict[str, bytes]:
        """Take the queued event lines (of every file, or ``only`` one) under the lock."""
        with self.lock:
            taken = {}
            for name, lines in self._event_lines.items():
                if (only is None or name == only) and lines:
                    taken[name] = lines
                    self._event_lines[name] = []
        chunks = {name: b"".join(lines) for name, lines in taken.items()}
        for name, file in self._files.items():
            wanted = only is None or name == only
            if (
                wanted
                and name not in chunks
                and name != self._metrics_file
                and file.unwritten_bytes
            ):
                chunks[name] = b""  # retry what failed before, even with nothing new
        return chunks

    def _flush_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopping:
                break
            self.flush()
            self._on_tick()
            if self.summary is not None:
                self.summary.fold_when_quiet()  # never raises; off the training loop's thread

    def close(
        self, last: tuple[str, bytes | Callable[[dict[str, Any] | None], bytes]] | None = None
    ) -> WriteProblem | None:
        """Stop the flusher, flush everything, close the files; returns the first problem.

        Args:
            last: A final line for a file (the run's end event), queued only
                once no flush is in progress, so that it is written after every
                line logged before this call: a run that reads as ended never
                misses one of them. Instead of the line, a function that makes
                it from the summary of the metrics file (None when there is
                none), called once every metric line is written.

        A signal that arrives meanwhile (SIGTERM, Ctrl-C) is handled once the
        last lines are written, not while waiting for the flusher thread.
        """
        with signals_wait():
            self._stopping = True
            self._wake.set()
            if self.summary is not None:
                self.summary.hurry = True  # a fold in progress: finish it, the loop is over
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(_JOIN_TIMEOUT)
            with self._io_lock:  # a flush still in progress (a slow disk) has finished
                problem = None
                if last is not None:
                    name, line = last
                    if not isinstance(line, bytes):
                        problem = self.flush(only=self._metrics_file)
                        make = line
                        try:
                            line = make(self._summary_at_end())
                        except Exception:  # never lose the last line for its summary's sake
                            line = make(None)
                    self.queue(name, line)
                if os.getpid() == self._owner_pid:  # not again the metrics that just failed
                    later = self._flush(None, metrics=problem is None)
                    problem = problem or later
                for file in self._files.values():
                    file.close()
            return problem

    def _summary_at_end(self) -> dict[str, Any] | None:
        """The summary of the metrics file, once all of it is written (None: there is none)."""
        if self.summary is None or self._files[self._metrics_file].unwritten_bytes:
            return None
        return self.summary.result()

    def unwritten_bytes(self) -> int:
        """Bytes held in memory because the file system refused them."""
        return sum(file.unwritten_bytes for file in self._files.values())

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's buffers and descriptors, never write them."""
        self.lock = threading.RLock()
        self._io_lock = threading.RLock()
        self._drop_lock = threading.Lock()
        self.metric_buffer.clear()
        self._event_lines = {name: [] for name in self._event_lines}
        for file in self._files.values():
            file.discard()
            file.observer = None
        self.summary = None
        self._thread = None
        self._stopping = True
