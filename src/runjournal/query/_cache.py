"""The query cache under ``<store>/.cache/query/``: run entries, digests and metric columns.

Everything here is derived from the run files and may be deleted at any time
(``docs/format.md``, *.cache*). Layout (version 3; a flat directory, a few
files whatever the number of runs)::

    .cache/query/
      index                   the manifest: names the base, holds the entries changed since,
                              the runs gone since, and the packs (runjournal.query._index)
      <name>.idx              a base: the entry of every run at some point; never changed
      <name>.pack             digests and metric columns of the runs saved together, one
                              after the other (runjournal.query._packs); never changed
      index.lock              taken (with a short timeout) only while the manifest is replaced
      clock                   touched to learn the file system's time

An *entry* is what a query needs of a run without opening anything else:
``dir``, the run directory's inode and modification time and the time it was
listed; ``names``, a digest of that listing; ``files``, ``[inode, size,
mtime_ns]`` of each file the entry was made from; the run's ``row``
(:mod:`runjournal.query._row`); ``state``, where its *digest* is (its folds:
per file the offset, line count and CRC-32 of the bytes before the offset;
:mod:`runjournal.query._digest`); and ``chunks``, where its metric columns
are. :meth:`QueryCache.unchanged` tells which entries still describe their
run: one ``stat`` of the run directory and one of each file the entry was
made from (files are appended to without their directory changing, so the
directory alone cannot tell). Any other run is read again from where its
digest stopped, and a save writes its new digest and columns into one pack
and its entry into the manifest. Nothing is executable: JSON and plain
little-endian arrays.

Rules that keep it safe:

- Every file is written under a temporary name and renamed into place, and
  never changed afterwards except the manifest, which is replaced whole. A
  reader sees a whole file or none, and a pack or base is complete before a
  manifest names it.
- Only the replacement of the manifest is locked, with a short timeout; the
  saving process reads the manifest again under the lock and adds its
  changes to it, so concurrent saves do not undo each other. A process that
  cannot take the lock (or write at all: a read-only store) does not save,
  and answers from the files as usual. Reading never locks.
- A pack or base no manifest names any more is *retired* and deleted only
  :data:`GRACE_SECONDS` later, so a reader holding an older manifest still
  finds it; a blob that is missing or damaged all the same (every reference
  carries a CRC-32) makes its run be read again from the files.
- Any problem with the cache (a damaged file, a full disk, a lock that
  cannot be had) is handled here: the cache never raises into a query.
- Entries (and the rows in them) are shared between queries of one process:
  nothing may change them; a changed entry is a new dict.

Example:
    >>> from pathlib import Path
    >>> from runjournal.store import init_store
    >>> cache = QueryCache(init_store(Path("cache-store").absolute()))
    >>> cache.load(), cache.load_state("no-such-run")
    ({}, None)
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock, Timeout

from runjournal._permissions import apply_file_mode, lock_mode, make_dir, open_file
from runjournal._version import __version__
from runjournal.format import CACHE_DIR, RUNS_DIR, TEMP_PREFIX
from runjournal.query._columns import Batch, concat_batches, decode_batch, encode_batch
from runjournal.query._digest import RACY_NS, RunDigest
from runjournal.query._index import (
    BASE_SUFFIX,
    INDEX,
    INDEX_VERSION,
    Manifest,
    names_key,
    read_base,
    refs_of,
    write_base,
)
from runjournal.query._metricsfile import ChunkError, MetricsFold
from runjournal.query._packs import PACK_SUFFIX, PackWriter, pack_of, parse_ref, read_blob

__all__ = ["CACHE_VERSION", "QUERY_DIR", "QueryCache", "chunk_info"]

QUERY_DIR = "query"
CACHE_VERSION = INDEX_VERSION
"""Bumped whenever the layout or the meaning of a saved digest changes (2: a file per run)."""

LOCK_TIMEOUT = 0.5
"""Seconds to wait for the index lock before giving up on saving."""
GRACE_SECONDS = 120.0
"""A retired pack or base is deleted this long after, for readers of an older manifest."""
ORPHAN_SECONDS = 3600.0
"""A file no manifest ever named (a save that failed, an older layout) is deleted after this."""
MAX_CHUNKS = 8
"""A metrics file with more chunks has them merged into one."""
SMALL_PACK = 16 << 20
"""Packs holding less than this are merged when a new base is made and there are many."""
MAX_SMALL_PACKS = 8
MOVE_LIMIT = 128 << 20
"""Bytes at most copied out of small or mostly unused packs when a new base is made."""

_CACHE_ERRORS = (OSError, ValueError, TypeError, KeyError, orjson.JSONEncodeError)
_KNOWN = {INDEX, "index.lock", "clock"}
_OLD_LAYOUT = ("index.json", "states", "chunks")
"""What version 2 of the cache kept here: removed once no process used it for a while."""


class QueryCache:
    """The query cache of one store (see the module's docstring).

    Attributes:
        root: ``<store>/.cache/query``.
        writable: False once a write failed: nothing more is attempted.
    """

    def __init__(self, store: Path) -> None:
        self.store = store
        self.root = store / CACHE_DIR / QUERY_DIR
        self.writable = True
        self._entries: dict[str, Any] | None = None
        self._writer: PackWriter | None = None
        self._loaded: dict[str, tuple[str, tuple[Any, ...]]] = {}
        self._clock: int | None = None
        self._made = False

    # ------------------------------------------------------------- reading

    def load(self) -> dict[str, Any]:
        """The entries of the index, by run id; empty when there is no usable index."""
        manifest = Manifest.read(self.root)
        base = read_base(self.root, manifest.base) if manifest.base is not None else {}
        self._entries = manifest.entries(base)
        return self._entries

    def unchanged(
        self, run_ids: Collection[str], usable: Callable[[Any], bool], clock: int
    ) -> dict[str, Any]:
        """The saved entries that still describe their run, by run id (of ``run_ids``).

        An entry is kept when it is ``usable`` (its row holds what the query
        needs, says the caller), the run directory has the
        inode and modification time it had and every file the entry was made
        from the inode, size and modification time. A directory modified less
        than ``RACY_NS`` before it was listed may have changed within its
        clock's resolution: it is listed again, and its entry kept if the
        names are the same (with ``clock``, the file system's time before
        this check, as its new listing time once that is old enough to trust).
        """
        saved = self._entries if self._entries is not None else self.load()
        runs = f"{self.store / RUNS_DIR}{os.sep}"
        stat = os.stat
        found: dict[str, Any] = {}
        for run_id in run_ids:
            entry = saved.get(run_id)
            if entry is None:
                continue
            try:
                if not usable(entry):
                    continue
                ino, mtime, listed = entry["dir"]
                path = runs + run_id
                status = stat(path)
                if status.st_ino != ino or status.st_mtime_ns != mtime:
                    continue
                prefix = path + os.sep
                for name, (file_ino, size, file_mtime) in entry["files"].items():
                    status = stat(prefix + name)
                    if (
                        status.st_size != size
                        or status.st_mtime_ns != file_mtime
                        or status.st_ino != file_ino
                    ):
                        break
                else:
                    if mtime >= listed - RACY_NS:  # too recent to trust: list it again
                        if entry.get("names") != names_key(os.listdir(path)):  # noqa: PTH208
                            continue
                        if mtime < clock - RACY_NS:
                            entry = {**entry, "dir": [ino, mtime, clock]}
                    found[run_id] = entry
            except (OSError, KeyError, TypeError, ValueError):
                continue
        return found

    def load_state(self, run_id: str) -> RunDigest | None:
        """The digest saved for a run, or None when there is none usable."""
        entries = self._entries if self._entries is not None else self.load()
        entry = entries.get(run_id)
        ref = entry.get("state") if isinstance(entry, dict) else None
        if not isinstance(ref, str):
            return None
        try:
            digest = RunDigest.from_json(run_id, orjson.loads(read_blob(self.root, ref)))
            self._loaded[run_id] = (ref, digest.identity())
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None
        if digest.metrics is not None:
            digest.metrics.loader = functools.partial(self.load_chunk, run_id)
            digest.metrics.run_dir = self.store / RUNS_DIR / run_id
        return digest

    def load_chunk(
        self, run_id: str, name: str, keys: Collection[str] | None, *, numpy: bool = False
    ) -> Batch:
        """The columns saved as chunk ``name`` (a pack reference) of run ``run_id``.

        With ``numpy``, NumPy arrays.

        Raises:
            ChunkError: it is missing or damaged.
        """
        try:
            return decode_batch(read_blob(self.root, name), keys, numpy=numpy)
        except (OSError, ValueError, TypeError, KeyError, orjson.JSONDecodeError) as error:
            raise ChunkError(f"chunk {run_id}/{name}: {error}") from error

    def clock_ns(self) -> int:
        """The file system's current time (a file touched there), else this host's."""
        probe = self.root / "clock"
        if self.writable:
            with contextlib.suppress(OSError):
                os.utime(probe)
                self._clock = probe.stat().st_mtime_ns
                return self._clock
            with contextlib.suppress(OSError):
                self._make_root()
                os.close(open_file(probe, os.O_WRONLY))
                self._clock = probe.stat().st_mtime_ns
                return self._clock
            self.writable = False  # a read-only store: answer from the files
        return time.time_ns()

    # ------------------------------------------------------------- saving

    def save(self, entries: dict[str, Any], states: dict[str, RunDigest]) -> bool:
        """Make ``entries`` the index, saving the new ``states`` (and their columns).

        Only what differs from the entries :meth:`load` gave is written: the
        new digests and columns into one pack, the changed entries (and the
        runs no longer in ``entries``) into the manifest. Returns whether the
        index was written (or needed nothing); every failure is swallowed.
        """
        if not self.writable:
            return False
        loaded = self._entries if self._entries is not None else {}
        try:
            changed: dict[str, Any] = {}
            if states:
                self._make_root()
            for run_id, digest in states.items():
                entry = entries.get(run_id)
                if entry is not None:
                    state = self._save_state(digest)  # first: it saves the pending columns
                    changed[run_id] = {
                        **entry,
                        "chunks": chunk_info(digest),
                        "state": state,
                        "names": names_key(digest.names),
                    }
            for run_id, entry in entries.items():
                if run_id not in changed and loaded.get(run_id) is not entry:
                    changed[run_id] = entry
            gone = [run_id for run_id in loaded if run_id not in entries]
            if not changed and not gone:
                return True
            if not states:
                self._make_root()
            packs = set(self._writer.finish()) if self._writer is not None else set()
            for entry in changed.values():
                packs.update(_packs_of(entry))
            with self._lock():
                self._update(changed, gone, packs)
            self._writer = None  # its packs are named now: never discarded
        except Timeout:
            return False  # another process is saving: answer from the files, save next time
        except _CACHE_ERRORS:
            self.writable = False  # a read-only store, a full disk: stop trying
            if self._writer is not None:
                self._writer.discard()
            return False
        merged = {**loaded, **changed}
        for run_id in gone:
            merged.pop(run_id, None)
        self._entries = merged
        return True

    def save_state(self, digest: RunDigest) -> str | None:
        """Write one run's digest (and its new columns) into a pack; where it is, or None.

        The pack is readable (and the reference usable) once :meth:`publish` returned True.
        """
        if not self.writable:
            return None
        try:
            self._make_root()
            return self._save_state(digest)
        except _CACHE_ERRORS:
            self.writable = False
            if self._writer is not None:
                self._writer.discard()
            return None

    def publish(self) -> bool:
        """Finish the packs :meth:`save_state` wrote into; whether they can be read now."""
        if self._writer is None:
            return True
        if not self.writable:
            return False
        try:
            self._writer.finish()
        except OSError:
            self.writable = False
            self._writer.discard()
            return False
        return True

    def _pack(self) -> PackWriter:
        if self._writer is None:
            self._writer = PackWriter(self.root)
        return self._writer

    def _save_state(self, digest: RunDigest) -> str:
        """Write a digest (and its pending columns); its reference. The same, if unchanged."""
        known = self._loaded.get(digest.run_id)
        metrics = digest.metrics
        pending = metrics is not None and any(fold.pending for fold in metrics.files)
        if known is not None and not pending and known[1] == digest.identity():
            return known[0]  # read again, nothing new: its digest is already saved
        if metrics is not None:
            for fold in metrics.files:
                if fold.pending:
                    self._save_fold(digest.run_id, fold)
            metrics.loader = functools.partial(self.load_chunk, digest.run_id)
        return self._pack().add(orjson.dumps(digest.to_json()))

    def _make_root(self) -> None:
        if not self._made:
            for directory in (self.root.parent, self.root):
                make_dir(directory, exist_ok=True)
            self._made = True

    def _save_fold(self, run_id: str, fold: MetricsFold) -> None:
        batches = fold.pending
        names = list(fold.chunks)
        if len(names) + 1 > MAX_CHUNKS:
            try:
                batches = [self.load_chunk(run_id, name, None) for name in names] + batches
                names = []
            except ChunkError:
                pass  # keep the chunks as they are
        fold.chunks = [*names, self._pack().add(encode_batch(concat_batches(batches)))]
        fold.pending = []

    def _lock(self) -> FileLock:
        path, mode = str(self.root / "index.lock"), lock_mode()
        if mode is None:
            return FileLock(path, timeout=LOCK_TIMEOUT)
        return FileLock(path, timeout=LOCK_TIMEOUT, mode=mode)

    def _now(self) -> int:
        return self._clock if self._clock is not None else time.time_ns()

    def _update(self, changed: dict[str, Any], gone: list[str], packs: set[str]) -> None:
        """Add the changes to the manifest as it is now (under the lock), and replace it."""
        manifest = Manifest.read(self.root)
        manifest.apply(changed, gone)
        manifest.add_packs(sorted(packs))
        now = self._now()
        if manifest.oversized():
            self._compact(manifest, now)
        self._expire(manifest, now)
        _write_atomically(self.root / INDEX, manifest.encode(__version__))

    # ------------------------------------------------------------- compacting

    def _compact(self, manifest: Manifest, now: int) -> None:
        """Fold the changes into a new base; merge small and mostly unused packs; retire."""
        entries = manifest.entries(read_base(self.root, manifest.base) if manifest.base else {})
        live: dict[str, int] = {}
        users: dict[str, set[str]] = {}
        for run_id, entry in list(entries.items()):
            try:
                for ref in refs_of(entry):
                    pack, _, length, _ = parse_ref(ref)
                    live[pack] = live.get(pack, 0) + length
                    users.setdefault(pack, set()).add(run_id)
            except ValueError:
                del entries[run_id]  # a damaged entry: the run is read again
        sizes: dict[str, int] = {}
        for pack in live:
            try:
                sizes[pack] = os.stat(self.root / f"{pack}{PACK_SUFFIX}").st_size  # noqa: PTH116
            except OSError:  # collected while an entry still pointed into it
                for run_id in users[pack]:
                    entries.pop(run_id, None)
        victims = _victims({pack: live[pack] for pack in sizes}, sizes)
        if victims:
            writer = PackWriter(self.root)
            moving = sorted({run_id for pack in victims for run_id in users[pack]})
            for run_id in moving:
                if run_id in entries:
                    moved = self._move(run_id, entries[run_id], victims, writer)
                    if moved is None:
                        del entries[run_id]
                    else:
                        entries[run_id] = moved
            writer.finish()
        referenced = {pack for entry in entries.values() for pack in _packs_of(entry)}
        retired = [name for name in manifest.packs if name not in referenced]
        if manifest.base is not None:
            manifest.retired.append([f"{manifest.base}{BASE_SUFFIX}", now])
        manifest.retired += [[f"{name}{PACK_SUFFIX}", now] for name in retired]
        manifest.packs = sorted(referenced)
        manifest.base = write_base(self.root, entries, _write_atomically)
        manifest.base_count, manifest.base_packs = len(entries), len(manifest.packs)
        manifest.delta, manifest.gone = {}, []
        self._sweep(manifest, now)

    def _move(
        self, run_id: str, entry: dict[str, Any], victims: set[str], writer: PackWriter
    ) -> dict[str, Any] | None:
        """A run's entry, its digest and its chunks in ``victims`` copied to ``writer``."""
        try:
            digest = RunDigest.from_json(run_id, orjson.loads(read_blob(self.root, entry["state"])))
            if digest.metrics is not None:
                for fold in digest.metrics.files:
                    fold.chunks = [
                        writer.add(read_blob(self.root, ref)) if pack_of(ref) in victims else ref
                        for ref in fold.chunks
                    ]
            state = writer.add(orjson.dumps(digest.to_json()))
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None
        return {**entry, "state": state, "chunks": chunk_info(digest)}

    def _expire(self, manifest: Manifest, now: int) -> None:
        """Delete the retired files no reader can need any more."""
        kept = []
        for name, retired in manifest.retired:
            if now - retired > GRACE_SECONDS * 1e9:
                with contextlib.suppress(OSError):
                    (self.root / name).unlink()
            else:
                kept.append([name, retired])
        manifest.retired = kept

    def _sweep(self, manifest: Manifest, now: int) -> None:
        """Delete what no manifest names and nothing wrote for a long while."""
        known = manifest.known_files() | _KNOWN
        with contextlib.suppress(OSError), os.scandir(self.root) as found:
            for entry in found:
                name = entry.name
                ours = name.endswith((PACK_SUFFIX, BASE_SUFFIX)) or name.startswith(TEMP_PREFIX)
                if name in known or not (ours or name in _OLD_LAYOUT):
                    continue
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime_ns < ORPHAN_SECONDS * 1e9:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        Path(entry.path).unlink()


def chunk_info(digest: RunDigest) -> list[list[Any]] | None:
    """Where a saved digest's metric columns are: ``[file, writer, chunks, {key: dirty}]``.

    Kept in the index entry, so that reading the history of an unchanged run
    needs only its chunks, not its digest.
    """
    if digest.metrics is None or any(fold.pending for fold in digest.metrics.files):
        return None
    return [
        [
            fold.name,
            fold.writer,
            fold.chunks,
            {key: state.dirty for key, state in fold.keys.items()},
        ]
        for fold in digest.metrics.files
    ]


def _packs_of(entry: Any) -> set[str]:
    """The packs an entry points into (references that are not are left out)."""
    packs = set()
    for ref in refs_of(entry):
        with contextlib.suppress(ValueError):
            packs.add(pack_of(ref))
    return packs


def _victims(live: dict[str, int], sizes: dict[str, int]) -> set[str]:
    """The packs to copy the used blobs out of: mostly unused ones, and small ones if many."""
    victims = {pack for pack, used in live.items() if used * 2 < sizes[pack]}
    small = [pack for pack, used in live.items() if used < SMALL_PACK and pack not in victims]
    if len(small) > MAX_SMALL_PACKS:
        victims.update(small)
    chosen: set[str] = set()
    moved = 0
    for pack in sorted(victims, key=live.__getitem__):
        if moved + live[pack] > MOVE_LIMIT and chosen:
            break
        chosen.add(pack)
        moved += live[pack]
    return chosen


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        temp.write_bytes(data)
        apply_file_mode(temp)
        temp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
