"""Find damage in a store, and move it aside without ever losing a valid record.

:func:`check_store` reads every file of a store and reports what a crash, a
full disk or a faulty copy can leave behind: torn last lines, lines that are
not JSON objects (garbage, NUL bytes), write-once JSON files that do not
parse, run directories without a start event, runs or stores of a newer
format, leftover ``.tmp-`` files, and content that does not match its
recorded hash (``git.patch``; blobs once artifacts exist). It only reads.

:func:`fix_store` moves the damaged bits aside into
``<store>/quarantine/<time>/``, under their original relative paths: a
damaged JSON-lines file is rewritten without its damaged lines (to a
temporary file, then renamed over the original: the one exception to
append-only, see ``docs/format.md``), and the removed lines are kept in the
quarantine copy; a damaged write-once file or an old temporary file is moved
there whole. A valid line is never removed, and nothing of a run that may
still be written to (``running`` or ``stale``) or of a newer format is
touched. Hash mismatches and runs without a start are only reported.

Example:
    >>> from pathlib import Path
    >>> import runjournal
    >>> with runjournal.start(store="doctor-demo") as run:
    ...     run.log({"loss": 0.5})
    >>> with open(run.dir / "metrics.jsonl", "ab") as file:
    ...     _ = file.write(b'{"step": 1, "m": {"lo')  # a crash tore this line
    >>> report = check_store("doctor-demo")
    >>> [(p.kind, p.path, p.line) for p in report.problems]  # doctest: +ELLIPSIS
    [('torn_line', 'runs/.../metrics.jsonl', 2)]
    >>> fixed = fix_store("doctor-demo")
    >>> fixed.removed_lines, check_store("doctor-demo").ok
    (1, True)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import stat
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from runjournal._permissions import make_dir
from runjournal.format import (
    BLOBS_DIR,
    FORMAT_VERSION,
    JSONL_SUFFIX,
    RUN_ID_PATTERN,
    RUNS_DIR,
    STORE_MARKER,
    TEMP_PREFIX,
    Status,
    read_file,
)
from runjournal.query._reader import load_run
from runjournal.store import find_store, open_store
from runjournal.typing import PathLike

__all__ = [
    "QUARANTINE_DIR",
    "DoctorReport",
    "FixReport",
    "Kind",
    "Problem",
    "check_store",
    "fix_store",
]

QUARANTINE_DIR = "quarantine"
"""Where :func:`fix_store` moves damaged bits, inside the store."""

_MAYBE_LIVE = frozenset({Status.RUNNING, Status.STALE})
_DEFAULT_TEMP_AGE = 3600.0


class Kind:
    """The kinds of :class:`Problem`."""

    TORN_LINE = "torn_line"
    BAD_LINE = "bad_line"
    BAD_FILE = "bad_file"
    UNREADABLE = "unreadable"
    NO_START = "no_start"
    NEWER_FORMAT = "newer_format"
    TEMP_FILE = "temp_file"
    HASH_MISMATCH = "hash_mismatch"
    ORPHAN_BLOB = "orphan_blob"


@dataclass(frozen=True)
class Problem:
    """One problem found in a store.

    Example:
        >>> print(Problem(Kind.TORN_LINE, "runs/r1/metrics.jsonl", 9, "incomplete last line", True))
        runs/r1/metrics.jsonl:9: torn_line: incomplete last line

    Attributes:
        kind: One of the :class:`Kind` values.
        path: The file or directory, relative to the store, with ``/``.
        line: The 1-based line number, for a line; 0 otherwise.
        message: What is wrong, for people.
        fixable: Whether :func:`fix_store` would move it aside.
    """

    kind: str
    path: str
    line: int
    message: str
    fixable: bool

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class DoctorReport:
    """What :func:`check_store` found.

    Attributes:
        store: The store directory.
        problems: Every problem, in path order.
        runs: How many run directories were checked.
        files: How many files were read.
        lines: How many lines of JSON-lines files were read.
    """

    store: Path
    problems: list[Problem] = field(default_factory=list)
    runs: int = 0
    files: int = 0
    lines: int = 0

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    @property
    def fixable(self) -> list[Problem]:
        """The problems :func:`fix_store` would move aside."""
        return [problem for problem in self.problems if problem.fixable]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        return {
            "store": str(self.store),
            "ok": self.ok,
            "runs": self.runs,
            "files": self.files,
            "lines": self.lines,
            "problems": [vars(problem) for problem in self.problems],
        }


@dataclass
class FixReport:
    """What :func:`fix_store` did.

    Attributes:
        quarantine: The quarantine directory of this fix (None when nothing was moved).
        moved: The problems moved aside.
        removed_lines: Lines taken out of JSON-lines files (and kept in the quarantine).
        kept_lines: Lines of the rewritten files that were kept, in order.
        skipped: Fixable problems left alone because their file changed during the fix.
        after: The store as checked after the fix.
    """

    quarantine: Path | None
    moved: list[Problem]
    removed_lines: int
    kept_lines: int
    skipped: list[Problem]
    after: DoctorReport

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        return {
            "quarantine": str(self.quarantine) if self.quarantine else None,
            "moved": [vars(problem) for problem in self.moved],
            "removed_lines": self.removed_lines,
            "kept_lines": self.kept_lines,
            "skipped": [vars(problem) for problem in self.skipped],
            "after": self.after.to_dict(),
        }


# -- checking -----------------------------------------------------------------------------


def check_store(
    path: PathLike | None = None, *, temp_age: float = _DEFAULT_TEMP_AGE
) -> DoctorReport:
    """Read a whole store and report every problem in it; changes nothing.

    Args:
        path: The store (default: as :class:`runjournal.Store` finds it).
        temp_age: Seconds after which a ``.tmp-`` file counts as left over
            (and fixable); younger ones may be being written right now.

    Raises:
        StoreError: there is no store at ``path``.

    Example:
        >>> import runjournal
        >>> runjournal.start(store="checked").end()
        >>> report = check_store("checked")
        >>> report.ok, report.runs, report.problems
        (True, 1, [])
    """
    root = find_store(path)
    if not (root / STORE_MARKER).exists():
        open_store(root)  # raises the error that says what is there instead
    report = _Scan(root, temp_age, time.time())
    report.scan()
    report.problems.sort(key=lambda problem: (problem.path, problem.line, problem.kind))
    return report.result()


class _Scan:
    def __init__(self, root: Path, temp_age: float, now: float) -> None:
        self.root = root
        self.temp_age = temp_age
        self.now = now
        self.problems: list[Problem] = []
        self.runs = self.files = self.lines = 0
        self.blob_refs: set[str] = set()

    def result(self) -> DoctorReport:
        return DoctorReport(self.root, self.problems, self.runs, self.files, self.lines)

    def add(self, kind: str, relative: str, message: str, *, line: int = 0, fix: bool) -> None:
        self.problems.append(Problem(kind, relative, line, message, fix))

    def scan(self) -> None:
        if not self._marker_ok():
            return
        self._temp_files(self.root)
        runs = self.root / RUNS_DIR
        for entry in _entries(runs):
            if entry.name.startswith(TEMP_PREFIX):
                self._temp_file(entry)
            elif RUN_ID_PATTERN.fullmatch(entry.name) and entry.is_dir():
                self._run(entry)
        self._blobs()

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _marker_ok(self) -> bool:
        marker = self.root / STORE_MARKER
        try:
            content = orjson.loads(read_file(marker))
            self.files += 1
        except (OSError, orjson.JSONDecodeError) as error:
            self.add(
                Kind.BAD_FILE, STORE_MARKER, f"the store marker cannot be read: {error}", fix=False
            )
            return False
        found = content.get("format") if isinstance(content, dict) else None
        if isinstance(found, int) and found > FORMAT_VERSION:
            message = (
                f"the store has format {found}, newer than {FORMAT_VERSION}: upgrade runjournal"
            )
            self.add(Kind.NEWER_FORMAT, STORE_MARKER, message, fix=False)
            return False
        return True

    def _temp_files(self, directory: Path) -> None:
        for entry in _entries(directory):
            if entry.name.startswith(TEMP_PREFIX):
                self._temp_file(entry)

    def _temp_file(self, path: Path) -> None:
        try:
            age = self.now - path.lstat().st_mtime
        except OSError:
            return  # renamed into place meanwhile
        old = age >= self.temp_age
        state = "left over by a process that died while writing" if old else "being written?"
        self.add(Kind.TEMP_FILE, self._relative(path), f"temporary file ({state})", fix=old)

    def _run(self, run_dir: Path) -> None:
        self.runs += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the problems are reported here, one by one
            record = load_run(run_dir, self.now)
        relative = self._relative(run_dir)
        newer = record.format is not None and record.format > FORMAT_VERSION
        live = record.status in _MAYBE_LIVE
        fix = not newer and not live
        if newer:
            message = f"run of format {record.format}, newer than {FORMAT_VERSION}: left alone"
            self.add(Kind.NEWER_FORMAT, relative, message, fix=False)
        if any(skipped.reason == "no start event" for skipped in record.skipped):
            message = "no start event: the run died while starting (or is starting now)"
            self.add(Kind.NO_START, relative, message, fix=False)
        for entry in _entries(run_dir):
            self._run_file(entry, fix=fix, live=live)
        self._git_patch(run_dir)

    def _run_file(self, path: Path, *, fix: bool, live: bool) -> None:
        name = path.name
        if name.startswith(TEMP_PREFIX):
            self._temp_file(path)
            return
        if not (name.endswith(JSONL_SUFFIX) or name.endswith(".json")):
            return
        relative = self._relative(path)
        try:
            mode = path.lstat().st_mode
        except OSError:
            return
        if not stat.S_ISREG(mode) and not stat.S_ISLNK(mode):
            self.add(Kind.UNREADABLE, relative, "not a regular file; readers skip it", fix=False)
            return
        try:
            if name.endswith(JSONL_SUFFIX):
                self._jsonl(path, relative, fix=fix, live=live)
            else:
                self._json(path, relative, fix=fix)
        except OSError as error:
            self.add(Kind.UNREADABLE, relative, f"cannot be read: {error}", fix=False)

    def _jsonl(self, path: Path, relative: str, *, fix: bool, live: bool) -> None:
        self.files += 1
        for number, line, reason in _classified_lines(path):
            self.lines += 1
            if reason is None:
                self._note_blob_refs(path.name, line)
            elif reason == _TORN:
                message = "incomplete last line" + (" (being written?)" if live else "")
                self.add(Kind.TORN_LINE, relative, message, line=number, fix=fix)
            else:
                self.add(Kind.BAD_LINE, relative, reason, line=number, fix=fix)

    def _json(self, path: Path, relative: str, *, fix: bool) -> None:
        self.files += 1
        try:
            orjson.loads(read_file(path))
        except orjson.JSONDecodeError as error:
            message = f"a write-once file that is not valid JSON: {error}"
            self.add(Kind.BAD_FILE, relative, message, fix=fix)

    def _git_patch(self, run_dir: Path) -> None:
        """``git.patch`` against the size and sha256 that ``git.json`` recorded for it."""
        try:
            info = orjson.loads(read_file(run_dir / "git.json"))
        except (OSError, orjson.JSONDecodeError):
            return
        patch = info.get("patch") if isinstance(info, dict) else None
        if not isinstance(patch, dict) or patch.get("truncated") or not patch.get("sha256"):
            return
        name = patch.get("file")
        target = run_dir / Path(name if isinstance(name, str) else "git.patch").name
        try:
            digest = hashlib.sha256(read_file(target)).hexdigest()
        except OSError:
            digest = "missing"
        if digest != patch["sha256"]:
            message = f"sha256 {digest} differs from {patch['sha256']} recorded in git.json"
            self.add(Kind.HASH_MISMATCH, self._relative(target), message, fix=False)

    def _note_blob_refs(self, file_name: str, line: bytes) -> None:
        if file_name.startswith("artifacts"):
            record = orjson.loads(line)
            for key in ("hash", "sha256", "blob"):
                if isinstance(record.get(key), str):
                    self.blob_refs.add(Path(record[key]).name)
            for entry in record.get("files") or []:  # the files of a directory artifact
                if isinstance(entry, dict) and isinstance(entry.get("hash"), str):
                    self.blob_refs.add(entry["hash"])

    def _blobs(self) -> None:
        """Every blob's content against its name, and blobs no artifact record names."""
        blobs = self.root / BLOBS_DIR
        for algo_dir in _entries(blobs):
            for shard in _entries(algo_dir):
                for blob in _entries(shard):
                    if blob.name.startswith(TEMP_PREFIX):
                        self._temp_file(blob)
                    elif blob.is_file():
                        self._blob(algo_dir.name, blob)

    def _blob(self, algo: str, blob: Path) -> None:
        self.files += 1
        relative = self._relative(blob)
        try:
            digest = hashlib.new(algo)
        except ValueError:
            return
        with blob.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != blob.name:
            message = f"content hash {digest.hexdigest()} differs from the blob's name"
            self.add(Kind.HASH_MISMATCH, relative, message, fix=False)
        elif blob.name not in self.blob_refs:
            message = "no artifact record refers to it (`runjournal gc` removes such blobs)"
            self.add(Kind.ORPHAN_BLOB, relative, message, fix=False)


