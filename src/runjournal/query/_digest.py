r"""A run's files folded into what the read side needs, continued from an earlier fold.

A :class:`RunDigest` is everything :meth:`Store.runs` and :func:`load_runs`
need to know about one run, derived from its files only: the names in its
directory, the folds of ``run.jsonl`` and ``params.jsonl``, optionally the
folded metrics files, and the few fields of ``git.json`` and ``data.jsonl``
the run table shows. It never holds anything that depends on the time of
reading (a run's status is inferred from the inputs it keeps, at each read),
so a digest saved by the query cache and refreshed later equals one made from
scratch.

:func:`refresh` brings a digest up to date: the directory is listed again
only when its modification time changed (or is too recent to be trusted);
each file is read from where its fold stopped. The metric summaries of a
run that ended come from its end event when that is trustworthy
(:mod:`runjournal.query._end_summary`): then ``metrics.jsonl`` is not read
at all, only its size checked, unless the history itself is wanted.

Example:
    >>> from pathlib import Path
    >>> run = Path("runs/r1")
    >>> run.mkdir(parents=True)
    >>> _ = (run / "run.jsonl").write_text('{"event": "start", "time": 5.0, "seg": 0}\n')
    >>> digest = refresh(run, None, metrics=False, captured=False, clock_ns=0)
    >>> digest.events.start["time"], digest.names
    (5.0, ['run.jsonl'])
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runjournal.format import PARAMS, RUN_EVENTS, SkippedLine
from runjournal.query._data import DATA, latest_by_name, read_data
from runjournal.query._end_summary import trusted_summary
from runjournal.query._folds import EventsFold, F, ParamsFold, advance
from runjournal.query._git import GIT, parse_git
from runjournal.query._metricsfile import MetricsFold, MetricsPart
from runjournal.query._tolerant import read_json_object

__all__ = ["RACY_NS", "Captured", "RunDigest", "latest_name", "refresh"]

RACY_NS = 2_000_000_000
"""A directory modified less than this before it was listed is listed again next time."""

_VERSION = 2  # 2: the events fold keeps alerts


class Captured:
    """What the run table shows of a written-once or small captured file.

    Attributes:
        file: The file's name in the run directory.
        key: ``[inode, size, mtime_ns]`` of the file when read; None when missing.
        value: The columns read from it (JSON).
        problems: ``[file, line, reason]`` of what could not be used.
    """

    __slots__ = ("file", "key", "problems", "value")

    def __init__(self, file: str, key: list[int] | None, value: Any, problems: list[Any]) -> None:
        self.file, self.key, self.value, self.problems = file, key, value, problems

    def skipped(self) -> list[SkippedLine]:
        """The problems as skipped lines."""
        return [SkippedLine(file, line, reason) for file, line, reason in self.problems]

    def to_json(self) -> list[Any]:
        """The state as plain JSON."""
        return [self.file, self.key, self.value, self.problems]

    @classmethod
    def from_json(cls, state: Any) -> Captured | None:
        """The state saved by :meth:`to_json` (None stays None).

        Raises:
            TypeError, ValueError: not a state this version saved.
        """
        if state is None:
            return None
        file, key, value, problems = state
        return cls(str(file), key, value, [list(problem) for problem in problems])


class RunDigest:
    """One run's files, folded (see the module's docstring).

    Attributes:
        run_id: The run id (its directory's name).
        dir_key: ``(inode, mtime_ns)`` of the run directory when it was listed.
        listed_ns: The file system's time just before it was listed.
        names: The names in the run directory.
        events: The fold of ``run.jsonl``.
        params: The fold of ``params.jsonl``.
        metrics: The folds of the metrics files, or None when not read.
        metrics_fresh: Whether ``metrics`` was brought up to date with the files.
        summarized: When the metric summaries come from the end event instead
            of ``metrics`` (then None): ``[inode, size, mtime_ns]`` of
            ``metrics.jsonl``, which they describe.
        summary: The summaries then, as a row holds them.
        git: The run table's ``git.*`` columns: ``[commit, branch, dirty]`` or None.
        data: The run table's ``data.<name>.hash`` columns.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.dir_key: tuple[int, int] | None = None
        self.listed_ns = 0
        self.names: list[str] = []
        self.events = EventsFold()
        self.params = ParamsFold()
        self.metrics: MetricsPart | None = None
        self.metrics_fresh = False
        self.summarized: list[int] | None = None
        self.summary: list[list[Any]] | None = None
        self.git: Captured | None = None
        self.data: Captured | None = None

    def identity(self) -> tuple[Any, ...]:
        """What the digest was made from; equal identities mean equal digests."""
        metrics = None if self.metrics is None else self.metrics.identity()
        return (
            self.dir_key,
            tuple(self.names),
            self.events.mark,
            self.params.mark,
            None if metrics is None else tuple(metrics),
            None if self.summarized is None else tuple(self.summarized),
            None if self.git is None else (self.git.file, tuple(self.git.key or ())),
            None if self.data is None else tuple(self.data.key or ()),
        )

    def to_json(self) -> dict[str, Any]:
        """The digest as plain JSON; pending metric columns must have been saved."""
        return {
            "v": _VERSION,
            "dir": [*(self.dir_key or (0, 0)), self.listed_ns],
            "names": self.names,
            "events": self.events.to_json(),
            "params": self.params.to_json(),
            "metrics": None
            if self.metrics is None
            else [fold.to_json() for fold in self.metrics.files],
            "git": None if self.git is None else self.git.to_json(),
            "data": None if self.data is None else self.data.to_json(),
            "summarized": self.summarized,
        }

    @classmethod
    def from_json(cls, run_id: str, state: dict[str, Any]) -> RunDigest:
        """The digest saved by :meth:`to_json`.

        Raises:
            KeyError, TypeError, ValueError: not a digest this version saved.
        """
        if state.get("v") != _VERSION:
            raise ValueError("a digest of another version")
        digest = cls(run_id)
        ino, mtime, listed = state["dir"]
        digest.dir_key, digest.listed_ns = (int(ino), int(mtime)), int(listed)
        digest.names = [str(name) for name in state["names"]]
        digest.events = EventsFold.from_json(state["events"])
        digest.params = ParamsFold.from_json(state["params"])
        if state["metrics"] is not None:
            digest.metrics = MetricsPart([MetricsFold.from_json(f) for f in state["metrics"]])
        digest.git = Captured.from_json(state["git"])
        digest.data = Captured.from_json(state["data"])
        summarized = state.get("summarized")  # absent from states saved before summaries
        if summarized is not None:
            if len(summarized) != 3 or any(type(v) is not int for v in summarized):
                raise ValueError("not a file key")
            digest.summarized = [int(v) for v in summarized]
        return digest


def refresh(
    run_dir: Path,
    old: RunDigest | None,
    *,
    metrics: bool,
    captured: bool,
    clock_ns: int,
    history: bool = False,
) -> RunDigest | None:
    """The digest of a run brought up to date with its files; None when the run is gone.

    Args:
        run_dir: The run's directory.
        old: An earlier digest of the same run, or None; it is used up (its
            folds continue in the new digest).
        metrics: Also bring the metric summaries up to date (else they are
            kept as they were, marked not fresh): from the end event when it
            can be trusted and no metrics were folded before, else by folding
            the metrics files.
        captured: Also bring the run table's git and data columns up to date.
        clock_ns: The file system's current time, to judge whether the
            directory's modification time can be trusted.
        history: Fold the metrics files even when the end event would do (the
            history is wanted, and the query cache keeps it in columns).
    """
    try:
        status = run_dir.stat()
    except OSError:
        return None
    digest = RunDigest(run_dir.name)
    digest.dir_key = (status.st_ino, status.st_mtime_ns)
    if (
        old is not None
        and old.dir_key == digest.dir_key
        and status.st_mtime_ns < old.listed_ns - RACY_NS
    ):
        digest.names, digest.listed_ns = old.names, old.listed_ns
    else:
        digest.listed_ns, digest.names = clock_ns, _names(run_dir)
    _refresh_files(digest, run_dir, old if old is not None else RunDigest(run_dir.name))
    old_part = old.metrics if old is not None else None
    if old is not None and old.summarized is not None:
        metrics = True  # cheap to keep up to date: a stat, or the files if it no longer holds
    if metrics:
        trusted = None
        if old_part is None and not history:
            trusted = trusted_summary(run_dir, digest.names, digest.events)
        if trusted is not None:
            digest.summarized, digest.summary = trusted
        else:
            digest.metrics = MetricsPart.read(run_dir, digest.names, old_part)
        digest.metrics_fresh = True
    elif old is not None:
        digest.metrics = old_part
    if captured:
        digest.git = _git(run_dir, digest.names, old.git if old is not None else None)
        digest.data = _data(run_dir, digest.names, old.data if old is not None else None)
    elif old is not None:
        digest.git, digest.data = old.git, old.data
    return digest


def _refresh_files(digest: RunDigest, run_dir: Path, old: RunDigest) -> None:
    digest.events = _advance(old.events, EventsFold, run_dir, RUN_EVENTS, digest.names)
    digest.params = _advance(old.params, ParamsFold, run_dir, PARAMS, digest.names)


def _advance(fold: F | None, factory: type[F], run_dir: Path, name: str, names: Sequence[str]) -> F:
    if name in names:
        return advance(fold, factory, run_dir / name)
    if fold is not None and fold.mark is None and fold.error is None:
        return fold  # the listing is up to date: the file still does not exist
    return factory()


def _names(run_dir: Path) -> list[str]:
    try:
        with os.scandir(run_dir) as entries:
            return sorted(entry.name for entry in entries)
    except OSError:
        return []


def latest_name(names: Sequence[str], name: str) -> str:
    """The latest segment's version of a file written at start and at each resume.

    As :func:`runjournal.query._tolerant.latest_file`, from a listing.

    Example:
        >>> latest_name(["git.json", "git.2.json", "git.10.json", ".tmp-git.11.json"], "git.json")
        'git.10.json'
    """
    stem, _, suffix = name.rpartition(".")
    pattern = re.compile(rf"{re.escape(stem)}\.(\d+)\.{re.escape(suffix)}")
    best: tuple[int, str] | None = None
    for entry in names:
        match = pattern.fullmatch(entry)
        if match and (best is None or int(match.group(1)) > best[0]):
            best = (int(match.group(1)), entry)
    return best[1] if best else name


def _file_key(path: Path) -> list[int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return [status.st_ino, status.st_size, status.st_mtime_ns]


def _git(run_dir: Path, names: Sequence[str], old: Captured | None) -> Captured:
    name = latest_name(names, GIT)
    key = _file_key(run_dir / name) if name in names else None
    if old is not None and old.file == name and old.key == key:
        return old
    document, problems = read_json_object(run_dir / name)
    value = None
    if document is not None:
        state, more = parse_git(document, name)
        problems += more
        if state is not None:
            value = [state.commit, state.branch, state.dirty]
    return Captured(name, key, value, [[p.file, p.line, p.reason] for p in problems])


def _data(run_dir: Path, names: Sequence[str], old: Captured | None) -> Captured:
    if DATA not in names:
        return Captured(DATA, None, {}, [])  # as a read of the missing file gives
    key = _file_key(run_dir / DATA)
    if old is not None and old.key == key:
        return old
    records, skipped = read_data(run_dir)
    hashes = {name: record.hash for name, record in latest_by_name(records).items()}
    return Captured(DATA, key, hashes, [[p.file, p.line, p.reason] for p in skipped])
