r"""Data references: the content hash of a file, a directory or a pandas DataFrame.

:meth:`runjournal.Run.log_data` records what a run read or wrote as one line
of ``data.jsonl``; :func:`hash_data` computes the same hash without a run (to
check data against a recorded hash, say). Three modes trade thoroughness for
speed on huge data: ``full`` reads every byte (the files of a directory in
parallel threads), ``sample`` reads the size plus 1 MiB at the head, the
middle and the tail of each file, ``stat`` reads nothing but sizes and mtimes.
The exact definitions are in ``docs/format.md``.

In ``full`` and ``sample`` mode, hashes are cached inside the store (under
``.cache/``) by path, size, mtime, ctime and inode, so logging the same 10 GB
file again costs milliseconds, and an unchanged directory of 10,000 files
costs 10,000 ``stat`` calls. Nothing is written outside the store.

Example:
    >>> import pathlib
    >>> _ = pathlib.Path("labels.csv").write_text("id,label\n1,cat\n")
    >>> hash_data("labels.csv").hash[:16]
    '1f04397277afc615'
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from runjournal.capture._frame import as_frame, frame_digest
from runjournal.capture._hash_cache import HashCache
from runjournal.capture._hashing import (
    DEFAULT_ALGO,
    MODES,
    READ_BUFFER,
    FileStat,
    bytes_to_read,
    check_algo,
    check_mode,
    file_digest,
    manifest_digest,
    manifest_line,
    stat_digest,
)
from runjournal.capture._progress import CancelledError, Progress
from runjournal.capture._tree import FileEntry, walk_files
from runjournal.errors import DataError, InvalidNameError
from runjournal.typing import PathLike
from runjournal.values import check_name

__all__ = ["DATA_FILE", "MODES", "DataHash", "DataRecord", "data_record", "hash_data"]

DATA_FILE = "data.jsonl"
"""The file of a run directory that holds its data records."""

_MAX_THREADS = 16


class DataHash(NamedTuple):
    """What :func:`hash_data` found: the fields of a data record that describe the data.

    Attributes:
        kind: ``file``, ``directory`` or ``dataframe``.
        path: The absolute path with links resolved; None for a DataFrame.
        mode: ``full``, ``sample`` or ``stat``.
        algo: The hashlib algorithm, e.g. ``sha256``.
        hash: The hex digest.
        size: Total bytes (of a DataFrame: in memory, deep).
        files: Number of files (rows of a DataFrame).
        seconds: How long hashing took.
    """

    kind: str
    path: str | None
    mode: str
    algo: str
    hash: str
    size: int
    files: int
    seconds: float


class DataRecord(NamedTuple):
    r"""One line of ``data.jsonl``, as :meth:`runjournal.Run.log_data` wrote it.

    Attributes:
        time: When ``log_data`` was called (seconds since the epoch).
        seg: The segment of the run that logged it.
        name: The name given.
        role: ``input``, ``output`` or any role the user named.
        kind: ``file``, ``directory`` or ``dataframe``.
        path: The absolute path with links resolved; None for a DataFrame.
        mode: ``full``, ``sample`` or ``stat``.
        algo: The hashlib algorithm, e.g. ``sha256``.
        hash: The hex digest.
        size: Total bytes (of a DataFrame: in memory, deep).
        files: Number of files (rows of a DataFrame).
        seconds: How long hashing took (small when the cache answered).

    Example:
        >>> import pathlib, runjournal
        >>> _ = pathlib.Path("train.csv").write_text("x\n1\n")
        >>> with runjournal.start() as run:
        ...     record = run.log_data("train", "train.csv")
        >>> record.kind, record.files, record.digest[:15]
        ('file', 1, 'sha256:daff832f')
    """

    time: float
    seg: int
    name: str
    role: str
    kind: str
    path: str | None
    mode: str
    algo: str
    hash: str
    size: int
    files: int
    seconds: float

    @property
    def digest(self) -> str:
        """``<algo>:<hash>``: the hash with its algorithm."""
        return f"{self.algo}:{self.hash}"

    def to_json(self) -> dict[str, Any]:
        """The record as written to ``data.jsonl``."""
        return self._asdict()


def hash_data(
    source: PathLike | Any,
    *,
    mode: str = "full",
    algo: str = DEFAULT_ALGO,
    store: PathLike | None = None,
    label: str | None = None,
) -> DataHash:
    """Hash a file, a directory or a pandas DataFrame as ``log_data`` does.

    Args:
        source: A path (``str`` or ``os.PathLike``) to a file or a directory,
            or a pandas DataFrame (or Series).
        mode: ``full``, ``sample`` or ``stat``; a DataFrame is always hashed in full.
        algo: A hashlib algorithm with a fixed digest size.
        store: A store whose hash cache to use (and which is left out of a
            directory that contains it); None hashes without a cache.
        label: What a progress bar calls the data (default: the path).

    Returns:
        The kind, the resolved path, the hash, sizes and time taken.

    Raises:
        DataError: the path is missing or unreadable, the source is of
            another type, or ``mode`` or ``algo`` is not valid.

    Example:
        >>> import pathlib
        >>> _ = pathlib.Path("shards").mkdir()
        >>> _ = pathlib.Path("shards/0.bin").write_bytes(b"abc")
        >>> found = hash_data("shards", mode="full")
        >>> found.kind, found.files, found.size, found.hash[:12]
        ('directory', 1, 3, 'd6cde5bc6b71')
    """
    began = time.perf_counter()
    started_ns = time.time_ns()
    mode, algo = check_mode(mode), check_algo(algo)
    frame = as_frame(source)
    if frame is not None:
        if mode != "full":
            raise DataError(f"a DataFrame is always hashed in full; mode={mode!r} does not apply")
        digest, size, rows = frame_digest(frame, algo)
        return DataHash("dataframe", None, mode, algo, digest, size, rows, _since(began))
    path = _resolve(source)
    store_root = Path(store).absolute() if store is not None else None
    kind, entries = _list(path, store_root)
    cache = HashCache.open(store_root, path, algo, mode) if mode != "stat" else None
    digests = _file_digests(
        entries, mode=mode, algo=algo, cache=cache, label=label or path, started_ns=started_ns
    )
    if kind == "file":
        digest = digests[0]
    else:
        lines = (manifest_line(e.relative, d) for e, d in zip(entries, digests, strict=True))
        digest = manifest_digest(lines, algo)
    size = sum(entry.stat.size for entry in entries)
    return DataHash(kind, _printable(path), mode, algo, digest, size, len(entries), _since(began))


def data_record(
    name: str,
    source: PathLike | Any,
    *,
    role: str,
    mode: str,
    algo: str,
    seg: int,
    store: Path | None,
) -> DataRecord:
    """Hash ``source`` and make the ``data.jsonl`` record of it (for ``Run.log_data``).

    Raises:
        DataError: as :func:`hash_data`, or ``name`` or ``role`` is not a
            non-empty string; the message names the data.
    """
    now = time.time()
    try:
        _check_name(name)
        _check_role(role)
        found = _hash_quietly(source, mode=mode, algo=algo, store=store, label=name)
    except DataError as error:
        # Say which data, keeping the one exception (and its OSError cause).
        error.name = name if isinstance(name, str) else None
        error.args = (f"data {name!r}: {error}",)
        raise
    return DataRecord(now, seg, name, role, *found)


def _hash_quietly(source: object, **options: Any) -> DataHash:
    """:func:`hash_data`, with any stray ``OSError`` turned into a :class:`DataError`."""
    try:
        return hash_data(source, **options)
    except OSError as error:  # every read is wrapped already; this is the safety net
        raise DataError(f"cannot hash {source!r}: {error}") from error


def _check_name(name: object) -> None:
    try:
        check_name(name, "data")
    except InvalidNameError as error:
        raise DataError(str(error)) from None


def _check_role(role: object) -> None:
    if not isinstance(role, str) or not role:
        raise DataError(f"role={role!r} is not valid; give a non-empty string such as 'input'")


def _resolve(source: object) -> str:
    """The absolute path of ``source`` with symbolic links resolved."""
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"an object of type {type(source).__name__} cannot be hashed; give a path to a"
            " file or a directory (str or os.PathLike), or a pandas DataFrame"
        )
    raw = os.fsdecode(os.fspath(source))
    if not raw:
        raise DataError("the path is empty")
    return os.path.realpath(raw)


def _list(path: str, store: Path | None) -> tuple[str, list[FileEntry]]:
    """The kind of ``path`` and the files to hash."""
    try:
        st = Path(path).stat()
    except FileNotFoundError as error:
        raise DataError(f"{path} does not exist", path=path) from error
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}", path=path) from error
    if stat.S_ISREG(st.st_mode):
        return "file", [FileEntry(b"", path, FileStat.of(st))]
    if stat.S_ISDIR(st.st_mode):
        return "directory", walk_files(path, exclude=_identity(store))
    raise DataError(
        f"{path} is not a regular file or a directory (a FIFO, socket or device)", path=path
    )


def _identity(directory: Path | None) -> tuple[int, int] | None:
    try:
        st = directory.stat() if directory is not None else None
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st is not None else None


def _file_digests(
    entries: list[FileEntry],
    *,
    mode: str,
    algo: str,
    cache: HashCache | None,
    label: str,
    started_ns: int,
) -> list[str]:
    """The hash of each file, from the cache when its stats are unchanged."""
    if mode == "stat":
        return [stat_digest(e.stat.size, e.stat.mtime_ns, algo) for e in entries]
    digests = [cache.lookup(e.path, e.stat) if cache else None for e in entries]
    missing = [index for index, digest in enumerate(digests) if digest is None]
    missing.sort(key=lambda index: -entries[index].stat.size)  # big files first: even finish
    meter = Progress(label, sum(bytes_to_read(entries[i].stat.size, mode) for i in missing))

    def hash_one(index: int, buffer: bytearray) -> None:
        entry = entries[index]
        digest = file_digest(
            entry.path, entry.stat, mode=mode, algo=algo, buffer=buffer, on_bytes=meter.advance
        )
        digests[index] = digest
        if cache is not None:
            cache.add(entry.path, entry.stat, digest, started_ns=started_ns)

    try:
        _in_threads(hash_one, missing, meter)
    finally:
        meter.close()
        if cache is not None:
            cache.flush()  # what was hashed before a failure is still worth keeping
    return [digest for digest in digests if digest is not None]


def _in_threads(work: Callable[[int, bytearray], None], items: list[int], meter: Progress) -> None:
    """Call ``work`` on every item from a few threads; the first error stops them all."""
    count = min(_thread_count(), len(items))
    if count <= 1:
        buffer = bytearray(READ_BUFFER)
        for item in items:
            work(item, buffer)
        return
    pending = iter(items)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        buffer = bytearray(READ_BUFFER)
        while not meter.cancelled:
            with lock:
                item = next(pending, None)
            if item is None:
                return
            try:
                work(item, buffer)
            except CancelledError:
                return
            except BaseException as error:
                errors.append(error)
                meter.cancel()
                return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        meter.cancel()  # after Ctrl-C in join(), the workers stop at their next read
    if errors:
        raise errors[0]


def _thread_count() -> int:
    """Threads for a directory: twice the usable cores, since reads also wait on I/O."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(2, min(_MAX_THREADS, 2 * cores))


def _printable(path: str) -> str:
    r"""``path`` as valid UTF-8 for JSON: undecodable bytes as ``\xNN`` escapes."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    return path


def _since(began: float) -> float:
    return round(time.perf_counter() - began, 6)
