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
_DRAIN_SECONDS = 0.5


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
    """Descriptor ``target`` pointed at a pipe; a thread copies the pipe to the old target."""

    def __init__(self, target: int, sink: Callable[[bytes], None]) -> None:
        self.target = target
        self._sink = sink
        self.logging = True
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
        while True:
            try:
                chunk = os.read(self._read, _READ_BYTES)
            except OSError:
                return
            if not chunk:
                break
            self._forward(chunk)
        with contextlib.suppress(OSError):
            os.close(self._read)
            os.close(self._saved)

    def _forward(self, chunk: bytes) -> None:
        with contextlib.suppress(OSError):
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._saved, view) :]
        if self.logging:
            with contextlib.suppress(Exception):
                self._sink(chunk)

    def restore(self) -> None:
        """Point the descriptor back; log what is still in the pipe, then stop logging.

        Once the descriptor is restored nothing in this process holds the
        pipe's write end, so the thread reads to the end and stops. A child
        that still holds it (it outlives the run) keeps the thread forwarding
        to the terminal, after a short wait, without logging.
        """
        os.dup2(self._saved, self.target)
        self._thread.join(_DRAIN_SECONDS)
        self.logging = False


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
