r"""Content-addressed blobs: ``<store>/blobs/<algo>/<ab>/<hash>``, written once, shared by runs.

Content is copied into ``blobs/<algo>/.tmp/.tmp-<pid>.<random>`` and hashed,
then hard-linked to the name of its hash (renamed where the file system has
no hard links). Identical content already stored makes the copy redundant: it
is dropped, so every content is stored once. A process killed at any moment
leaves at most a ``.tmp-`` file, never a blob whose content differs from its
name (``docs/format.md``).

A file larger than one chunk is copied by the kernel (``copy_file_range``,
else ``sendfile``, as ``shutil`` does) in one thread while another hashes
*the copy*, chunk by chunk behind it; so the hash is always that of the bytes
the blob holds. The copy is given its name only when the source's size,
mtime, ctime and inode are the same after the copy as before it; otherwise
(or where the kernel cannot copy) the file is copied again the portable way,
read once, each chunk hashed and then written.

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
import queue
import re
import stat
import sys
import threading
from collections.abc import Callable
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
"""Bytes read, hashed and written (or copied by the kernel) at a time."""

KERNEL_COPY = hasattr(os, "copy_file_range") or (
    sys.platform.startswith("linux") and hasattr(os, "sendfile")
)
"""Whether large files are copied by the kernel while the copy is hashed (``sendfile``
copies between files on Linux only; elsewhere it writes only to sockets)."""

_HEX = re.compile(r"[0-9a-f]{8,128}")
_ALGO = re.compile(r"[a-z0-9_]{1,32}")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

Fill = Callable[[int, Path, Any], "int | None"]
"""Writes the content to the open temporary file and hashes it: its size, None to give up."""


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
        fsync: Sync the blob to disk before it gets its final name, and its
            directory after (``start(durability="fsync")``).

    Raises:
        OSError: the source cannot be read, is not a regular file, changed
            while being copied, or the blob cannot be written.

    Example:
        >>> _ = Path("weights.bin").write_bytes(b"\x00" * 10)
        >>> store_file(Path("blob-store").absolute(), "weights.bin")[1]
        10
        >>> _ = Path("big.bin").write_bytes(b"\x01" * (CHUNK + 1))  # copied by the kernel
        >>> digest, size = store_file(Path("blob-store").absolute(), "big.bin", fsync=True)
        >>> size == CHUNK + 1, digest == hashlib.sha256(b"\x01" * (CHUNK + 1)).hexdigest()
        (True, True)
    """
    fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", source)
        if KERNEL_COPY and before.st_size > CHUNK:
            stored = _store(
                root,
                algo,
                lambda out, temp, hasher: _kernel_copy(fd, out, temp, hasher, before),
                fsync,
            )
            if stored is not None:
                return stored
            before = os.fstat(fd)  # it may have changed: the portable copy checks on its own
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as file:
            file.seek(0)
            copy = _copy if before.st_size > CHUNK else _copy_small
            stored = _store(root, algo, lambda out, _, hasher: copy(file, out, hasher), fsync)
        assert stored is not None  # the portable copy never gives up
        after = os.fstat(fd)
        if stored[1] != after.st_size or before.st_mtime_ns != after.st_mtime_ns:
            raise OSError(errno.EAGAIN, "the file changed while it was being copied", source)
        return stored
    finally:
        os.close(fd)


def store_bytes(
    root: Path, data: bytes, algo: str = "sha256", *, fsync: bool = False
) -> tuple[str, int]:
    """Store bytes made in memory as a blob; return their hash and size.

    Example:
        >>> store_bytes(Path("blob-store").absolute(), b"", fsync=True)[0][:12]
        'e3b0c44298fc'
    """

    def write(out: int, temp: Path, hasher: Any) -> int:
        hasher.update(data)
        _write_chunk(out, memoryview(data))
        return len(data)

    stored = _store(root, algo, write, fsync)
    assert stored is not None
    return stored


def _store(root: Path, algo: str, fill: Fill, fsync: bool) -> tuple[str, int] | None:
    """Fill a temporary file and give it the name of its hash; None when ``fill`` gives up."""
    temp_dir = root / BLOBS_DIR / algo / TEMP_DIR
    make_dir(temp_dir, parents=True, exist_ok=True)
    temp = temp_dir / f"{TEMP_PREFIX}{os.getpid()}.{os.urandom(6).hex()}"
    out = open_file(temp, os.O_WRONLY | os.O_EXCL | _CLOEXEC)
    try:
        hasher = hashlib.new(algo)
        try:
            size = fill(out, temp, hasher)
            if size is not None and fsync:
                os.fsync(out)
        finally:
            os.close(out)
        if size is None:
            return None
        digest = str(hasher.hexdigest())
        _place(temp, blob_path(root, algo, digest), size, fsync=fsync)
        return digest, size
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


# -- the kernel's copy, hashed behind it ----------------------------------------------


