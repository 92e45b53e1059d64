r"""The hash cache inside a store: files whose stat is unchanged are not read again.

Layout: ``<store>/.cache/hashes/<algo>.<mode>.<key>.jsonl``, one file (a
*shard*) per logged root path, algorithm and mode, where ``<key>`` is the
first 24 hex digits of the sha256 of the root's absolute path. So the second
hash of a 10 GB file reads one small shard, and a directory's shard holds one
line per file under it.

Each line is ``<JSON array>\t<crc32 of the array, 8 hex digits>\n``, the array
being ``[absolute path, size, mtime_ns, ctime_ns, inode, hash]``. An entry
answers for a file only while all four stats are unchanged; a later line for a
path wins.

Safe with many processes and no lock:

- every append is one ``O_APPEND`` write of whole lines, starting with a
  newline, so a line torn by a crash never merges with the next one;
- readers skip any line that does not decode or whose checksum does not
  match (NFS does not make concurrent appends atomic, so lines can mix);
- a shard grown to more than twice its distinct entries is rewritten under a
  temporary name and renamed into place; an entry appended meanwhile by
  another process may be lost, which costs one re-hash, never a wrong hash;
- a file modified less than :data:`RACY_NS` before its hashing began is not
  cached: a write within the file system's timestamp granularity could leave
  its mtime unchanged.

Everything here is derived: deleting ``.cache/`` loses nothing. A cache that
cannot be read or written (a read-only store) is silently skipped.

Example:
    >>> import pathlib, time
    >>> from runjournal.store import init_store
    >>> store = init_store(pathlib.Path("store").absolute())
    >>> st = FileStat(5, 0, 0, 42)
    >>> cache = HashCache.open(store, "/data/a.csv", "sha256", "full")
    >>> cache.add("/data/a.csv", st, "ab12", started_ns=time.time_ns())
    >>> cache.flush()
    >>> HashCache.open(store, "/data/a.csv", "sha256", "full").lookup("/data/a.csv", st)
    'ab12'
"""

from __future__ import annotations

import hashlib
import os
import threading
import zlib
from pathlib import Path
from typing import Any

import orjson

from runjournal._permissions import apply_file_mode, make_dir, open_file
from runjournal.capture._hashing import FileStat
from runjournal.format import CACHE_DIR, STORE_MARKER, TEMP_PREFIX

__all__ = ["RACY_NS", "HashCache"]

HASHES_DIR = "hashes"
RACY_NS = 2_000_000_000
"""Files modified this recently (in ns) before hashing began are not cached."""

_FLUSH_BYTES = 1 << 20
_COMPACT_SLACK = 256
_APPEND = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class HashCache:
    """The cached hashes of the files under one root, for one algorithm and mode.

    Thread-safe: hashing threads call :meth:`add` at will.
    """

    def __init__(self, shard: Path, entries: dict[str, tuple[FileStat, str]]) -> None:
        self._shard = shard
        self._entries = entries
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._writable = True

    @classmethod
    def open(cls, store: Path | None, root: str, algo: str, mode: str) -> HashCache | None:
        """The cache of ``root`` in ``store``; None when ``store`` is not a store.

        Reading never fails: a missing, unreadable or damaged shard reads as
        empty (or as its intact lines).
        """
        if store is None or not _is_store(store):
            return None  # never create anything outside a store
        key = hashlib.sha256(os.fsencode(root)).hexdigest()[:24]
        shard = store / CACHE_DIR / HASHES_DIR / f"{algo}.{mode}.{key}.jsonl"
        entries, lines = _read(shard)
        cache = cls(shard, entries)
        if lines > 2 * len(entries) + _COMPACT_SLACK:
            cache._compact()
        return cache

    def lookup(self, path: str, st: FileStat) -> str | None:
        """The cached hash of ``path`` if its stats are still ``st``."""
        found = self._entries.get(path)
        if found is None or found[0] != st:
            return None
        return found[1]

    def add(self, path: str, st: FileStat, digest: str, *, started_ns: int) -> None:
        """Remember a hash, unless the file was modified too close to ``started_ns``."""
        if st.mtime_ns > started_ns - RACY_NS:
            return
        line = _encode(path, st, digest)
        if line is None:
            return  # a path that is not valid UTF-8: hashed every time
        with self._lock:
            self._entries[path] = (st, digest)
            self._pending.append(line)
            self._pending_bytes += len(line)
            if self._pending_bytes >= _FLUSH_BYTES:
                self._flush_locked()

    def flush(self) -> None:
        """Append the new entries to the shard; a failure disables writing, silently."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        lines, self._pending, self._pending_bytes = self._pending, [], 0
        if not lines or not self._writable:
            return
        data = b"".join([b"\n", *lines])  # the newline ends a line torn by a crash
        try:
            make_dir(self._shard.parent, parents=True, exist_ok=True)
            fd = open_file(self._shard, _APPEND)
            try:
                os.write(fd, data)  # one write: whole lines, never interleaved locally
            finally:
                os.close(fd)
        except OSError:
            self._writable = False

    def _compact(self) -> None:
        """Rewrite the shard with one line per path; concurrent appends may be lost."""
        lines = [_encode(path, st, digest) for path, (st, digest) in self._entries.items()]
        temp = self._shard.with_name(f"{TEMP_PREFIX}{self._shard.name}.{os.urandom(4).hex()}")
        try:
            temp.write_bytes(b"".join(line for line in lines if line is not None))
            apply_file_mode(temp)
            temp.replace(self._shard)
        except OSError:
            temp.unlink(missing_ok=True)


def _is_store(directory: Path) -> bool:
    try:
        return (directory / STORE_MARKER).is_file()
    except OSError:
        return False


def _encode(path: str, st: FileStat, digest: str) -> bytes | None:
    try:
        body = orjson.dumps([path, *st, digest])
    except orjson.JSONEncodeError:
        return None
    return b"%s\t%08x\n" % (body, zlib.crc32(body))


def _read(shard: Path) -> tuple[dict[str, tuple[FileStat, str]], int]:
    """The entries of a shard (a later line for a path wins) and its number of lines."""
    try:
        data = shard.read_bytes()
    except OSError:
        return {}, 0
    entries: dict[str, tuple[FileStat, str]] = {}
    lines = 0
    for line in data.split(b"\n"):
        if not line:
            continue
        lines += 1
        entry = _decode(line)
        if entry is not None:
            entries[entry[0]] = entry[1]
    return entries, lines


def _decode(line: bytes) -> tuple[str, tuple[FileStat, str]] | None:
    body, _, check = line.rpartition(b"\t")
    try:
        if int(check, 16) != zlib.crc32(body):
            return None
        fields: Any = orjson.loads(body)
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not (isinstance(fields, list) and len(fields) == 6):
        return None
    path, size, mtime_ns, ctime_ns, ino, digest = fields
    numbers = (size, mtime_ns, ctime_ns, ino)
    if not (isinstance(path, str) and isinstance(digest, str)):
        return None
    if not all(type(number) is int for number in numbers):
        return None
    return path, (FileStat(size, mtime_ns, ctime_ns, ino), digest)
