r"""Appending one whole line to a JSON-lines file, by the rules of the format.

Used by ``runjournal close`` to add the ``end`` event of a run that died
without one. The line goes in with ``O_APPEND`` and a single ``write``; when
the file's last byte is not ``\n`` (a line torn by the crash) a ``\n`` is
written first, in the same ``write``, so the torn line stays a separate,
skipped line instead of swallowing the new one (format rule 3).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runjournal._permissions import open_file
from runjournal.errors import StoreWriteError
from runjournal.format import dumps_line

__all__ = ["append_line"]


def append_line(path: Path, record: dict[str, Any]) -> None:
    r"""Append ``record`` as one JSON line to ``path``, creating the file if needed.

    Raises:
        StoreWriteError: the file system refused the write.

    Example:
        >>> _ = Path("events.jsonl").write_bytes(b'{"event": "start"')
        >>> append_line(Path("events.jsonl"), {"event": "end"})
        >>> Path("events.jsonl").read_bytes()
        b'{"event": "start"\n{"event":"end"}\n'
    """
    line = dumps_line(record)
    try:
        fd = open_file(path, os.O_RDWR | os.O_APPEND)
    except OSError as error:
        raise StoreWriteError(f"cannot open {path}: {error}", path=path.parent) from error
    try:
        size = os.lseek(fd, 0, os.SEEK_END)  # even where O_APPEND is not honoured
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"only {written} of {len(line)} bytes were written")
    except OSError as error:
        raise StoreWriteError(f"cannot append to {path}: {error}", path=path.parent) from error
    finally:
        os.close(fd)
