"""The runs of a store as rows, brought up to date from the files and the query cache.

:class:`Catalog` is what :class:`~runjournal.query.Store` reads runs through.
For each run it gives an :class:`Entry`: the run's row (what the run table,
filters and sorting need; :mod:`runjournal.query._row`) and, on demand, its
digest (the folds, for records and metric history).

With the cache, a run whose directory and files have the stats its saved
entry was made from is answered from that entry, without opening a run file;
any other run is read again from where its saved digest stopped (only what
was appended), and its entry and digest are saved. Without the cache
(``cache=False``, or a store it cannot write), every run is folded from its
files. Both make rows the same way, so both give the same answers.

Example:
    >>> from pathlib import Path
    >>> from runjournal.store import init_store
    >>> catalog = Catalog(init_store(Path("catalog-store").absolute()), cache=True)
    >>> catalog.entries(metrics=True, captured=False)
    {}
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runjournal.format import RUN_ID_PATTERN, RUNS_DIR
from runjournal.query._cache import QueryCache
from runjournal.query._digest import RACY_NS, RunDigest, refresh
from runjournal.query._row import make_row

__all__ = ["Catalog", "Entry", "run_ids"]

_NO_MARK = [0, -1, 0]
"""The stats of a file that could not be read: never equal to a file's, so it is read again."""


class Entry:
    """One run of the catalog.

    Attributes:
        run_dir: The run's directory.
        row: Its row, or None when its files could not be made sense of.
        error: What went wrong then.
        fresh: Whether the metrics summary in the row matches the files now.
    """

    def __init__(
        self,
        run_dir: Path,
        row: dict[str, Any] | None,
        *,
        digest: RunDigest | None = None,
        loader: Callable[[], RunDigest | None] | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.row = row
        self.error = error
        self._digest = digest
        self._loader = loader

    def digest(self) -> RunDigest:
        """The run's digest: saved by the cache, else folded from the files now."""
        if self._digest is None:
            saved = self._loader() if self._loader is not None else None
            if saved is None:
                metrics = self.row is not None and self.row.get("metrics") is not None
                saved = refresh(self.run_dir, None, metrics=metrics, captured=False, clock_ns=0)
            self._digest = saved if saved is not None else RunDigest(self.run_dir.name)
        return self._digest

    def names(self) -> list[str]:
        """The names in the run directory (from the digest)."""
        return self.digest().names


class Catalog:
    """The runs of one store, as entries.

    Attributes:
        store: The store directory.
        cache: The query cache, or None when not used.
    """

    def __init__(self, store: Path, *, cache: bool) -> None:
        self.store = store
        self.cache = QueryCache(store) if cache else None

    def entries(
        self, *, metrics: bool, captured: bool, only: list[str] | None = None
    ) -> dict[str, Entry]:
        """The entry of every run (or of the runs ``only`` names), by run id, sorted.

        Args:
            metrics: The rows must hold the metric summaries.
            captured: The rows must hold the git and data columns.
            only: Only these run ids (which need not exist).
        """
        ids = run_ids(self.store)
        if only is not None:
            ids = sorted(set(only) & set(ids))
        saved = self.cache.load() if self.cache is not None else {}
        clock = self.cache.clock_ns() if self.cache is not None else time.time_ns()
        found: dict[str, Entry] = {}
        states: dict[str, RunDigest] = {}
        entries: dict[str, Any] = dict(saved) if only is not None else {}
        for run_id in ids:
            run_dir = self.store / RUNS_DIR / run_id
            entry = saved.get(run_id)
            if entry is not None and _still_valid(run_dir, entry, metrics, captured):
                found[run_id] = Entry(run_dir, entry["row"], loader=self._state_loader(run_id))
                entries[run_id] = entry
                continue
            made = self._read(run_dir, entry is not None, metrics, captured, clock)
            if made is None:
                continue
            found[run_id] = made
            digest = made._digest
            if made.row is not None and digest is not None:
                entries[run_id] = _entry(digest, made.row)
                states[run_id] = digest
        if self.cache is not None and (states or set(saved) - set(entries)):
            self.cache.save(entries, states)
        return found

    def _state_loader(self, run_id: str) -> Callable[[], RunDigest | None]:
        cache = self.cache
        assert cache is not None
        return lambda: cache.load_state(run_id)

    def _read(
        self, run_dir: Path, known: bool, metrics: bool, captured: bool, clock: int
    ) -> Entry | None:
        """The entry of a run read from its files, from where its saved digest stopped."""
        old = self.cache.load_state(run_dir.name) if self.cache is not None and known else None
        if old is not None:  # keep up to date what the saved row holds
            metrics = metrics or old.metrics is not None
            captured = captured or old.git is not None
        try:
            digest = refresh(run_dir, old, metrics=metrics, captured=captured, clock_ns=clock)
            if digest is None:
                return None
            return Entry(run_dir, make_row(run_dir, digest), digest=digest)
        except (ValueError, RecursionError) as error:  # content of a shape nobody foresaw
            return Entry(run_dir, None, error=error)


def _entry(digest: RunDigest, row: dict[str, Any]) -> dict[str, Any]:
    """What the index keeps of a run: how to tell it is unchanged, and its row."""
    files: dict[str, list[int]] = {}
    for fold in (digest.events, digest.params):
        if fold.name in digest.names:
            files[fold.name] = _mark(fold.mark)
    if digest.metrics is not None:
        for metrics in digest.metrics.files:
            files[metrics.name] = _mark(metrics.mark)
    for captured in (digest.git, digest.data):
        if captured is not None and captured.file in digest.names:
            files[captured.file] = list(captured.key) if captured.key else _NO_MARK
    ino, mtime = digest.dir_key or (0, 0)
    return {"dir": [ino, mtime, digest.listed_ns], "files": files, "row": row}


def _mark(mark: Any) -> list[int]:
    return _NO_MARK if mark is None else [mark.ino, mark.size, mark.mtime_ns]


def _still_valid(run_dir: Path, entry: dict[str, Any], metrics: bool, captured: bool) -> bool:
    """Whether a saved entry still describes the run: nothing in its directory changed."""
    try:
        row = entry["row"]
        if (metrics and row["metrics"] is None) or (captured and row["git"] is None):
            return False
        ino, mtime, listed = entry["dir"]
        status = os.stat(run_dir)  # noqa: PTH116 (strings: this loop runs 10^5 times)
        if status.st_ino != ino or status.st_mtime_ns != mtime or mtime >= listed - RACY_NS:
            return False
        prefix = f"{run_dir}{os.sep}"
        for name, (file_ino, size, file_mtime) in entry["files"].items():
            status = os.stat(prefix + name)  # noqa: PTH116
            if (status.st_ino, status.st_size, status.st_mtime_ns) != (file_ino, size, file_mtime):
                return False
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return True


def run_ids(store: Path) -> list[str]:
    """The ids of the run directories of a store, sorted; other entries of ``runs/`` are ignored.

    Example:
        >>> run_ids(Path("no-such-store"))
        []
    """
    try:
        with os.scandir(store / RUNS_DIR) as entries:
            return sorted(
                entry.name
                for entry in entries
                if RUN_ID_PATTERN.fullmatch(entry.name) and entry.is_dir()
            )
    except OSError:
        return []
