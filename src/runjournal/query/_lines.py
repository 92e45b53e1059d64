"""Tolerant reading of one run's JSON-lines files, and the warning about what was skipped.

The line codec in :mod:`runjournal.format` skips torn, garbage and NUL lines.
This module adds what a reader of a *run* needs on top: an unreadable file
(permissions, a directory in its place) becomes a reported problem instead of
an exception, a record can be mapped back to its line number when its content
turns out to be unusable, and each file with skipped lines gives exactly one
warning that names the file relative to the store.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runjournal.errors import RunjournalWarning
from runjournal.format import LineBatch, SkippedLine, parse_lines, read_file

__all__ = ["JsonLines", "read_jsonl", "warn_skipped"]


@dataclass
class JsonLines:
    """The records of one JSON-lines file, with the lines that could not be used.

    Attributes:
        name: The file name within the run directory.
        records: The JSON objects, in file order.
        skipped: The lines skipped so far; callers add records they cannot use.
    """

    name: str
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[SkippedLine] = field(default_factory=list)
    _data: bytes = b""
    _numbers: list[int] | None = None

    def line_number(self, index: int) -> int:
        """The 1-based line number of ``records[index]``.

        Computed only when a record has to be reported, so the common path pays
        nothing: the numbers are those of the non-blank lines that were not skipped.

        Example:
            >>> lines = read_jsonl(Path("no-such-file.jsonl"))
            >>> lines.records, lines.skipped
            ([], [])
        """
        if self._numbers is None:
            bad = {skipped.line for skipped in self.skipped}
            complete = self._data[: self._data.rfind(b"\n") + 1]
            self._numbers = [
                number
                for number, line in enumerate(complete.split(b"\n")[:-1], start=1)
                if line.strip() and number not in bad
            ]
        return self._numbers[index]

    def skip(self, index: int, reason: str) -> None:
        """Report ``records[index]`` as skipped, with its line number and ``reason``."""
        self.skipped.append(SkippedLine(self.name, self.line_number(index), reason))


def read_jsonl(path: Path) -> JsonLines:
    r"""Read a JSON-lines file tolerantly: a missing file is empty, an unreadable one reported.

    Example:
        >>> _ = Path("demo.jsonl").write_bytes(b'{"a": 1}\n{"b": 2')
        >>> lines = read_jsonl(Path("demo.jsonl"))
        >>> lines.records, [str(s) for s in lines.skipped]
        ([{'a': 1}], ['demo.jsonl:2: incomplete last line'])
    """
    try:
        data = read_file(path)  # never blocks on a FIFO nor reads a device
    except FileNotFoundError:
        return JsonLines(path.name)
    except OSError as error:
        reason = f"cannot read the file: {error.strerror or error}"
        return JsonLines(path.name, skipped=[SkippedLine(path.name, 0, reason)])
    batch: LineBatch = parse_lines(data, path.name)
    return JsonLines(path.name, batch.records, batch.skipped, data)


def warn_skipped(location: str, skipped: list[SkippedLine]) -> None:
    """Warn once for a file with skipped lines, naming it and counting them.

    Args:
        location: The file's path relative to the store, e.g. ``runs/<id>/metrics.jsonl``.
        skipped: The lines skipped in that file; nothing is said when empty.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_skipped("runs/r1/run.jsonl", [SkippedLine("run.jsonl", 3, "not valid JSON")])
        >>> print(caught[0].message)
        runs/r1/run.jsonl: skipped 1 unreadable line (line 3: not valid JSON); the rest was read
    """
    if not skipped:
        return
    count = len(skipped)
    first = skipped[0]
    where = f"line {first.line}" if first.line else "the file"
    plural = "line" if count == 1 else "lines"
    more = "" if count == 1 else f", first at {where}"
    detail = f"{where}: {first.reason}" if count == 1 else f"{first.reason}{more}"
    warnings.warn(
        f"{location}: skipped {count} unreadable {plural} ({detail}); the rest was read",
        RunjournalWarning,
        stacklevel=4,
    )
