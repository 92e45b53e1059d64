"""Metric history in columns: a :class:`Batch` of metrics lines, and its binary file layout.

A batch holds consecutive usable lines of one metrics file. Per line it has
the line number, step, time (None as NaN) and segment; per metric key the
lines it appears in (omitted when it appears in every line), its position
within each line's ``m`` object (to keep file order among keys), and its
values. Values keep their type: a key whose values are all floats is a
float column, all 64-bit ints an int column, a mix of floats and ints up to
2**53 a float column with a mask of the ints, and anything else (ints beyond
64 bits, ...) a JSON list in the store's tagged form.

The binary layout needs nothing beyond the standard library, and NumPy can
map it without copying::

    b"RJQ1"  u32 little-endian header length  header (JSON)  padding to 8
    arrays, each little-endian, 8-byte aligned

The header names each array: ``[typecode, offset, count]`` with typecode
``q`` (int64), ``d`` (float64), ``b`` (int8) or ``j`` (a JSON list, ``count``
bytes). It holds no code and nothing is unpickled: a damaged file fails to
decode and is read again from the run's files.

Example:
    >>> batch = Batch([1, 2], [0, 1], [10.0, None], [0, 0])
    >>> batch.keys["loss"] = KeyColumn(None, 0, [0.5, 2**70])
    >>> again = decode_batch(encode_batch(batch))
    >>> again.time, again.keys["loss"].values
    ([10.0, None], [0.5, 1180591620717411303424])
"""

from __future__ import annotations

import itertools
import math
import operator
import struct
import sys
from array import array
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import orjson

from runjournal.format import decode_value, encode_float, encode_int

__all__ = ["Batch", "KeyColumn", "concat_batches", "decode_batch", "encode_batch"]

_MAGIC = b"RJQ1"
_EXACT = 2**53
_BIG_ENDIAN = sys.byteorder == "big"


@dataclass
class KeyColumn:
    """The values of one metric key in a batch.

    Attributes:
        idx: Index into the batch's lines of each value; None when the key is in every line.
        slot: Position of the key in each line's ``m`` object (one int when the same).
        values: The values, ints and floats as logged.
    """

    idx: list[int] | None
    slot: list[int] | int
    values: list[Any]

    def indices(self, lines: int) -> list[int]:
        """Index into the batch's lines of each value."""
        return list(range(lines)) if self.idx is None else self.idx

    def slots(self) -> list[int]:
        """The slot of each value."""
        return [self.slot] * len(self.values) if isinstance(self.slot, int) else self.slot


@dataclass
class Batch:
    """Consecutive usable lines of one metrics file, in columns.

    Attributes:
        line: The 1-based line number of each line.
        step: Its step.
        time: Its time (epoch seconds), None when it had none.
        seg: Its segment.
        keys: The metric keys, in order of first appearance.
    """

    line: list[int]
    step: list[int]
    time: list[float | None]
    seg: list[int]
    keys: dict[str, KeyColumn] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.line)

    def steps_sorted(self) -> bool:
        """Whether the steps never decrease (then every key's steps never decrease either)."""
        known: bool | None = getattr(self, "_sorted", None)
        if known is None:
            known = all(map(operator.le, self.step, itertools.islice(self.step, 1, None)))
            self._sorted = known
        return known


def concat_batches(batches: list[Batch]) -> Batch:
    """One batch holding the lines of several, in order.

    Example:
        >>> one = Batch([1], [0], [0.0], [0], {"x": KeyColumn(None, 0, [1])})
        >>> two = Batch([2], [1], [1.0], [0], {"y": KeyColumn(None, 0, [2])})
        >>> merged = concat_batches([one, two])
        >>> merged.keys["x"].idx, merged.keys["y"].idx
        ([0], [1])
    """
    if len(batches) == 1:
        return batches[0]
    result = Batch([], [], [], [])
    for batch in batches:
        offset = len(result)
        for key, column in batch.keys.items():
            _append_column(result, key, column, offset, len(batch))
        result.line += batch.line
        result.step += batch.step
        result.time += batch.time
        result.seg += batch.seg
    for column in result.keys.values():
        if column.idx is not None and len(column.idx) == len(result):
            column.idx = None  # dense after all
        if isinstance(column.slot, list) and len(set(column.slot)) == 1:
            column.slot = column.slot[0]
    return result


def _append_column(result: Batch, key: str, column: KeyColumn, offset: int, lines: int) -> None:
    target = result.keys.get(key)
    if target is None:
        target = result.keys[key] = KeyColumn([], [], [])
    if target.idx is None:
        target.idx = list(range(offset))
    if isinstance(target.slot, int):
        target.slot = [target.slot] * len(target.values)
    target.idx += [offset + i for i in column.indices(lines)]
    target.slot += column.slots()
    target.values += column.values


# ------------------------------------------------------------------ encoding


