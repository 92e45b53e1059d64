"""The query cache under ``<store>/.cache/query/``: run digests and metric columns, saved.

Everything here is derived from the run files and may be deleted at any time
(``docs/format.md``, *.cache*). Layout::

    .cache/query/
      index.json              {"version", "library", "runs": {run_id: entry}}
      index.lock              taken (with a short timeout) only while index.json is replaced
      clock                   touched to learn the file system's time
      states/<run_id>.json    the run's digest: where each file was read up to, the folds
      chunks/<run_id>/*.bin   metric columns (see runjournal.query._columns), one file per
                              batch of lines; their names say file, inode, lines and checksum

An *entry* of the index is what a query needs of a run without opening
anything else: the run directory's inode and modification time when it was
listed, the names in it, ``[inode, size, mtime_ns]`` of each file the entry
was made from, and the run's *row* (:mod:`runjournal.query._row`: fields,
params, tags, status inputs, metric summaries, git and data columns). A run
whose directory and files still have those stats is answered from its row;
any other is read again from where its *state* (its digest:
:mod:`runjournal.query._digest`; per file the offset, line count and CRC-32
of the bytes before the offset, the folds, per metric key the summary
inputs, the names of its chunks) stopped, and its entry replaced. Nothing
is executable: JSON and plain little-endian arrays.

Rules that keep it safe:

- Files are written under a temporary name and renamed into place, so a
  reader sees a whole file or none. Chunk names depend only on their content,
  so two processes writing the same chunk write the same bytes.
- Only the replacement of ``index.json`` is locked, with a short timeout; a
  process that cannot take the lock (or write at all: a read-only store) does
  not save, and answers from the files as usual. Reading never locks.
- A chunk left unreferenced is deleted only a while later, so that a reader
  holding an older index still finds it; a chunk that is missing or damaged
  all the same makes its run's metrics be read again from the files.
- Any problem with the cache (a damaged index, a full disk, a lock that
  cannot be had) is handled here: the cache never raises into a query.

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
import zlib
from collections.abc import Collection
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock, Timeout

from runjournal._permissions import apply_file_mode, lock_mode, make_dir, open_file
from runjournal._version import __version__
from runjournal.format import CACHE_DIR, RUNS_DIR, TEMP_PREFIX, read_file
from runjournal.query._columns import Batch, concat_batches, decode_batch, encode_batch
from runjournal.query._digest import RunDigest
from runjournal.query._metricsfile import ChunkError, MetricsFold

__all__ = ["CACHE_VERSION", "QUERY_DIR", "QueryCache", "chunk_info"]

QUERY_DIR = "query"
CACHE_VERSION = 2
"""Bumped whenever the layout or the meaning of a saved digest changes."""

LOCK_TIMEOUT = 0.5
"""Seconds to wait for the index lock before giving up on saving."""
GRACE_SECONDS = 120.0
"""Unreferenced chunks younger than this are kept, for readers of an older index."""
MAX_CHUNKS = 8
"""A metrics file with more chunks has them merged into one."""

_INDEX = "index.json"
_CACHE_ERRORS = (OSError, ValueError, TypeError, KeyError, orjson.JSONEncodeError)


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
        self._raw: dict[str, Any] = {}

    # ------------------------------------------------------------- reading

    def load(self) -> dict[str, Any]:
        """The entries of the index, by run id; empty when there is no usable index."""
        path = self.root / _INDEX
        try:
            index = orjson.loads(read_file(path))
        except (OSError, orjson.JSONDecodeError):
            index = None
        runs = index.get("runs") if isinstance(index, dict) else None
        if not isinstance(runs, dict) or index.get("version") != CACHE_VERSION:
            runs = {}
        self._raw = runs
        return runs

    def load_state(self, run_id: str) -> RunDigest | None:
        """The digest saved for a run, or None when there is none usable."""
        try:
            state = orjson.loads(read_file(self.root / "states" / f"{run_id}.json"))
            digest = RunDigest.from_json(run_id, state)
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None
        if digest.metrics is not None:
            digest.metrics.loader = functools.partial(self.load_chunk, run_id)
            digest.metrics.run_dir = self.store / RUNS_DIR / run_id
        return digest

    def load_chunk(
        self, run_id: str, name: str, keys: Collection[str] | None, *, numpy: bool = False
    ) -> Batch:
        """The columns saved as chunk ``name`` of run ``run_id`` (NumPy arrays if asked).

        Raises:
            ChunkError: it is missing or damaged.
        """
        try:
            data = read_file(Path(f"{self.root}/chunks/{run_id}/{name}"))
            return decode_batch(data, keys, numpy=numpy)
        except (OSError, ValueError, TypeError, KeyError, orjson.JSONDecodeError) as error:
            raise ChunkError(f"chunk {run_id}/{name}: {error}") from error

    def clock_ns(self) -> int:
        """The file system's current time (a file touched there), else this host's."""
        probe = self.root / "clock"
        if self.writable:
            with contextlib.suppress(OSError):
                os.utime(probe)
                return probe.stat().st_mtime_ns
            with contextlib.suppress(OSError):
                self._make_root()
                os.close(open_file(probe, os.O_WRONLY))
                return probe.stat().st_mtime_ns
            self.writable = False  # a read-only store: answer from the files
        return time.time_ns()

    # ------------------------------------------------------------- saving

    def save(self, entries: dict[str, Any], states: dict[str, RunDigest]) -> bool:
        """Replace the index with ``entries``, saving the new ``states`` (and their columns).

        Returns whether the index was written; every failure is swallowed.
        """
        if not self.writable:
            return False
        try:
            self._make_root()
            for run_id, digest in states.items():
                self._save_state(digest)
                if run_id in entries:
                    entries[run_id]["chunks"] = chunk_info(digest)
            self._write_index(entries)
            self._raw = entries
        except Timeout:
            return False  # another process is saving: answer from the files, save next time
        except _CACHE_ERRORS:
            self.writable = False  # a read-only store, a full disk: stop trying
            return False
        self._collect(list(states), states, entries)
        return True

    def save_state(self, digest: RunDigest) -> bool:
        """Save one run's digest (and its new columns), not the index; whether it was saved."""
        if not self.writable:
            return False
        try:
            self._make_root()
            self._save_state(digest)
        except _CACHE_ERRORS:
            self.writable = False
            return False
        return True

    def _save_state(self, digest: RunDigest) -> None:
        self._save_chunks(digest)
        state = orjson.dumps(digest.to_json())
        _write_atomically(self.root / "states" / f"{digest.run_id}.json", state)

    def _make_root(self) -> None:
        for directory in (self.root.parent, self.root, self.root / "chunks", self.root / "states"):
            make_dir(directory, exist_ok=True)

    def _save_chunks(self, digest: RunDigest) -> None:
        if digest.metrics is None:
            return
        for fold in digest.metrics.files:
            if fold.pending:
                self._save_fold(digest.run_id, fold)
        digest.metrics.loader = functools.partial(self.load_chunk, digest.run_id)

    def _save_fold(self, run_id: str, fold: MetricsFold) -> None:
        batches = fold.pending
        names = list(fold.chunks)
        if len(names) + 1 > MAX_CHUNKS:
            try:
                batches = [self.load_chunk(run_id, name, None) for name in names] + batches
                names = []
            except ChunkError:
                pass  # keep the chunks as they are
        batch = concat_batches(batches)
        name = _chunk_name(fold, batch)
        directory = self.root / "chunks" / run_id
        make_dir(directory, exist_ok=True)
        _write_atomically(directory / name, encode_batch(batch))
        fold.chunks = [*names, name]
        fold.pending = []

    def _write_index(self, entries: dict[str, Any]) -> None:
        data = orjson.dumps({"version": CACHE_VERSION, "library": __version__, "runs": entries})
        path, mode = str(self.root / "index.lock"), lock_mode()
        lock = (
            FileLock(path, timeout=LOCK_TIMEOUT)
            if mode is None
            else FileLock(path, timeout=LOCK_TIMEOUT, mode=mode)
        )
        with lock:
            _write_atomically(self.root / _INDEX, data)

    def _collect(
        self, changed: list[str], states: dict[str, RunDigest], entries: dict[str, Any]
    ) -> None:
        """Delete the chunks and states of runs gone, and unused chunks, once old enough."""
        now = time.time()
        for kind in ("chunks", "states"):
            with contextlib.suppress(OSError):
                with os.scandir(self.root / kind) as found:
                    gone = [e for e in found if e.name.removesuffix(".json") not in entries]
                for entry in gone:
                    if now - entry.stat().st_mtime > GRACE_SECONDS:
                        path = Path(entry.path)
                        shutil.rmtree(path, ignore_errors=True) if entry.is_dir() else path.unlink()
        for run_id in changed:
            metrics = states[run_id].metrics
            kept = {n for fold in metrics.files for n in fold.chunks} if metrics else set()
            _remove_old(self.root / "chunks" / run_id, kept, now)


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


def _chunk_name(fold: MetricsFold, batch: Batch) -> str:
    assert fold.mark is not None
    mark = fold.mark
    first, last = (batch.line[0], batch.line[-1]) if len(batch) else (0, 0)
    file_key = zlib.crc32(fold.name.encode("utf-8", "surrogatepass"))
    return f"{file_key:08x}-{mark.ino:x}-{first}-{last}-{mark.tail:08x}.bin"


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


def _remove_old(directory: Path, kept: set[str], now: float) -> None:
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.name in kept:
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > GRACE_SECONDS:
                    Path(entry.path).unlink()