_TORN = "incomplete last line"


def _classified_lines(path: Path) -> Iterator[tuple[int, bytes, str | None]]:
    """Each non-blank line of a JSON-lines file with why it is damaged (None if it is not).

    Read as a stream, so a file of any size takes little memory; only regular
    files are opened, without blocking.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                yield number, line, _TORN
            elif line.strip():
                yield number, line, _damage(line)


def _damage(line: bytes) -> str | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not valid JSON"
    return None if isinstance(record, dict) else "not a JSON object"


def _entries(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except OSError:
        return []


# -- fixing -------------------------------------------------------------------------------


def fix_store(path: PathLike | None = None, *, temp_age: float = _DEFAULT_TEMP_AGE) -> FixReport:
    r"""Move every fixable problem of a store aside into its quarantine; never drop a valid line.

    A JSON-lines file with damaged lines is rewritten with its valid lines in
    their order (to a temporary file, fsynced, then renamed over the
    original, keeping its mode); the damaged lines go, each ending in a
    newline, to the same relative path under ``quarantine/<time>/``, and
    ``manifest.json`` there lists what was moved and why. A damaged write-once
    file or an old temporary file is moved there whole. A file that changes
    while it is being fixed is left as it was.

    Args:
        path: The store (default: as :class:`runjournal.Store` finds it).
        temp_age: Seconds after which a ``.tmp-`` file is moved aside.

    Raises:
        StoreError: there is no store at ``path``.

    Example:
        >>> import runjournal
        >>> run = runjournal.start(store="repaired")
        >>> run.end()
        >>> with open(run.dir / "run.jsonl", "ab") as file:
        ...     _ = file.write(b"\x00\x00\x00\n")  # what a power loss can leave
        >>> fixed = fix_store("repaired")
        >>> fixed.removed_lines, fixed.after.ok, fixed.quarantine.parent.name
        (1, True, 'quarantine')
    """
    report = check_store(path, temp_age=temp_age)
    fixer = _Fixer(report.store)
    by_path: dict[str, list[Problem]] = {}
    for problem in report.fixable:
        by_path.setdefault(problem.path, []).append(problem)
    for relative, problems in by_path.items():
        fixer.fix(relative, problems)
    fixer.write_manifest()
    return FixReport(
        quarantine=fixer.quarantine,
        moved=fixer.moved,
        removed_lines=fixer.removed_lines,
        kept_lines=fixer.kept_lines,
        skipped=fixer.skipped,
        after=check_store(report.store, temp_age=temp_age),
    )


class _Fixer:
    def __init__(self, root: Path) -> None:
        self.root = root
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        self._target = root / QUARANTINE_DIR / f"{stamp}-{os.urandom(2).hex()}"
        self.quarantine: Path | None = None
        self.moved: list[Problem] = []
        self.skipped: list[Problem] = []
        self.removed_lines = 0
        self.kept_lines = 0
        self._manifest: list[dict[str, Any]] = []

    def _quarantined(self, relative: str) -> Path:
        """The quarantine path of ``relative``, its directories created."""
        destination = self._target / relative
        for directory in reversed(destination.parents):
            if self.root in directory.parents:
                make_dir(directory, exist_ok=True)
        self.quarantine = self._target
        return destination

    def fix(self, relative: str, problems: list[Problem]) -> None:
        source = self.root / relative
        try:
            if problems[0].kind in (Kind.TORN_LINE, Kind.BAD_LINE):
                done = self._rewrite(source, relative)
            else:
                done = self._move(source, relative)
        except OSError:
            done = False  # reported again by the check after the fix
        (self.moved if done else self.skipped).extend(problems)
        if done:
            self._manifest.append(
                {"path": relative, "problems": [vars(problem) for problem in problems]}
            )

    def _move(self, source: Path, relative: str) -> bool:
        try:
            source.replace(self._quarantined(relative))
        except FileNotFoundError:
            return False
        return True

    def _rewrite(self, source: Path, relative: str) -> bool:
        """Rewrite ``source`` without its damaged lines, which go to the quarantine."""
        before = source.stat()
        temp = source.with_name(f"{TEMP_PREFIX}{source.name}.{os.getpid()}.{os.urandom(4).hex()}")
        removed: list[bytes] = []
        kept = 0
        try:
            with temp.open("xb") as out:
                for _, line, reason in _classified_lines_with_blanks(source):
                    if reason is None:
                        out.write(line)
                        kept += 1
                    else:
                        removed.append(line if line.endswith(b"\n") else line + b"\n")
                out.flush()
                _copy_owner_and_mode(before, out.fileno())
                os.fsync(out.fileno())
            after = source.stat()
            if (after.st_ino, after.st_size, after.st_mtime_ns) != (
                before.st_ino,
                before.st_size,
                before.st_mtime_ns,
            ):
                return False  # someone wrote to it meanwhile: leave it for the next check
            quarantined = self._quarantined(relative)
            with quarantined.open("ab") as copy:
                copy.write(b"".join(removed))
                copy.flush()
                os.fsync(copy.fileno())
            temp.replace(source)
            _fsync_directory(source.parent)
        finally:
            temp.unlink(missing_ok=True)
        self.removed_lines += len(removed)
        self.kept_lines += kept
        return True

    def write_manifest(self) -> None:
        if self.quarantine is None:
            return
        manifest = {
            "fixed_at": dt.datetime.now(dt.UTC).isoformat(),
            "store_format": FORMAT_VERSION,
            "moved": self._manifest,
        }
        (self.quarantine / "manifest.json").write_bytes(
            orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
        )


def _classified_lines_with_blanks(path: Path) -> Iterator[tuple[int, bytes, str | None]]:
    """Every line of a file, blank ones included (kept as they are), with its damage."""
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                yield number, line, _TORN
            else:
                yield number, line, _damage(line) if line.strip() else None


def _copy_owner_and_mode(original: os.stat_result, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.fchown(fd, original.st_uid, original.st_gid)
    with contextlib.suppress(OSError):
        os.fchmod(fd, stat.S_IMODE(original.st_mode))


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
