r"""The hash of one file in each mode, and of a directory's manifest.

These definitions are normative (``docs/format.md``, section ``data.jsonl``):

- ``full``: the algorithm over every byte of the file, so a file's sha256 is
  what ``sha256sum`` prints;
- ``sample``: the algorithm over ``b"<size>\n"``, then the first, the middle
  and the last :data:`SAMPLE_CHUNK` bytes (the whole file when it holds at
  most three chunks);
- ``stat``: the algorithm over ``b"<size>\t<mtime_ns>\n"``, reading nothing;
- a directory: the algorithm over its manifest, one
  ``<relative path>\t<file hash>\n`` line per file, the lines sorted as bytes.

Example:
    >>> stat_digest(3, 1_700_000_000_000_000_000, "sha256")[:12]
    '9457cd2f0443'
    >>> manifest_line(b"train/a\tb.csv", "ab12")
    b'train/a\\tb.csv\tab12\n'
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterable
from typing import Any

from runjournal.errors import DataError

__all__ = [
    "DEFAULT_ALGO",
    "MODES",
    "READ_BUFFER",
    "SAMPLE_CHUNK",
    "FileStat",
    "bytes_to_read",
    "check_algo",
    "check_mode",
    "file_digest",
    "manifest_digest",
    "manifest_line",
    "stat_digest",
]

MODES = ("full", "sample", "stat")
"""The hashing modes, from the most to the least thorough."""

DEFAULT_ALGO = "sha256"

SAMPLE_CHUNK = 1 << 20
"""Bytes read at the head, the middle and the tail of a file in ``sample`` mode."""

READ_BUFFER = 1 << 20
"""Bytes per read in ``full`` mode: large enough that hashlib releases the GIL and
system calls are few, small enough to stay in the CPU's caches."""

_SEQUENTIAL = getattr(os, "POSIX_FADV_SEQUENTIAL", None)

OnBytes = Callable[[int], None]
"""Told how many bytes were just read; may raise to stop the hashing."""


