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

A run that ended with a trustworthy metric summary in its end event
(:mod:`runjournal.query._end_summary`) needs no metrics file read for its
row: a cold listing reads its ``run.jsonl`` and ``params.jsonl`` (and the
captured files the table shows). Only a query for the history
(``history=True``) folds its metrics files, which the cache then keeps.

Example:
    >>> from pathlib import Path
    >>> from runjournal.store import init_store
    >>> catalog = Catalog(init_store(Path("catalog-store").absolute()), cache=True)
    >>> catalog.entries(metrics=True, captured=False)
    {}
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

from runjournal.format import METRICS, RUN_EVENTS, RUN_ID_PATTERN, RUNS_DIR
from runjournal.query._cache import QueryCache
from runjournal.query._digest import RunDigest, refresh
from runjournal.query._metricsfile import ChunkLoader
from runjournal.query._row import ROW_VERSION, make_row
from runjournal.query._workers import read_runs, worker_count

__all__ = ["Catalog", "Entry", "index_entry", "run_ids"]

_NO_MARK = [0, -1, 0]
"""The stats of a file that could not be read: never equal to a file's, so it is read again."""


class Entry:
    """One run of the catalog.

    Attributes:
        run_id: The run id.
        row: Its row, or None when its files could not be made sense of.
        error: What went wrong then.
    """

    __slots__ = (
        "_cache",
        "_digest",
        "_runs_dir",
        "chunks",
        "error",
        "events_size",
        "row",
        "run_id",
    )

    def __init__(
        self,
        runs_dir: Path,
        run_id: str,
        row: dict[str, Any] | None,
        *,
        digest: RunDigest | None = None,
        cache: QueryCache | None = None,
        error: BaseException | None = None,
    ) -> None:
        self._runs_dir = runs_dir
        self.run_id = run_id
        self.row = row
        self.error = error
        self._digest = digest
        self._cache = cache
        self.chunks: list[list[Any]] | None = None
        """Where the saved metric columns are (see ``_cache.chunk_info``), for an unchanged run."""
        self.events_size: int | None = None
        """The size of ``run.jsonl`` that the row was made from (None: not known)."""

    @property
    def run_dir(self) -> Path:
        """The run's directory."""
        return self._runs_dir / self.run_id

    def events_grew(self) -> bool:
        """Whether ``run.jsonl`` holds more than the row was made from (an event landed since)."""
        if self.events_size is None:
            return False
        try:
            return (self.run_dir / RUN_EVENTS).stat().st_size != self.events_size
        except OSError:
            return False

    def chunk_loader(self) -> ChunkLoader | None:
        """Reads this run's saved chunks, when the cache holds them."""
        if self._cache is None or self.chunks is None:
            return None
        return functools.partial(self._cache.load_chunk, self.run_id)

    def digest(self) -> RunDigest:
        """The run's digest: saved by the cache, else folded from the files now."""
        if self._digest is None:
            saved = self._cache.load_state(self.run_id) if self._cache is not None else None
            if saved is None:
                metrics = self.row is not None and self.row.get("metrics") is not None
                saved = refresh(self.run_dir, None, metrics=metrics, captured=False, clock_ns=0)
            self._digest = saved if saved is not None else RunDigest(self.run_id)
        return self._digest


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
        self,
        *,
        metrics: bool,
        captured: bool,
        only: list[str] | None = None,
        history: bool = False,
    ) -> dict[str, Entry]:
        """The entry of every run (or of the runs ``only`` names), by run id, sorted.

        Args:
            metrics: The rows must hold the metric summaries.
            captured: The rows must hold the git and data columns.
            only: Only these run ids (which need not exist).
            history: The metric history will be read: fold the metrics files
                (and keep their columns in the cache) even of runs whose end
                event summarizes them.
        """
        metrics = metrics or history
        ids = run_ids(self.store)
        if only is not None:
            ids = sorted(set(only) & set(ids))
        saved = self.cache.load() if self.cache is not None else {}
        clock = self.cache.clock_ns() if self.cache is not None else time.time_ns()
        runs_dir = self.store / RUNS_DIR
        found: dict[str, Entry] = {}
        states: dict[str, RunDigest] = {}
        entries: dict[str, Any] = dict(saved) if only is not None else {}
        stale: list[tuple[str, bool]] = []
        usable = functools.partial(_usable, metrics=metrics, captured=captured, history=history)
        unchanged = self.cache.unchanged(ids, usable, clock) if self.cache is not None else {}
        for run_id in ids:
            entry = unchanged.get(run_id)
            if entry is not None:
                found[run_id] = Entry(runs_dir, run_id, entry["row"], cache=self.cache)
                found[run_id].chunks = entry.get("chunks")
                entries[run_id] = entry
            else:
                stale.append((run_id, run_id in saved))
        for run_id, made_entry, error in self._read_elsewhere(
            stale, metrics, captured, clock, history
        ):
            if made_entry is not None:
                found[run_id] = Entry(runs_dir, run_id, made_entry["row"], cache=self.cache)
                entries[run_id] = made_entry
            else:
                found[run_id] = Entry(runs_dir, run_id, None, error=ValueError(error))
        for run_id, known in stale:
            if run_id in found:
                continue
            made = self._read(
                runs_dir,
                run_id,
                known,
                metrics=metrics,
                captured=captured,
                clock=clock,
                history=history,
            )
            if made is None:
                continue
            found[run_id] = made
            digest = made._digest
            if made.row is not None and digest is not None:
                entries[run_id] = index_entry(digest, made.row)
                states[run_id] = digest
        found = {run_id: found[run_id] for run_id in ids if run_id in found}
        for run_id, made_entry in found.items():
            made_entry.events_size = _events_size(entries.get(run_id))
        if self.cache is not None:  # writes only what changed, if anything
            self.cache.save(entries, states)
        return found

    def _read_elsewhere(
        self,
        stale: list[tuple[str, bool]],
        metrics: bool,
        captured: bool,
        clock: int,
        history: bool,
    ) -> list[tuple[str, Any, Any]]:
        """Many runs to read: read them in worker processes, which save their digests."""
        if self.cache is None or worker_count(len(stale)) < 2 or not self.cache.writable:
            return []
        self.cache.clock_ns()  # makes the cache directory, or finds it cannot be written
        if not self.cache.writable:
            return []
        found = read_runs(
            self.store, stale, metrics=metrics, captured=captured, clock=clock, history=history
        )
        return [(run_id, entry, error) for run_id, (entry, error) in found.items()]

    def _read(
        self,
        runs_dir: Path,
        run_id: str,
        known: bool,
        *,
        metrics: bool,
        captured: bool,
        clock: int,
        history: bool = False,
    ) -> Entry | None:
        """The entry of a run read from its files, from where its saved digest stopped."""
        run_dir = runs_dir / run_id
        old = self.cache.load_state(run_id) if self.cache is not None and known else None
        if old is not None:  # keep up to date what the saved row holds
            metrics = metrics or old.metrics is not None
            captured = captured or old.git is not None
        try:
            digest = refresh(
                run_dir, old, metrics=metrics, captured=captured, clock_ns=clock, history=history
            )
            if digest is None:
                return None
            row = make_row(run_dir, digest)
        except (ValueError, RecursionError) as error:  # content of a shape nobody foresaw
            return Entry(runs_dir, run_id, None, error=error)
        return Entry(runs_dir, run_id, row, digest=digest, cache=self.cache)