def encode_batch(batch: Batch) -> bytes:
    """The binary form of a batch (see the module's docstring)."""
    writer = _Writer()
    header: dict[str, Any] = {
        "n": len(batch),
        "line": writer.ints(batch.line),
        "step": writer.ints(batch.step),
        "time": writer.floats([math.nan if t is None else t for t in batch.time]),
        "seg": writer.ints(batch.seg),
        "keys": [
            [
                key,
                None if column.idx is None else writer.ints(column.idx),
                column.slot if isinstance(column.slot, int) else writer.ints(column.slot),
                *writer.values(column.values),
            ]
            for key, column in batch.keys.items()
        ],
    }
    head = orjson.dumps(header)
    head += b" " * (-(len(head) + 8) % 8)
    return _MAGIC + struct.pack("<I", len(head)) + head + writer.body()


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def body(self) -> bytes:
        return b"".join(self.parts)

    def _add(self, code: str, data: bytes, count: int) -> list[Any]:
        entry = [code, self.offset, count]
        data += b"\0" * (-len(data) % 8)
        self.parts.append(data)
        self.offset += len(data)
        return entry

    def _typed(self, code: str, values: list[Any]) -> list[Any]:
        typed = array(code, values)
        if _BIG_ENDIAN:
            typed.byteswap()
        return self._add(code, typed.tobytes(), len(typed))

    def _json(self, values: list[Any]) -> list[Any]:
        tagged = [encode_float(v) if isinstance(v, float) else encode_int(v) for v in values]
        data = orjson.dumps(tagged)
        return self._add("j", data, len(data))

    def ints(self, values: list[int]) -> list[Any]:
        try:
            return self._typed("q", values)
        except OverflowError:
            return self._json(values)

    def floats(self, values: list[float]) -> list[Any]:
        return self._typed("d", values)

    def values(self, values: list[Any]) -> tuple[list[Any], list[Any] | None]:
        """The value array, and the mask of ints for a mixed column."""
        types = set(map(type, values))
        if types <= {float}:
            return self.floats(values), None
        if types <= {int}:
            return self.ints(values), None
        if all(type(v) is float or -_EXACT <= v <= _EXACT for v in values):
            mask = [type(v) is int for v in values]
            return self.floats([float(v) for v in values]), self._typed("b", mask)
        return self._json(values), None


# ------------------------------------------------------------------ decoding


def decode_batch(data: bytes, keys: Collection[str] | None = None, *, numpy: bool = False) -> Batch:
    """A batch from its binary form, with only ``keys`` (None for all).

    With ``numpy``, every column is a NumPy array instead of a list (a view of
    ``data`` where it can be), and a value column of JSON values an array of
    objects; times stay NaN where they are missing.

    Raises:
        ValueError: ``data`` is not a batch this version wrote.
    """
    header, body = split_batch(data)
    read = read_numpy if numpy else read_array
    times = read(body, header["time"])
    batch = Batch(
        read(body, header["line"]),
        read(body, header["step"]),
        times if numpy else [None if t != t else t for t in times],  # noqa: PLR0124
        read(body, header["seg"]),
    )
    for key, idx, slot, value, mask in header["keys"]:
        if keys is not None and key not in keys:
            continue
        values = read(body, value)
        if mask is not None and not numpy:
            ints = read_array(body, mask)
            values = [int(v) if is_int else v for v, is_int in zip(values, ints, strict=True)]
        elif not numpy:
            # Every NaN becomes math.nan itself, as decode_value gives it: rows compare equal.
            values = [math.nan if v != v else v for v in values]  # noqa: PLR0124
        batch.keys[key] = KeyColumn(
            None if idx is None else read(body, idx),
            slot if isinstance(slot, int) else read(body, slot),
            values,
        )
    return batch


def read_numpy(body: memoryview, entry: list[Any]) -> Any:
    """One array of a batch file as a NumPy array (of objects for a JSON list).

    Raises:
        ValueError: the entry does not fit the file.
    """
    import numpy as np

    code, offset, count = entry
    if code == "j":
        return np.array(read_array(body, entry), dtype=object)
    dtype = {"q": "<i8", "d": "<f8", "b": "i1"}.get(code)
    if dtype is None:
        raise ValueError(f"unknown array type {code!r}")
    size = np.dtype(dtype).itemsize * count
    if offset + size > len(body):
        raise ValueError("truncated column file")
    return np.frombuffer(body, dtype=dtype, count=count, offset=offset)


def split_batch(data: bytes) -> tuple[dict[str, Any], memoryview]:
    """The header of a batch file and the memory of its arrays.

    Raises:
        ValueError: not a batch this version wrote.
    """
    if data[:4] != _MAGIC or len(data) < 8:
        raise ValueError("not a runjournal column file")
    (length,) = struct.unpack_from("<I", data, 4)
    try:
        header = orjson.loads(data[8 : 8 + length])
    except orjson.JSONDecodeError as error:
        raise ValueError("damaged column file header") from error
    if not isinstance(header, dict):
        raise ValueError("damaged column file header")
    return header, memoryview(data)[8 + length :]


def read_array(body: memoryview, entry: list[Any]) -> list[Any]:
    """The Python values of one array of a batch file.

    Raises:
        ValueError: the entry does not fit the file.
    """
    code, offset, count = entry
    if code == "j":
        raw = bytes(body[offset : offset + count])
        if len(raw) != count:
            raise ValueError("truncated column file")
        return [decode_value(item) for item in orjson.loads(raw)]
    if code not in ("q", "d", "b"):
        raise ValueError(f"unknown array type {code!r}")
    typed = array(code)
    size = typed.itemsize * count
    chunk = body[offset : offset + size]
    if len(chunk) != size:
        raise ValueError("truncated column file")
    typed.frombytes(chunk)
    if _BIG_ENDIAN:
        typed.byteswap()
    return typed.tolist()
