r"""Counting the bytes hashed, and a one-line progress bar for people watching.

The bar is drawn on stderr only when stderr is a terminal, the input is
large (:data:`MIN_BYTES`) and hashing has already taken :data:`DELAY`
seconds; it is redrawn in place with ``\r`` and erased at the end. Batch
jobs, pipes and notebooks get nothing.

Example:
    >>> import io
    >>> meter = Progress("train", 10 << 30, stream=io.StringIO())
    >>> meter.advance(1 << 20)
    >>> meter.done
    1048576
    >>> meter.close()
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from runjournal._terminal import safe

__all__ = ["DELAY", "MIN_BYTES", "CancelledError", "Progress", "format_bytes"]

MIN_BYTES = 256 << 20
"""Inputs smaller than this never show a bar."""

DELAY = 0.5
"""Seconds of hashing before the bar appears, so fast hashes stay silent."""

_REDRAW = 0.2


class CancelledError(Exception):
    """Raised in hashing threads once another thread has failed."""


class Progress:
    """Counts bytes read by any number of threads; draws the bar when it should.

    Args:
        label: What is being hashed (the data name).
        total: How many bytes will be read.
        stream: Where to draw (default ``sys.stderr``), if it is a terminal.
    """

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None) -> None:
        self.done = 0
        self.cancelled = False
        self._label = safe(label)
        self._total = total
        self._stream = stream if stream is not None else sys.stderr
        self._show = total >= MIN_BYTES and _is_terminal(self._stream)
        self._started = time.monotonic()
        self._next_draw = self._started + DELAY
        self._width = 0
        self._lock = threading.Lock()

    def advance(self, count: int) -> None:
        """Count ``count`` more bytes read; raises :class:`CancelledError` once cancelled."""
        if self.cancelled:
            raise CancelledError
        with self._lock:
            self.done += count
        if self._show and time.monotonic() >= self._next_draw:
            self._draw()

    def cancel(self) -> None:
        """Make every later :meth:`advance` raise, so that other threads stop early."""
        self.cancelled = True

    def close(self) -> None:
        """Erase the bar, if one was drawn."""
        if self._width:
            self._write("\r" + " " * self._width + "\r")
            self._width = 0

    def _draw(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread is drawing
        try:
            now = time.monotonic()
            self._next_draw = now + _REDRAW
            rate = self.done / max(now - self._started, 1e-9)
            percent = 100 * self.done / max(self._total, 1)
            text = (
                f"runjournal: hashing {self._label}  {percent:3.0f}%"
                f"  {format_bytes(self.done)} / {format_bytes(self._total)}"
                f"  {format_bytes(rate)}/s"
            )
            padding = " " * max(0, self._width - len(text))
            self._width = len(text)
            self._write("\r" + text + padding)
        finally:
            self._lock.release()

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            self._show = False  # a closed terminal is no reason to fail hashing


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def format_bytes(count: float) -> str:
    """A byte count for humans, in binary units.

    Example:
        >>> format_bytes(512), format_bytes(3 << 20), format_bytes(1.5 * (1 << 30))
        ('512 B', '3.0 MiB', '1.5 GiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            break
        count /= 1024
    if unit == "B":
        return f"{count:.0f} B"
    return f"{count:.1f} {unit}"
