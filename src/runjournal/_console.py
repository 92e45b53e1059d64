"""Console capture: stdout and stderr tee'd to ``output.log``, still reaching the terminal.

Two modes (``start(capture_output=...)``):

- ``True`` (``"python"``): ``sys.stdout`` and ``sys.stderr`` are replaced by
  tees that write to the original stream and queue the same text for
  ``output.log``. Cheap and portable; it sees what Python code prints, not
  what C extensions or child processes write to the file descriptors.
- ``"fd"``: file descriptors 1 and 2 are pointed (``dup2``) at pipes; a
  thread per pipe copies what arrives to the original descriptor and queues
  it for ``output.log``. This also captures C libraries and child processes
  (which inherit descriptors 1 and 2).

Either way the text is queued through the run's writer and written by its
flusher thread, raw (no timestamps, no prefixes), so ``output.log`` reads like
the terminal did. ``stop()`` restores the streams and descriptors; in ``fd``
mode the pipe threads go on forwarding to the terminal whatever a child that
outlives the run still writes, but no longer log it.

Example:
    >>> chunks = []
    >>> capture = ConsoleCapture(chunks.append, mode="python")
    >>> capture.start()
    >>> print("hello")
    hello
    >>> capture.stop()
    >>> b"".join(chunks).splitlines()
    [b'hello']
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

__all__ = ["MODES", "OUTPUT", "ConsoleCapture"]

OUTPUT = "output.log"
"""The file of captured console output in a run directory."""

MODES = ("python", "fd")
_READ_BYTES = 1 << 16
_DRAIN_SECONDS = 30.0  # a bound for a thread that cannot write to the terminal


class _Tee:
    """A text stream that writes to ``stream`` and hands the same text, encoded, to ``sink``."""

    def __init__(self, stream: TextIO, sink: Callable[[bytes], None]) -> None:
        self._stream = stream
        self._sink = sink
        self._owner = os.getpid()
        self.active = True

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        if self.active and text and os.getpid() == self._owner:
            with contextlib.suppress(Exception):  # logging must never break a print
                self._sink(text.encode("utf-8", "backslashreplace"))
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer...
        return getattr(self._stream, name)


class _Pipe:
    """Descriptor ``target`` pointed at a pipe; a thread copies the pipe to the old target.

    Where logging stops is marked in the pipe itself: :meth:`restore` writes a
    random marker through the pipe once the descriptor is pointed back, and
    the thread logs what comes before it and only forwards what comes after
    (a child that outlives the run may still write). Everything this process
    wrote before ``restore`` is ahead of the marker, so none of it is lost
    however late the thread gets to it.
    """

    def __init__(self, target: int, sink: Callable[[bytes], None]) -> None:
        self.target = target
        self._sink = sink
        self._marker = b"\0runjournal-" + os.urandom(8).hex().encode() + b"\0"
        self._passed = threading.Event()
        self._saved = os.dup(target)
        read_end, write_end = os.pipe()
        self._read = read_end
        os.dup2(write_end, target)
        os.close(write_end)
        self._thread = threading.Thread(
            target=self._copy, name=f"runjournal-console-{target}", daemon=True
        )
        self._thread.start()

    def _copy(self) -> None:
        held = b""  # the end of what was read, when it may be the start of the marker
        while True:
            try:
                chunk = os.read(self._read, _READ_BYTES)
            except OSError:
                break
            if not chunk:
                break
            if self._passed.is_set():
                self._forward(chunk, log=False)
            else:
                held = self._before_marker(held + chunk)
        self._forward(held, log=True)
        self._passed.set()
        with contextlib.suppress(OSError):
            os.close(self._read)
            os.close(self._saved)

    def _before_marker(self, data: bytes) -> bytes:
        """Log and forward ``data`` up to the marker; return what to hold for the next read."""
        at = data.find(self._marker)
        if at >= 0:
            self._forward(data[:at], log=True)
            self._passed.set()
            self._forward(data[at + len(self._marker) :], log=False)
            return b""
        keep = _marker_start(data, self._marker)
        self._forward(data[: len(data) - keep], log=True)
        return data[len(data) - keep :]

    def _forward(self, chunk: bytes, *, log: bool) -> None:
        with contextlib.suppress(OSError):
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._saved, view) :]
        if log and chunk:
            with contextlib.suppress(Exception):
                self._sink(chunk)

    def restore(self) -> None:
        """Point the descriptor back, then wait until what was written before is logged."""
        pipe = os.dup(self.target)
        try:
            os.dup2(self._saved, self.target)
            os.write(pipe, self._marker)
        finally:
            os.close(pipe)
        self._passed.wait(_DRAIN_SECONDS)


def _marker_start(data: bytes, marker: bytes) -> int:
    """The length of the longest end of ``data`` that begins ``marker`` (0: none).

    Example:
        >>> _marker_start(b"text<ru", b"<runjournal>"), _marker_start(b"text", b"<r")
        (3, 0)
    """
    for size in range(min(len(marker) - 1, len(data)), 0, -1):
        if data.endswith(marker[:size]):
            return size
    return 0


class ConsoleCapture:
    """Tees the process's console output into ``sink`` (the writer's queue for ``output.log``).

    Args:
        sink: Takes raw output bytes; called from any thread, must not print.
        mode: ``"python"`` (``sys.stdout``/``sys.stderr``) or ``"fd"`` (descriptors 1 and 2).
    """

    def __init__(
        self, sink: Callable[[bytes], None], *, mode: str, run_dir: Path | None = None
    ) -> None:
        self._sink = sink
        self.mode = mode
        self._run_dir = run_dir
        self._tees: list[tuple[str, _Tee]] = []
        self._pipes: list[_Pipe] = []

    def start(self) -> None:
        """Start capturing. In ``fd`` mode, Python's buffered output is flushed first."""
        if self.mode == "fd":
            _flush_python_streams()
            try:
                for target in (1, 2):
                    _check_descriptor(target, self._run_dir)
                    self._pipes.append(_Pipe(target, self._sink))
            except BaseException:
                self.stop()  # the descriptor already redirected goes back
                raise
            return
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is None:
                continue
            tee = _Tee(stream, self._sink)
            setattr(sys, name, tee)
            self._tees.append((name, tee))

    def stop(self) -> None:
        """Restore the streams and descriptors; what was printed before is logged."""
        if self._pipes:
            _flush_python_streams()
            for pipe in self._pipes:
                with contextlib.suppress(OSError):
                    pipe.restore()
            self._pipes = []
        for name, tee in self._tees:
            tee.active = False
            if getattr(sys, name) is tee:  # else someone wrapped it since: leave theirs
                setattr(sys, name, tee._stream)
        self._tees = []


def _check_descriptor(target: int, run_dir: Path | None) -> None:
    """Refuse a descriptor that is one of the run's own files.

    A process that closed descriptor 1 before ``start()`` has it reused by the
    first file opened next, which may be one of the run's: redirecting it
    would send the run's own lines into the pipe.

    Raises:
        OSError: the descriptor is closed, or is a file of the run directory.
    """
    status = os.fstat(target)
    if run_dir is None or not stat.S_ISREG(status.st_mode):
        return
    with os.scandir(run_dir) as entries:
        names = [
            entry.name
            for entry in entries
            if (entry.stat(follow_symlinks=False).st_ino, entry.stat().st_dev)
            == (status.st_ino, status.st_dev)
        ]
    if names:
        raise OSError(
            f"descriptor {target} is the run's own {names[0]} (it was closed before"
            " start()); output is not captured"
        )


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
