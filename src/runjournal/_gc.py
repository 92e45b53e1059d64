"""Garbage collection of blobs: remove the content no run refers to.

A blob is referenced when its name (its hex digest) appears anywhere in an
``artifacts*.jsonl`` file of any run, damaged lines included: a blob is never
removed because a line naming it could not be parsed. Blobs changed within
the grace period (an hour by default) are kept: a run may be about to append
the line that names it (storing content again refreshes an existing blob's
mtime). ``.tmp-`` files older than the grace period were left by a process
that died while copying and are removed; younger ones are being written.

Example:
    >>> from pathlib import Path
    >>> from runjournal.store import init_store
    >>> report = collect_garbage(init_store(Path("gc-store").absolute()))
    >>> report.files, report.bytes, report.deleted
    ([], 0, False)
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from runjournal._blobs import TEMP_DIR
from runjournal.errors import StoreError
from runjournal.format import BLOBS_DIR, RUNS_DIR, TEMP_PREFIX

__all__ = ["GRACE_SECONDS", "GcReport", "collect_garbage", "referenced_hashes"]

GRACE_SECONDS = 3600.0
_HEX_TOKEN = re.compile(rb"[0-9a-f]{8,128}")


@dataclass
class GcReport:
    """What ``gc`` found (and removed, when ``deleted``).

    Attributes:
        files: ``(path relative to the store, bytes)`` of each orphan blob and
            left-over temporary file.
        bytes: Their total size.
        kept_recent: Unreferenced blobs kept because they changed within the grace period.
        referenced: Blobs kept because a run refers to them.
        deleted: Whether the files were removed (False for a dry run).
    """

    files: list[tuple[str, int]] = field(default_factory=list)
    bytes: int = 0
    kept_recent: int = 0
    referenced: int = 0
    deleted: bool = False


def referenced_hashes(root: Path) -> set[str]:
    """Every hex token in every run's ``artifacts*.jsonl``: the blob names that are in use.

    Raises:
        StoreError: the runs directory or an artifacts file cannot be read
            (collecting then could remove a blob in use).
    """
    names: set[str] = set()
    runs = root / RUNS_DIR
    try:
        run_dirs = list(os.scandir(runs)) if runs.exists() else []
        for run_dir in run_dirs:
            if not run_dir.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(run_dir.path):
                if entry.name.startswith("artifacts") and entry.name.endswith(".jsonl"):
                    data = Path(entry.path).read_bytes()
                    names.update(token.decode() for token in _HEX_TOKEN.findall(data))
    except OSError as error:
        raise StoreError(
            f"cannot read every run's artifacts ({error}); nothing was collected", path=root
        ) from error
    return names


def collect_garbage(
    root: Path, *, delete: bool = False, grace: float = GRACE_SECONDS, now: float | None = None
) -> GcReport:
    """Find (and with ``delete``, remove) the blobs no run refers to and stale temporary files.

    Args:
        root: The store root.
        delete: Remove them; by default only report them (a dry run).
        grace: Seconds during which a new blob or temporary file is left alone.
        now: The current time (for tests).
    """
    now = time.time() if now is None else now
    used = referenced_hashes(root)
    report = GcReport(deleted=delete)
    for path, st in _blob_files(root):
        is_temp = path.name.startswith(TEMP_PREFIX)
        if not is_temp and path.name in used:
            report.referenced += 1
            continue
        if now - st.st_mtime < grace:
            report.kept_recent += 0 if is_temp else 1
            continue
        if delete and not _remove(path, grace):
            continue
        report.files.append((path.relative_to(root).as_posix(), st.st_size))
        report.bytes += st.st_size
    return report


def _blob_files(root: Path) -> list[tuple[Path, os.stat_result]]:
    """Every blob and temporary file under ``blobs/``, sorted, with its stat."""
    found: list[tuple[Path, os.stat_result]] = []
    blobs = root / BLOBS_DIR
    for algo_dir in _dirs(blobs):
        for shard in _dirs(algo_dir):
            for entry in _entries(shard):
                temp = shard.name == TEMP_DIR
                if temp != entry.name.startswith(TEMP_PREFIX) or not entry.is_file(
                    follow_symlinks=False
                ):
                    continue
                with contextlib.suppress(OSError):
                    found.append((Path(entry.path), entry.stat(follow_symlinks=False)))
    return sorted(found, key=lambda item: item[0])


def _remove(path: Path, grace: float) -> bool:
    """Remove a file unless it changed meanwhile (a run stored the same content again)."""
    try:
        if time.time() - path.stat().st_mtime < grace:
            return False
        path.unlink()
    except FileNotFoundError:  # removed by another gc meanwhile
        return False
    return True


def _dirs(directory: Path) -> list[Path]:
    return [
        Path(entry.path) for entry in _entries(directory) if entry.is_dir(follow_symlinks=False)
    ]


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        return sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        return []