class FileStat(tuple[int, int, int, int]):
    """What identifies a version of a file: size, mtime_ns, ctime_ns and inode.

    Example:
        >>> FileStat.of(os.stat(".")).size >= 0
        True
    """

    __slots__ = ()

    def __new__(cls, size: int, mtime_ns: int, ctime_ns: int, ino: int) -> FileStat:
        return tuple.__new__(cls, (size, mtime_ns, ctime_ns, ino))

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        """The identity of the file that ``st`` describes."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    @property
    def size(self) -> int:
        """The size in bytes."""
        return self[0]

    @property
    def mtime_ns(self) -> int:
        """The modification time, in nanoseconds since the epoch."""
        return self[1]


def check_mode(mode: object) -> str:
    """Return ``mode`` if it is one of :data:`MODES`, else raise.

    Raises:
        DataError: ``mode`` is not a known mode.

    Example:
        >>> check_mode("sample")
        'sample'
    """
    if not isinstance(mode, str) or mode not in MODES:
        raise DataError(f"mode={mode!r} is not valid; use one of {', '.join(map(repr, MODES))}")
    return mode


def check_algo(algo: object) -> str:
    """Return the hashlib name of ``algo`` if it gives a fixed-size digest, else raise.

    Any algorithm of :mod:`hashlib` with a fixed digest size is accepted
    (``sha256``, ``sha512``, ``blake2b``, ``sha3_256``, ``md5``...); names are
    case-insensitive. The ``shake`` algorithms, whose length is the caller's
    choice, are not.

    Raises:
        DataError: no such algorithm (or it is disabled, as MD5 is under FIPS).

    Example:
        >>> check_algo("SHA512")
        'sha512'
    """
    name = algo.lower().replace("-", "_") if isinstance(algo, str) else None
    try:
        if name is None or name.startswith("shake"):
            raise ValueError("not a fixed-size digest")
        hashlib.new(name)
    except ValueError:
        fixed = sorted(a for a in hashlib.algorithms_guaranteed if not a.startswith("shake"))
        raise DataError(
            f"algo={algo!r} is not valid; use a hashlib algorithm such as {', '.join(fixed)}"
        ) from None
    return name


def _hasher(algo: str) -> Any:
    return hashlib.new(algo)


def stat_digest(size: int, mtime_ns: int, algo: str) -> str:
    """The ``stat`` mode hash of a file: its size and mtime, nothing read."""
    return _digest_of(b"%d\t%d\n" % (size, mtime_ns), algo)


def _digest_of(data: bytes, algo: str) -> str:
    hasher = _hasher(algo)
    hasher.update(data)
    return str(hasher.hexdigest())


def bytes_to_read(size: int, mode: str) -> int:
    """How many bytes hashing a file of ``size`` bytes reads in ``mode``.

    Example:
        >>> bytes_to_read(10 << 20, "sample") == 3 * SAMPLE_CHUNK
        True
    """
    if mode == "full":
        return size
    if mode == "sample":
        return min(size, 3 * SAMPLE_CHUNK)
    return 0


def file_digest(
    path: str, expected: FileStat, *, mode: str, algo: str, buffer: bytearray, on_bytes: OnBytes
) -> str:
    """The hash of the file at ``path`` in ``mode`` (``full`` or ``sample``).

    Args:
        path: The file.
        expected: Its identity when it was listed; a file that differs from it
            after reading changed while it was being hashed.
        mode: ``full`` or ``sample``.
        algo: A name :func:`check_algo` accepted.
        buffer: A reusable read buffer (one per thread).
        on_bytes: Called after each read with the number of bytes read.

    Raises:
        DataError: the file cannot be read, or changed while it was read.
    """
    try:
        with io.FileIO(path) as file:
            if mode == "full":
                digest = _full(file, algo, buffer, on_bytes)
            else:
                digest = _sample(file.fileno(), expected.size, algo, on_bytes)
            after = FileStat.of(os.fstat(file.fileno()))
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}", path=path) from error
    if after != expected:
        raise DataError(f"{path} changed while it was being hashed; log it again", path=path)
    return digest


def _full(file: Any, algo: str, buffer: bytearray, on_bytes: OnBytes) -> str:
    if _SEQUENTIAL is not None:
        os.posix_fadvise(file.fileno(), 0, 0, _SEQUENTIAL)  # larger read-ahead on cold data
    hasher = _hasher(algo)
    view = memoryview(buffer)
    readinto = file.readinto
    update = hasher.update
    while count := readinto(buffer):
        update(view[:count])  # hashlib releases the GIL for updates this large
        on_bytes(count)
    return str(hasher.hexdigest())


def _sample(fd: int, size: int, algo: str, on_bytes: OnBytes) -> str:
    hasher = _hasher(algo)
    hasher.update(b"%d\n" % size)
    if size <= 3 * SAMPLE_CHUNK:
        offsets = [0, SAMPLE_CHUNK, 2 * SAMPLE_CHUNK]
    else:
        offsets = [0, (size - SAMPLE_CHUNK) // 2, size - SAMPLE_CHUNK]
    for offset in offsets:
        chunk = os.pread(fd, SAMPLE_CHUNK, offset)
        hasher.update(chunk)
        on_bytes(len(chunk))
    return str(hasher.hexdigest())


def manifest_line(relative: bytes, digest: str) -> bytes:
    r"""One line of a directory's manifest; ``\``, tab and newline in the path are escaped."""
    escaped = relative.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
    return b"%s\t%s\n" % (escaped, digest.encode("ascii"))


def manifest_digest(lines: Iterable[bytes], algo: str) -> str:
    """The hash of a directory: the algorithm over its manifest lines, sorted as bytes."""
    hasher = _hasher(algo)
    for line in sorted(lines):
        hasher.update(line)
    return str(hasher.hexdigest())
