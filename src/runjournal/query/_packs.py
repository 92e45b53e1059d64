"""Pack files of the query cache: many small blobs (run digests, metric columns) in one file.

The query cache used to write two files and a directory per run; creating
files is what a save spent most of its time on (about 0.5 ms each on a busy
disk, far more on NFS). A *pack* holds the blobs of one save, one after the
other, and a blob is named by a *reference*::

    <pack>:<offset>:<length>:<crc>        all hexadecimal; the pack file is <pack>.pack

A pack is written under a temporary name and renamed into place when it is
complete, before any index names it; it is never changed afterwards, so a
reader that holds a reference reads exactly the bytes that were written, or
finds the pack gone (the cache deleted, or the pack collected) and reads the
run's files instead. The CRC-32 in the reference is checked on every read:
a damaged pack is never taken for data.

Example:
    >>> from pathlib import Path
    >>> Path("packs").mkdir()
    >>> writer = PackWriter(Path("packs"))
    >>> ref = writer.add(b"hello")
    >>> writer.finish() == [pack_of(ref)]
    True
    >>> read_blob(Path("packs"), ref)
    b'hello'
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import time
import zlib
from pathlib import Path

from runjournal._permissions import open_file
from runjournal.format import TEMP_PREFIX

__all__ = [
    "PACK_SUFFIX",
    "PackWriter",
    "new_name",
    "pack_of",
    "parse_ref",
    "read_blob",
    "valid_name",
]

PACK_SUFFIX = ".pack"
MAGIC = b"RJQP1\n"
"""The first bytes of every pack (no blob starts before them)."""
MAX_PACK = 64 << 20
"""A pack that grew past this many bytes is finished, and the next blob starts another."""
_BUFFER = 1 << 20
_NAME = re.compile(r"[0-9a-f]{24}")
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def new_name() -> str:
    """A name for a new file of the cache: time-ordered, unique without coordination."""
    return f"{time.time_ns():016x}{os.urandom(4).hex()}"


def valid_name(name: object) -> bool:
    """Whether ``name`` is a name :func:`new_name` makes (nothing else is ever opened)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def parse_ref(ref: str) -> tuple[str, int, int, int]:
    """``(pack, offset, length, crc)`` of a reference.

    Raises:
        ValueError: not a reference.
    """
    pack, offset, length, crc = ref.split(":")
    if not valid_name(pack):
        raise ValueError(f"not a pack reference: {ref!r}")
    return pack, int(offset, 16), int(length, 16), int(crc, 16)


def pack_of(ref: str) -> str:
    """The pack a reference points into.

    Raises:
        ValueError: not a reference.
    """
    return parse_ref(ref)[0]


def read_blob(root: Path, ref: str) -> bytes:
    """The bytes a reference names, checked against its CRC-32.

    Only a regular file is read (a store may come from someone else), and
    never more than the file holds.

    Raises:
        OSError: the pack is missing or cannot be read.
        ValueError: not a reference, or the bytes are not those written.
    """
    pack, offset, length, crc = parse_ref(ref)
    fd = os.open(f"{root}{os.sep}{pack}{PACK_SUFFIX}", _READ_FLAGS)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", pack)
        if offset < len(MAGIC) or offset + length > status.st_size:
            raise ValueError(f"reference {ref!r} is outside its pack")
        data = os.pread(fd, length, offset)
        while len(data) < length:  # a short read: only from an odd file system
            more = os.pread(fd, length - len(data), offset + len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    if len(data) != length or zlib.crc32(data) != crc:
        raise ValueError(f"reference {ref!r}: damaged pack")
    return data


class PackWriter:
    """Appends blobs to new packs in a directory; :meth:`finish` publishes them.

    A reference that :meth:`add` returns can be read once the pack holding it
    is finished: at :meth:`finish`, or earlier when the pack grew past
    :data:`MAX_PACK` and the next blob went to a new one.

    Attributes:
        root: The directory of the packs.
        written: The packs finished so far (names without suffix).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: list[str] = []
        self._name: str | None = None
        self._temp: Path | None = None
        self._fd = -1
        self._offset = 0
        self._buffer = bytearray()

    def add(self, data: bytes) -> str:
        """Append a blob; its reference.

        Raises:
            OSError: the pack cannot be written.
        """
        if self._name is None:
            self._open()
        assert self._name is not None
        ref = f"{self._name}:{self._offset:x}:{len(data):x}:{zlib.crc32(data):08x}"
        self._buffer += data
        self._offset += len(data)
        if len(self._buffer) >= _BUFFER:
            self._flush()
        if self._offset >= MAX_PACK:
            self._close()
        return ref

    def finish(self) -> list[str]:
        """Publish the pack being written (if any); the names of every pack finished.

        Raises:
            OSError: the pack cannot be written or renamed.
        """
        if self._name is not None:
            self._close()
        return self.written

    def discard(self) -> None:
        """Remove the pack being written and every pack finished: nothing will name them."""
        self._abandon()
        for name in self.written:
            with contextlib.suppress(OSError):
                (self.root / f"{name}{PACK_SUFFIX}").unlink()
        self.written = []

    def _open(self) -> None:
        name = new_name()
        temp = self.root / f"{TEMP_PREFIX}{name}{PACK_SUFFIX}"
        self._fd = open_file(temp, os.O_WRONLY | os.O_EXCL | getattr(os, "O_CLOEXEC", 0))
        self._name, self._temp = name, temp
        self._buffer = bytearray(MAGIC)
        self._offset = len(MAGIC)

    def _flush(self) -> None:
        view = memoryview(self._buffer)
        while view:
            view = view[os.write(self._fd, view) :]
        view.release()
        self._buffer.clear()

    def _close(self) -> None:
        assert self._name is not None and self._temp is not None
        try:
            self._flush()
            os.close(self._fd)
            self._fd = -1
            self._temp.replace(self.root / f"{self._name}{PACK_SUFFIX}")
        except BaseException:
            self._abandon()
            raise
        self.written.append(self._name)
        self._name = self._temp = None

    def _abandon(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        if self._temp is not None:
            with contextlib.suppress(OSError):
                self._temp.unlink()
        self._name = self._temp = None
        self._buffer.clear()
