"""The line codec: JSON values beyond JSON's reach, and tolerant reading of JSON lines.

JSON has no NaN or infinities and orjson has no integers beyond 64 bits, so
those values are written as one-key tagged objects that any JSON parser reads:

    float("nan")   ->  {"$float": "nan"}
    float("inf")   ->  {"$float": "inf"}          (and "-inf")
    2**70          ->  {"$int": "1180591620717411303424"}

A user's own dict whose only key is one of the tags is wrapped as
``{"$dict": {...}}`` so that decoding is exact for every value.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
"""orjson writes and reads integers in [INT_MIN, INT_MAX] exactly; others are tagged."""

FLOAT_TAG = "$float"
INT_TAG = "$int"
DICT_TAG = "$dict"
_TAGS = frozenset({FLOAT_TAG, INT_TAG, DICT_TAG})

_NAN: dict[str, Any] = {FLOAT_TAG: "nan"}
_POS_INF: dict[str, Any] = {FLOAT_TAG: "inf"}
_NEG_INF: dict[str, Any] = {FLOAT_TAG: "-inf"}
_SPECIAL_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

_DUMPS_OPTIONS = orjson.OPT_APPEND_NEWLINE


def encode_float(value: float) -> float | dict[str, Any]:
    """A float as stored: itself when finite, else its tagged form."""
    if value - value == 0.0:  # false for NaN and both infinities, without a call
        return value
    if math.isnan(value):
        return _NAN
    return _POS_INF if value > 0 else _NEG_INF


def encode_int(value: int) -> int | dict[str, Any]:
    """An int as stored: itself within 64 bits, else its tagged decimal form."""
    if INT_MIN <= value <= INT_MAX:
        return value
    return {INT_TAG: str(value)}


def wrap_dict(value: dict[str, Any]) -> dict[str, Any]:
    """A user's dict as stored: wrapped when it could be mistaken for a tag."""
    if len(value) == 1 and next(iter(value)) in _TAGS:
        return {DICT_TAG: value}
    return value


def is_tagged(value: dict[str, Any]) -> bool:
    """Whether a stored dict is a tagged value (or a wrapped user dict), not a plain object."""
    return len(value) == 1 and next(iter(value)) in _TAGS


def decode_value(value: Any) -> Any:
    """Undo the tagging of :func:`encode_float`, :func:`encode_int` and :func:`wrap_dict`.

    Never raises: a tagged value that cannot be decoded (``{"$int": "abc"}``,
    more digits than Python converts) stays the object it is on disk, and so
    does a value nested too deeply to walk; readers then see it is not a number.

    Example:
        >>> decode_value({"$float": "-inf"})
        -inf
        >>> decode_value({"a": [1, {"$int": "18446744073709551616"}]})
        {'a': [1, 18446744073709551616]}
        >>> decode_value({"$int": "12abc"})
        {'$int': '12abc'}
    """
    try:
        return _decode(value)
    except RecursionError:
        return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            tag, inner = next(iter(value.items()))
            if tag == FLOAT_TAG and inner in _SPECIAL_FLOATS:
                return _SPECIAL_FLOATS[inner]
            if tag == INT_TAG and isinstance(inner, str):
                return _decode_int(value, inner)
            if tag == DICT_TAG and isinstance(inner, dict):
                return {key: _decode(item) for key, item in inner.items()}
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _decode_int(tagged: dict[str, Any], digits: str) -> Any:
    if digits.isascii() and digits.lstrip("-").isdigit():
        try:
            return int(digits)
        except ValueError:  # more digits than sys.get_int_max_str_digits()
            pass
    return tagged


MAX_NESTING = 136
"""How deeply a decoded line may nest: params nest 64 levels, each perhaps wrapped once,
inside a record; anything deeper no writer produces, and readers skip it as hostile."""


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` nests dicts and lists more than ``limit`` deep (found without recursion).

    Example:
        >>> too_deep({"a": [[1]]}, limit=3), too_deep({"a": [[1]]}, limit=2)
        (False, True)
    """
    level: list[Any] = [value] if isinstance(value, (dict, list)) else []
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


def dumps_line(record: dict[str, Any]) -> bytes:
    """One record as one JSON line ending in a newline."""
    return orjson.dumps(record, option=_DUMPS_OPTIONS)


@dataclass(frozen=True)
class SkippedLine:
    """A line a reader could not use, and why.

    Attributes:
        file: The file name within the run directory.
        line: The 1-based line number.
        reason: What was wrong with it.
    """

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class LineBatch:
    """The records read from a JSON-lines file, with what had to be skipped.

    (A plain class, not a dataclass: making one costs a millisecond of import.)

    Attributes:
        records: The decodable lines, each a dict, in file order.
        skipped: The lines that were torn, undecodable or not objects.
        end_offset: Byte offset just past the last complete line; a later
            read of the same growing file can start there.
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.skipped: list[SkippedLine] = []
        self.end_offset = 0


def parse_lines(data: bytes, file_name: str, *, first_line: int = 1) -> LineBatch:
    r"""Parse JSON lines, skipping and reporting every line that is not a JSON object.

    A final piece without ``\\n`` is an incomplete line (torn by a crash, or still
    being written) and is reported, not parsed. Blank lines are ignored.

    Example:
        >>> batch = parse_lines(b'{"a":1}\ngarbage\n{"b":2', "x.jsonl")
        >>> batch.records, [str(s) for s in batch.skipped]
        ([{'a': 1}], ['x.jsonl:2: not valid JSON', 'x.jsonl:3: incomplete last line'])
    """
    batch = LineBatch()
    complete_end = data.rfind(b"\n") + 1
    batch.end_offset = complete_end
    for number, line in enumerate(data[:complete_end].split(b"\n")[:-1], start=first_line):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            batch.skipped.append(SkippedLine(file_name, number, "not valid JSON"))
            continue
        if isinstance(record, dict):
            batch.records.append(record)
        else:
            batch.skipped.append(SkippedLine(file_name, number, "not a JSON object"))
    if complete_end < len(data):
        last_number = first_line + data.count(b"\n", 0, complete_end)
        batch.skipped.append(SkippedLine(file_name, last_number, "incomplete last line"))
    return batch


def read_lines(path: Path) -> LineBatch:
    """Read a whole JSON-lines file tolerantly; a missing file reads as empty."""
    try:
        data = read_file(path)
    except FileNotFoundError:
        return LineBatch()
    return parse_lines(data, path.name)


def read_file(path: Path) -> bytes:
    """The bytes of a regular file of a store; anything else is refused, never waited on.

    A store may come from someone else: a FIFO would block a reader forever
    and a link to ``/dev/zero`` would fill its memory, so only regular files
    (or links to them) are read. The file is opened without blocking.

    Raises:
        FileNotFoundError: there is no such file.
        OSError: it cannot be read, or is not a regular file (``EINVAL``).

    Example:
        >>> read_file(Path("/dev/null"))
        Traceback (most recent call last):
        ...
        OSError: [Errno 22] not a regular file: '/dev/null'
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        chunks = []
        while chunk := os.read(fd, max(status.st_size + 1, 1 << 16)):  # the file may grow
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def iter_tagged_metrics(values: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The (key, decoded value) pairs of one metrics line's ``m`` object."""
    for key, value in values.items():
        yield key, decode_value(value) if isinstance(value, dict) else value