def _kernel_copy(
    source: int, out: int, temp: Path, hasher: Any, before: os.stat_result
) -> int | None:
    """Copy ``source`` into ``out`` in the kernel while this thread hashes the copy.

    Returns the size, or None to give up (the caller copies the portable way):
    the kernel cannot copy between these files, something failed, or the
    source changed while it was copied.
    """
    try:
        reader = os.open(temp, os.O_RDONLY | _CLOEXEC)
    except OSError:
        return None
    try:
        size = _copy_hashing(source, out, reader, before.st_size, hasher)
    except OSError:
        return None  # a real problem shows again in the portable copy, and is raised there
    finally:
        os.close(reader)
    if size != before.st_size or _identity(os.fstat(source)) != _identity(before):
        return None
    return size


def _identity(status: os.stat_result) -> tuple[int, int, int, int, int]:
    return (status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino, status.st_dev)


def _copy_hashing(source: int, out: int, reader: int, size: int, hasher: Any) -> int | None:
    """Copy in a helper thread, chunk by chunk; hash each chunk of the copy once it is there.

    The helper spends its time in the kernel and this thread in the hash
    function, both without the GIL, so the two overlap on two cores.
    """
    progress: queue.SimpleQueue[int | BaseException | None] = queue.SimpleQueue()
    stop = threading.Event()

    def copier() -> None:
        try:
            copied, copy = 0, _first_kernel_copy
            while copied < size and not stop.is_set():
                n, copy = copy(source, out, copied, min(CHUNK, size - copied))
                if n <= 0:
                    break  # the source ended early: it changed (or copy gave up at once)
                copied += n
                progress.put(copied)
        except BaseException as error:  # reported to the hashing thread, which gives up
            progress.put(error)
            return
        progress.put(None)

    thread = threading.Thread(target=copier, name="runjournal-blob-copy", daemon=True)
    thread.start()
    buffer = memoryview(bytearray(CHUNK))
    hashed = 0
    try:
        while True:
            copied = progress.get()
            if isinstance(copied, BaseException):
                return None
            limit = hashed if copied is None else copied
            while hashed < limit:
                n = os.preadv(reader, [buffer[: min(CHUNK, limit - hashed)]], hashed)
                if n <= 0:
                    return None
                hasher.update(buffer[:n])
                hashed += n
            if copied is None:
                return hashed
    finally:
        stop.set()
        thread.join()


def _first_kernel_copy(source: int, out: int, offset: int, count: int) -> tuple[int, Any]:
    """The first chunk: ``copy_file_range`` if the kernel can, else ``sendfile``, else give up.

    Returns the bytes copied and the function for the next chunks (0 gives up).
    """
    if hasattr(os, "copy_file_range"):
        try:
            n = _kernel_chunk(source, out, offset, count)
            if n > 0:
                return n, _next_copy_file_range
        except OSError:
            pass  # another file system (EXDEV), or none of its own (ENOSYS, EINVAL...)
    if hasattr(os, "sendfile"):
        os.lseek(out, offset, os.SEEK_SET)
        try:
            n = _kernel_send(source, out, offset, count)
            if n > 0:
                return n, _next_sendfile
        except OSError:
            pass
    return 0, _first_kernel_copy


def _next_copy_file_range(source: int, out: int, offset: int, count: int) -> tuple[int, Any]:
    return _kernel_chunk(source, out, offset, count), _next_copy_file_range


def _next_sendfile(source: int, out: int, offset: int, count: int) -> tuple[int, Any]:
    return _kernel_send(source, out, offset, count), _next_sendfile


def _kernel_chunk(source: int, out: int, offset: int, count: int) -> int:
    """``copy_file_range`` of one chunk at ``offset``; a test slows this down."""
    return os.copy_file_range(source, out, count, offset, offset)


def _kernel_send(source: int, out: int, offset: int, count: int) -> int:
    """``sendfile`` of one chunk at ``offset`` (written where ``out`` stands)."""
    return os.sendfile(out, source, offset, count)


# -- the portable copy ------------------------------------------------------------------


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


# -- the final name ---------------------------------------------------------------------


def _place(temp: Path, final: Path, size: int, *, fsync: bool = False) -> None:
    """Give the complete temporary file its final name, unless identical content is there.

    With ``fsync``, the directory that holds the name is synced after the
    name is made (and its parent, when that directory was just created).
    """
    created = make_dir(final.parent, exist_ok=True)
    if _name(temp, final, size) and fsync:
        if created:
            _sync_directory(final.parent.parent)
        _sync_directory(final.parent)


def _name(temp: Path, final: Path, size: int) -> bool:
    """Link (or rename) ``temp`` to ``final`` where needed; whether a name was made."""
    try:
        os.link(temp, final)
        return True
    except FileExistsError:
        pass
    except OSError:  # no hard links here: renaming is atomic too
        if not final.exists():
            temp.replace(final)
            return True
    try:
        intact = final.stat().st_size == size
    except OSError:
        intact = False
    if not intact:  # a blob cut short by a power loss: the complete copy replaces it
        temp.replace(final)
        return True
    try:  # fresh again: gc spares it until the run's line refers to it
        os.utime(final)
    except FileNotFoundError:  # a gc removed it just now: this copy takes its place
        temp.replace(final)
        return True
    except OSError:
        pass
    return False


def _sync_directory(directory: Path) -> None:
    """Sync a directory to disk, so that a name made in it survives a power loss.

    A file system that cannot sync a directory (``EINVAL``, Windows) is left as is.

    Raises:
        OSError: the sync failed (an I/O error).
    """
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)
