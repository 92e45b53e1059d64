r"""Reading the new bytes of an append-only file, and parsing them into numbered records.

The files of a run only grow, in whole lines (``docs/format.md``, rules 1 and
3), so a reader that remembers how far it parsed a file can read only what
was appended since. A :class:`FileMark` remembers, per file, its inode, the
offset just past the last complete line parsed, the modification time, the
number of lines before the offset, and a CRC-32 of the :data:`TAIL` bytes
before it. :func:`scan` then reads:

- nothing, when the inode, size and modification time are unchanged;
- the bytes after the offset, when the file grew and the bytes before the
  offset still have the remembered checksum (a window of at most
  :data:`TAIL` bytes is read again to check it);
- the whole file, when it is new, was replaced (another inode), shrank, or
  its bytes before the offset changed.

An incomplete last line (no ``\n`` yet) is not consumed: it is reported and
read again next time, when it may be complete.

Every read goes through :func:`read_range`, and :data:`COUNTER` adds up the
bytes read, so tests can check that an incremental reload reads only what
was appended.

Example:
    >>> from pathlib import Path
    >>> _ = Path("grow.jsonl").write_bytes(b'{"a": 1}\n')
    >>> first = scan(Path("grow.jsonl"), None)
    >>> first.records, first.mark.size
    ([{'a': 1}], 9)
    >>> with open("grow.jsonl", "ab") as file:
    ...     _ = file.write(b'{"a": 2}\n{"a"')
    >>> second = scan(Path("grow.jsonl"), first.mark)
    >>> second.reset, list(second.lines), second.records, [str(s) for s in second.tail]
    (False, [2], [{'a': 2}], ['grow.jsonl:3: incomplete last line'])
"""

from __future__ import annotations

import errno
import os
import re
import stat
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from runjournal.format import SkippedLine

__all__ = ["COUNTER", "TAIL", "FileMark", "ReadCounter", "Scan", "read_range", "scan"]

_SPLIT = re.compile(rb"\}\s*,\s*\{")
"""Two objects side by side: in a line, the one thing that could make a whole-chunk parse wrong."""

TAIL = 64
"""Bytes before the remembered offset whose checksum must still match."""

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_READ_SIZE = 1 << 20


class ReadCounter:
    """Bytes read by :func:`read_range`: new data, and the re-read checksum windows.

    Example:
        >>> counter = ReadCounter()
        >>> counter.data, counter.check, counter.files
        (0, 0, 0)
    """

    def __init__(self) -> None:
        self.data = 0
        self.check = 0
        self.files = 0

    def reset(self) -> None:
        """Start counting from zero."""
        self.data = self.check = self.files = 0


COUNTER = ReadCounter()
"""What every scan has read so far in this process (for tests and benchmarks)."""


@dataclass(frozen=True)
class FileMark:
    """How far a file was parsed, and what it looked like then.

    Attributes:
        ino: The inode number.
        size: The offset just past the last complete line parsed.
        mtime_ns: The modification time seen when it was read.
        lines: The number of lines (newlines) before ``size``.
        tail: CRC-32 of the bytes ``[max(0, size - TAIL), size)``.
    """

    ino: int
    size: int
    mtime_ns: int
    lines: int
    tail: int

    def to_json(self) -> list[int]:
        """The mark as a JSON array."""
        return [self.ino, self.size, self.mtime_ns, self.lines, self.tail]

    @classmethod
    def from_json(cls, value: Any) -> FileMark | None:
        """A mark from :meth:`to_json`; None for anything else."""
        if isinstance(value, list) and len(value) == 5 and all(type(v) is int for v in value):
            return cls(*value)
        return None


@dataclass
class Scan:
    """What one :func:`scan` found.

    Attributes:
        mark: The mark after this read (None: the file is missing or unreadable).
        reset: Whether the file was read from the start (new, replaced or shrunk).
        records: The new complete lines that are JSON objects, in file order.
        lines: The line number of each record.
        skipped: New complete lines that are not JSON objects, in line order.
        tail: The incomplete last line, if any (not consumed; read again next time).
        unchanged: Nothing was read: the file is as the old mark says.
        error: Why the file could not be read, if it could not.
    """

    mark: FileMark | None
    reset: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)
    lines: Sequence[int] = ()
    skipped: list[SkippedLine] = field(default_factory=list)
    tail: list[SkippedLine] = field(default_factory=list)
    unchanged: bool = False
    error: str | None = None


def read_range(path: Path, offset: int) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file from ``offset`` to its end, and its status.

    Like :func:`runjournal.format.read_file`: opened without blocking, and only
    a regular file is read (a FIFO or a device in a store is refused).

    Raises:
        FileNotFoundError: there is no such file.
        OSError: it cannot be read, or is not a regular file.

    Example:
        >>> _ = Path("r.txt").write_bytes(b"hello")
        >>> read_range(Path("r.txt"), 3)[0]
        b'lo'
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        chunks = []
        position = offset
        while chunk := os.pread(fd, max(status.st_size - position + 1, _READ_SIZE), position):
            chunks.append(chunk)
            position += len(chunk)
        return b"".join(chunks), status
    finally:
        os.close(fd)


