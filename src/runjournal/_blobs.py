r"""Content-addressed blobs: ``<store>/blobs/<algo>/<ab>/<hash>``, written once, shared by runs.

Content is copied into ``blobs/<algo>/.tmp/.tmp-<pid>.<random>`` and hashed
as it is copied (the source is read once), then hard-linked to the name of
its hash (renamed where the file system has no hard links). Identical content
already stored makes the copy redundant: it is dropped, so every content is
stored once. A process killed at any moment leaves at most a ``.tmp-`` file,
never a blob whose content differs from its name (``docs/format.md``).

Blobs are always copies: a hard link to the user's own file would change
with every later edit of that file, and the blob would no longer match its
name.

Example:
    >>> from pathlib import Path
    >>> root = Path("blob-store").absolute()
    >>> digest, size = store_bytes(root, b"hello\n")
    >>> digest[:12], size
    ('5891b5b522d5', 6)
    >>> blob_path(root, "sha256", digest).read_bytes()
    b'hello\n'
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runjournal._permissions import make_dir, open_file
from runjournal.errors import ArtifactError
from runjournal.format import BLOBS_DIR, TEMP_PREFIX

__all__ = ["TEMP_DIR", "blob_path", "blob_relpath", "store_bytes", "store_file"]

TEMP_DIR = ".tmp"
"""The directory of ``blobs/<algo>/`` that holds blobs being written."""

CHUNK = 4 << 20
"""Bytes read, hashed and written at a time."""

_HEX = re.compile(r"[0-9a-f]{8,128}")
_ALGO = re.compile(r"[a-z0-9_]{1,32}")


def blob_relpath(algo: str, digest: str) -> str:
    """The blob's path relative to the store root; refuses names that are not plain.

    Raises:
        ArtifactError: ``algo`` or ``digest`` could name something outside ``blobs/``.

    Example:
        >>> blob_relpath("sha256", "ab12cd34")
        'blobs/sha256/ab/ab12cd34'
    """
    if not isinstance(algo, str) or not _ALGO.fullmatch(algo):
        raise ArtifactError(f"algo {algo!r} is not a plain hash algorithm name")
    if not isinstance(digest, str) or not _HEX.fullmatch(digest):
        raise ArtifactError(f"hash {digest!r} is not a lower-case hex digest")
    return f"{BLOBS_DIR}/{algo}/{digest[:2]}/{digest}"


def blob_path(root: Path, algo: str, digest: str) -> Path:
    """The absolute path of a blob (which may not exist).

    Example:
        >>> blob_path(Path("/s"), "sha256", "ab12cd34").as_posix()
        '/s/blobs/sha256/ab/ab12cd34'
    """
    return root / blob_relpath(algo, digest)


def store_file(
    root: Path, source: str, algo: str = "sha256", *, fsync: bool = False
) -> tuple[str, int]:
    r"""Copy a regular file into the store's blobs; return its hash and size.

    Args:
        root: The store root.
        source: The file to copy (links are followed).
        algo: A hashlib algorithm.
        fsync: Sync the blob to disk before it gets its final name.

    Raises:
        OSError: the source cannot be read, is not a regular file, changed
            while being copied, or the blob cannot be written.

    Example:
        >>> _ = Path("weights.bin").write_bytes(b"\x00" * 10)
        >>> store_file(Path("blob-store").absolute(), "weights.bin")[1]
        10
    """
    fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", source)
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as file:
            copy = _copy if before.st_size > CHUNK else _copy_small
            digest, size = _store(root, algo, lambda out, hasher: copy(file, out, hasher), fsync)
        after = os.fstat(fd)
        if size != after.st_size or before.st_mtime_ns != after.st_mtime_ns:
            raise OSError(errno.EAGAIN, "the file changed while it was being copied", source)
        return digest, size
    finally:
        os.close(fd)


def store_bytes(
    root: Path, data: bytes, algo: str = "sha256", *, fsync: bool = False
) -> tuple[str, int]:
    """Store bytes made in memory as a blob; return their hash and size."""

    def write(out: int, hasher: Any) -> int:
        hasher.update(data)
        _write_chunk(out, memoryview(data))
        return len(data)

    return _store(root, algo, write, fsync)


def _store(root: Path, algo: str, fill: Any, fsync: bool) -> tuple[str, int]:
    temp_dir = root / BLOBS_DIR / algo / TEMP_DIR
    make_dir(temp_dir, parents=True, exist_ok=True)
    temp = temp_dir / f"{TEMP_PREFIX}{os.getpid()}.{os.urandom(6).hex()}"
    out = open_file(temp, os.O_WRONLY | os.O_EXCL | getattr(os, "O_CLOEXEC", 0))
    try:
        hasher = hashlib.new(algo)
        try:
            size = fill(out, hasher)
            if fsync:
                os.fsync(out)
        finally:
            os.close(out)
        digest = str(hasher.hexdigest())
        _place(temp, blob_path(root, algo, digest), size)
        return digest, size
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


def _copy(file: Any, out: int, hasher: Any) -> int:
    """Read, hash and write every chunk; a chunk is written while the next one is hashed.

    Two buffers take turns: reading and hashing one (both release the GIL)
    overlaps writing the other in a helper thread, so a copy costs little
    more than its hashing.
    """
    views = [memoryview(bytearray(CHUNK)), memoryview(bytearray(CHUNK))]
    size, turn = 0, 0
    with ThreadPoolExecutor(1, thread_name_prefix="runjournal-blob") as pool:
        writing: Future[None] | None = None
        while n := file.readinto(views[turn]):
            chunk = views[turn][:n]
            hasher.update(chunk)
            if writing is not None:
                writing.result()  # the other buffer is free again
            writing = pool.submit(_write_chunk, out, chunk)
            size += n
            turn = 1 - turn
        if writing is not None:
            writing.result()
    return size


def _copy_small(file: Any, out: int, hasher: Any) -> int:
    """:func:`_copy` without a helper thread, for a file of at most one chunk (as stat'ed)."""
    buffer = memoryview(bytearray(CHUNK))
    size = 0
    while n := file.readinto(buffer):
        hasher.update(buffer[:n])
        _write_chunk(out, buffer[:n])
        size += n
    return size


def _write_chunk(out: int, chunk: memoryview) -> None:
    """Write all of ``chunk``; a test slows this down to kill a process mid-copy."""
    while chunk:
        chunk = chunk[os.write(out, chunk) :]


def _place(temp: Path, final: Path, size: int) -> None:
    """Give the complete temporary file its final name, unless identical content is there."""
    make_dir(final.parent, exist_ok=True)
    try:
        os.link(temp, final)
        return
    except FileExistsError:
        pass
    except OSError:  # no hard links here: renaming is atomic too
        if not final.exists():
            temp.replace(final)
            return
    try:
        intact = final.stat().st_size == size
    except OSError:
        intact = False
    if not intact:  # a blob cut short by a power loss: the complete copy replaces it
        temp.replace(final)
        return
    try:  # fresh again: gc spares it until the run's line refers to it
        os.utime(final)
    except FileNotFoundError:  # a gc removed it just now: this copy takes its place
        temp.replace(final)
    except OSError:
        pass