def index_entry(digest: RunDigest, row: dict[str, Any]) -> dict[str, Any]:
    """What the index keeps of a run: how to tell it is unchanged, and its row."""
    files: dict[str, list[int]] = {}
    for fold in (digest.events, digest.params):
        if fold.name in digest.names:
            files[fold.name] = _mark(fold.mark)
    if digest.metrics is not None:
        for metrics in digest.metrics.files:
            files[metrics.name] = _mark(metrics.mark)
    elif digest.summarized is not None:
        files[METRICS] = list(digest.summarized)  # the row's summaries hold while it is unchanged
    for captured in (digest.git, digest.data):
        if captured is not None and captured.file in digest.names:
            files[captured.file] = list(captured.key) if captured.key else _NO_MARK
    ino, mtime = digest.dir_key or (0, 0)
    entry: dict[str, Any] = {"dir": [ino, mtime, digest.listed_ns], "files": files, "row": row}
    if digest.metrics is None and digest.summarized is not None:
        entry["summarized"] = True  # the metrics files were not folded: no history kept
    return entry


def _events_size(entry: dict[str, Any] | None) -> int | None:
    """The size of ``run.jsonl`` an index entry was made from."""
    try:
        size = entry["files"][RUN_EVENTS][1] if entry is not None else None
    except (KeyError, TypeError, IndexError):
        return None
    return size if type(size) is int and size >= 0 else None


def _mark(mark: Any) -> list[int]:
    return _NO_MARK if mark is None else [mark.ino, mark.size, mark.mtime_ns]


def _usable(entry: dict[str, Any], *, metrics: bool, captured: bool, history: bool) -> bool:
    """Whether a saved entry's row holds what the query needs.

    (:meth:`QueryCache.unchanged` checks that the run's files did not change.)
    With ``history``, an entry whose metric columns the cache does not hold
    (its summaries came from the end event) is made again, folding them.
    """
    row = entry["row"]
    if row["v"] != ROW_VERSION:
        return False
    if (metrics and row["metrics"] is None) or (captured and row["git"] is None):
        return False
    return not (history and entry.get("summarized"))


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