def scan(path: Path, mark: FileMark | None, status: os.stat_result | None = None) -> Scan:
    """Read what is new in ``path`` since ``mark``, and parse its complete lines.

    Args:
        path: The file.
        mark: Where an earlier scan stopped, or None to read it whole.
        status: The file's ``os.stat`` if the caller has it; saves one call.

    Never raises for the file's content or absence: a missing file is a scan
    with no mark; an unreadable one has ``error`` set.
    """
    if mark is not None:
        if status is None:
            try:
                status = path.stat()
            except FileNotFoundError:
                return Scan(None, reset=True)
            except OSError as error:
                return Scan(None, reset=True, error=error.strerror or str(error))
        if (
            status.st_ino == mark.ino
            and status.st_size == mark.size
            and status.st_mtime_ns == mark.mtime_ns
        ):
            return Scan(mark, unchanged=True)
        if status.st_ino != mark.ino or status.st_size < mark.size:
            mark = None
    window = 0 if mark is None else min(mark.size, TAIL)
    start = 0 if mark is None else mark.size - window
    try:
        data, found = read_range(path, start)
    except FileNotFoundError:
        return Scan(None, reset=True)
    except OSError as error:
        return Scan(None, reset=True, error=error.strerror or str(error))
    COUNTER.files += 1
    COUNTER.check += min(window, len(data))
    COUNTER.data += max(len(data) - window, 0)
    if mark is not None and (
        found.st_ino != mark.ino or len(data) < window or zlib.crc32(data[:window]) != mark.tail
    ):
        return scan(path, None)  # replaced or rewritten in place: read it whole
    if mark is None:
        return _parse(path.name, data, 0, 0, lines=0, status=found)
    result = _parse(path.name, data, window, start, lines=mark.lines, status=found)
    result.reset = False
    return result


def _parse(
    name: str, data: bytes, window: int, base: int, *, lines: int, status: os.stat_result
) -> Scan:
    """Parse ``data[window:]``, whose first new line is line ``lines + 1``.

    ``data`` starts at offset ``base``, ``window`` bytes before the old mark.
    """
    complete_end = max(data.rfind(b"\n") + 1, window)
    body = data[window:complete_end]
    count = body.count(b"\n")
    parsed = _parse_whole(body, count)
    if parsed is not None:
        numbers: Sequence[int] = range(lines + 1, lines + 1 + count)
        records, skipped = parsed, list[SkippedLine]()
    else:
        pieces = body.split(b"\n")[:-1] if body else []
        numbers, records, skipped = parse_numbered(pieces, name, lines + 1)
    lines += count
    size = base + complete_end
    checked = data[max(0, size - TAIL) - base : complete_end]
    mark = FileMark(status.st_ino, size, status.st_mtime_ns, lines, zlib.crc32(checked))
    tail = []
    if complete_end < len(data):
        tail.append(SkippedLine(name, lines + 1, "incomplete last line"))
    return Scan(mark, reset=True, records=records, lines=numbers, skipped=skipped, tail=tail)


def _parse_whole(body: bytes, count: int) -> list[dict[str, Any]] | None:
    """The lines as one JSON array, parsed at once, when that is surely the same as line by line.

    Parsing a whole chunk at once is a quarter faster. It is the same as
    parsing each line when every line is one JSON object; it could differ only
    if a line held more than one object and another held a part of one, and
    the first needs ``}`` and ``{`` with only a comma between them (at the top
    level), which no line of runjournal's has: then lines are parsed one by one.
    """
    if not count or _SPLIT.search(body):
        return None
    try:
        parsed = orjson.loads(b"[" + body[:-1].replace(b"\n", b",") + b"]")
    except orjson.JSONDecodeError:
        return None
    if len(parsed) != count or not set(map(type, parsed)) <= {dict}:
        return None
    return parsed  # type: ignore[no-any-return]


def parse_numbered(
    pieces: list[bytes], name: str, first_line: int
) -> tuple[Sequence[int], list[dict[str, Any]], list[SkippedLine]]:
    """Complete lines (without their newline) as JSON objects with their numbers, and the skips.

    Blank lines are ignored; a line that is not valid JSON or not an object is
    skipped, as :func:`runjournal.format.parse_lines` does.

    Example:
        >>> numbers, records, skipped = parse_numbered([b'{"a": 1}', b"", b"[1]"], "x.jsonl", 5)
        >>> list(numbers), records, [str(s) for s in skipped]
        ([5], [{'a': 1}], ['x.jsonl:7: not a JSON object'])
    """
    try:
        parsed = list(map(orjson.loads, pieces))  # the common case: every line is JSON
    except orjson.JSONDecodeError:
        return _parse_each(pieces, name, first_line)
    if set(map(type, parsed)) <= {dict}:
        return range(first_line, first_line + len(parsed)), parsed, []
    return _parse_each(pieces, name, first_line)


def _parse_each(
    pieces: list[bytes], name: str, first_line: int
) -> tuple[list[int], list[dict[str, Any]], list[SkippedLine]]:
    numbers: list[int] = []
    records: list[dict[str, Any]] = []
    skipped: list[SkippedLine] = []
    for number, piece in enumerate(pieces, start=first_line):
        if not piece.strip():
            continue
        try:
            record = orjson.loads(piece)
        except orjson.JSONDecodeError:
            skipped.append(SkippedLine(name, number, "not valid JSON"))
            continue
        if isinstance(record, dict):
            numbers.append(number)
            records.append(record)
        else:
            skipped.append(SkippedLine(name, number, "not a JSON object"))
    return numbers, records, skipped
