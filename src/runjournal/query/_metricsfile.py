r"""The metrics files of one run, folded incrementally: summaries, skipped lines and history.

A :class:`MetricsFold` follows one metrics file: how far it was read, the
lines skipped, a :class:`~runjournal.query._metricfold.KeyState` per key, and
the columns of what was read, either still in memory (``pending``) or saved
by the query cache as *chunks* that :class:`ChunkLoader` reads back. A
:class:`MetricsPart` is all the metrics files of a run, in reading order,
and answers what :class:`~runjournal.query.RunRecord` asks: the summary per
key, the lines skipped per file, and the history rows.

Example:
    >>> from pathlib import Path
    >>> _ = Path("metrics.jsonl").write_bytes(
    ...     b'{"step": 0, "time": 1.0, "seg": 0, "m": {"loss": 0.5}}\n'
    ...     b'{"step": 1, "time": 2.0, "seg": 0, "m": {"loss": 0.25}}\n')
    >>> part = MetricsPart.read(Path("."), ["metrics.jsonl"], None)
    >>> summary = part.summary()["loss"]
    >>> summary.last, summary.max_step, summary.count
    (0.25, 0, 2)
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from runjournal.format import SkippedLine
from runjournal.query._columns import Batch
from runjournal.query._folds import FileFold
from runjournal.query._history import LoadedHistory
from runjournal.query._metricfold import (
    KeyState,
    Partial,
    build_batch,
    metric_file_names,
    summarize_file,
)
from runjournal.query._scan import scan
from runjournal.query._summary import MetricSummary

__all__ = ["ChunkError", "ChunkLoader", "LazyMetrics", "MetricsFold", "MetricsPart", "paused_gc"]


class ChunkError(Exception):
    """A chunk of the query cache is missing or damaged: read the file again instead."""


class ChunkLoader(Protocol):
    """Reads a saved chunk of columns back (the query cache)."""

    def __call__(self, name: str, keys: Collection[str] | None, *, numpy: bool = False) -> Batch:
        """The batch saved as ``name``, with only ``keys`` (None for all); NumPy arrays if asked.

        Raises:
            ChunkError: it cannot be read.
        """
        ...


class MetricsFold(FileFold):
    """One metrics file, read up to a point.

    Attributes:
        writer: The file's writer; None for the main ``metrics.jsonl``.
        keys: A state per key, in order of first appearance in the file.
        chunks: Names of the saved chunks holding the columns read so far.
        pending: Columns read but not saved yet, after the chunks.
    """

    def __init__(self, name: str, writer: str | None) -> None:
        super().__init__()
        self.name = name
        self.writer = writer
        self.keys: dict[str, KeyState] = {}
        self.chunks: list[str] = []
        self.pending: list[Batch] = []

    def add_records(self, lines: Sequence[int], records: list[dict[str, Any]]) -> None:
        """Fold some records (with their line numbers), later in the file than those so far."""
        if not records:
            return
        batch, skipped = build_batch(lines, records)
        self.record_skipped.extend(skipped)
        if not len(batch):
            return
        for key in batch.keys:
            state = self.keys.get(key)
            if state is None:
                state = self.keys[key] = KeyState.new()
            state.update(batch, key)
        self.pending.append(batch)

    def batches(
        self, loader: ChunkLoader | None, keys: Collection[str] | None, *, numpy: bool = False
    ) -> list[Batch]:
        """The columns of every line read, in file order (only ``keys``, None for all).

        With ``numpy``, the saved chunks come as NumPy arrays (the pending ones
        stay lists).

        Raises:
            ChunkError: a saved chunk cannot be read.
        """
        if self.chunks and loader is None:
            raise ChunkError("no cache to read chunks from")
        saved = (
            [loader(name, keys, numpy=numpy) for name in self.chunks] if loader is not None else []
        )
        return saved + self.pending

    def to_json(self) -> dict[str, Any]:
        """The state as plain JSON; the pending columns must have been saved as chunks."""
        return {
            **self._skips_json(),
            "name": self.name,
            "writer": self.writer,
            "keys": {key: state.to_json() for key, state in self.keys.items()},
            "chunks": self.chunks,
        }

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> MetricsFold:
        """The state saved by :meth:`to_json`.

        Raises:
            KeyError, TypeError, ValueError: not a state this version saved.
        """
        fold = cls(str(state["name"]), state["writer"])
        fold._load_skips(state)
        fold.keys = {str(key): KeyState.from_json(value) for key, value in state["keys"].items()}
        fold.chunks = [str(name) for name in state["chunks"]]
        return fold


def advance_metrics(
    fold: MetricsFold | None, name: str, writer: str | None, path: Path
) -> MetricsFold:
    """``fold`` continued with the lines appended to ``path`` since (see ``_folds.advance``)."""
    result = scan(path, None if fold is None else fold.mark)
    if fold is not None and result.unchanged:
        fold.tail = []
        return fold
    if fold is None or result.reset:
        fold = MetricsFold(name, writer)
    fold.mark, fold.error, fold.tail = result.mark, result.error, result.tail
    fold.parse_skipped.extend((skip.line, skip.reason) for skip in result.skipped)
    fold.add_records(result.lines, result.records)
    return fold


class MetricsPart:
    """The metrics files of one run, in reading order (main writer first).

    Attributes:
        files: One fold per metrics file.
        loader: Reads the folds' saved chunks; None when nothing was saved.
        run_dir: The run's directory, to read the files again if a chunk is lost.
        rebuilt: Whether the files had to be read again (the cache lost a chunk).
    """

    def __init__(
        self,
        files: list[MetricsFold],
        loader: ChunkLoader | None = None,
        run_dir: Path | None = None,
    ) -> None:
        self.files = files
        self.loader = loader
        self.run_dir = run_dir
        self.rebuilt = False

    @classmethod
    def read(cls, run_dir: Path, names: Sequence[str], old: MetricsPart | None) -> MetricsPart:
        """The metrics files among ``names`` (the run directory's), continued from ``old``.

        ``old`` is used up: its folds continue in the new part.
        """
        known = {fold.name: fold for fold in old.files} if old is not None else {}
        with paused_gc():
            files = [
                advance_metrics(known.get(name), name, writer, run_dir / name)
                for writer, name in metric_file_names(names)
            ]
        return cls(files, old.loader if old is not None else None, run_dir)

    def summary(self) -> dict[str, MetricSummary]:
        """Per key, in order of first appearance in the default view: its summary."""
        try:
            return self._summary()
        except ChunkError:
            self._rebuild()
            return self._summary()

    def _rebuild(self) -> None:
        """Read every metrics file again from its start (a saved chunk was lost)."""
        if self.run_dir is None:
            raise ChunkError("no run directory to read the metrics from")
        run_dir = self.run_dir
        with paused_gc():
            self.files = [
                advance_metrics(None, fold.name, fold.writer, run_dir / fold.name)
                for fold in self.files
            ]
        self.loader, self.rebuilt = None, True

    def _summary(self) -> dict[str, MetricSummary]:
        merged: dict[str, Partial] = {}
        for rank, fold in enumerate(self.files):
            parts = summarize_file(fold.keys, functools.partial(fold.batches, self.loader))
            for key, part in parts.items():
                ranked = part.ranked(rank)
                known = merged.get(key)
                merged[key] = ranked if known is None else known.merge(ranked)
        ordered = sorted(merged.items(), key=lambda item: item[1].first)
        return {key: _summary(part) for key, part in ordered}

    def skipped(self) -> dict[str, list[SkippedLine]]:
        """The lines skipped in each file that has any, in reading order."""
        found = {fold.name: fold.skipped() for fold in self.files}
        return {name: skipped for name, skipped in found.items() if skipped}

    def history(self, keys: Collection[str] | None = None) -> LoadedHistory:
        """Every row (of ``keys``; None for all), in file order, as ``read_history`` gives."""
        try:
            return self._history(keys)
        except ChunkError:
            self._rebuild()
            return self._history(keys)

    def _history(self, keys: Collection[str] | None) -> LoadedHistory:
        history = LoadedHistory(skipped=self.skipped())
        for fold in self.files:
            history.writers.append(fold.writer)
            history.rows += _rows(fold.batches(self.loader, keys), fold.writer, keys)
        return history

    def identity(self) -> list[tuple[str, Any]]:
        """What the part was read from: each file and its mark."""
        return [(fold.name, fold.mark) for fold in self.files]


def _rows(
    batches: list[Batch], writer: str | None, keys: Collection[str] | None
) -> list[dict[str, Any]]:
    keyed: list[tuple[int, int, dict[str, Any]]] = []
    for batch in batches:
        for key, column in batch.keys.items():
            if keys is not None and key not in keys:
                continue
            for i, slot, value in zip(
                column.indices(len(batch)), column.slots(), column.values, strict=True
            ):
                row = {
                    "step": batch.step[i],
                    "time": batch.time[i],
                    "key": key,
                    "value": value,
                    "segment": batch.seg[i],
                    "writer": writer,
                }
                keyed.append((batch.line[i], slot, row))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [row for _, _, row in keyed]


def _summary(part: Partial) -> MetricSummary:
    return MetricSummary(
        last=part.last[1],
        last_step=part.last[0][0],
        min=None if part.low is None else part.low[0],
        min_step=None if part.low is None else part.low[1][0],
        max=None if part.high is None else part.high[0],
        max_step=None if part.high is None else part.high[1][0],
        count=part.count,
    )


class LazyMetrics:
    """A record's metrics: known already, or read (from where an earlier read stopped) on use.

    Args:
        run_dir: The run's directory.
        part: Gives the metrics part read earlier (or None), when it is first needed.
        fresh: Whether that part is up to date with the files (else it is continued).
        summary: Makes the summary per key, when it is known already (from a row).
        last: The last value per key, known with ``summary``.
        skipped: The lines skipped per metrics file, known with ``summary``.

    Example:
        >>> LazyMetrics(Path("no-such-run"), lambda: None).summary()
        {}
    """

    def __init__(
        self,
        run_dir: Path,
        part: Callable[[], MetricsPart | None],
        *,
        fresh: bool = False,
        summary: Callable[[], dict[str, MetricSummary]] | None = None,
        last: dict[str, Any] | None = None,
        skipped: dict[str, list[SkippedLine]] | None = None,
    ) -> None:
        self._run_dir = run_dir
        self._load: Callable[[], MetricsPart | None] | None = part
        self._part: MetricsPart | None = None
        self._fresh = fresh
        self._make_summary = summary
        self._summary: dict[str, MetricSummary] | None = None
        self._last = last
        self._skipped = skipped

    def part(self) -> MetricsPart:
        """The metrics part, read now if it was not."""
        if self._load is not None:
            self._part, self._load = self._load(), None
        if not self._fresh or self._part is None:
            names = stat_names(self._run_dir)
            self._part = MetricsPart.read(self._run_dir, names, self._part)
            self._fresh = True
        return self._part

    def summary(self) -> dict[str, MetricSummary]:
        """The summary per key."""
        if self._summary is None:
            made = self._make_summary
            self._summary = made() if made is not None else self.part().summary()
        return self._summary

    def last(self) -> dict[str, Any]:
        """The last value per key (without making the summaries, when it is known)."""
        if self._last is None:
            self._last = {key: summary.last for key, summary in self.summary().items()}
        return self._last

    def skipped(self) -> dict[str, list[SkippedLine]]:
        """The lines skipped per metrics file."""
        if self._skipped is None:
            self._skipped = self.part().skipped()
        return self._skipped

    def history(self, keys: Collection[str] | None = None) -> LoadedHistory:
        """Every row (of ``keys``; None for all)."""
        return self.part().history(keys)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No garbage collection while a query runs.

    A query makes millions of small containers (parsed JSON, rows) that hold
    no cycles and mostly die with it; collecting while they live traverses
    them again and again (a third of the time), while after the query they
    are already freed by reference counting.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def stat_names(run_dir: Path) -> list[str]:
    """The names in a run directory (empty when it cannot be listed)."""
    try:
        with os.scandir(run_dir) as entries:
            return [entry.name for entry in entries]
    except OSError:
        return []
