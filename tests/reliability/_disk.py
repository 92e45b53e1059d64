"""Looking at a store on disk the way an auditor would: every file, every line, and its neighbours.

These helpers never use runjournal's reader, so that a bug in the reader
cannot hide damage from the tests that use them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import orjson


@dataclass
class DiskAudit:
    """What is on disk under a store, file by file.

    Attributes:
        lines: Complete JSON lines that decode to an object.
        torn: ``(file, line number)`` of incomplete last lines (no newline at the end).
        bad: ``(file, line number, why)`` of complete lines that are not JSON objects,
            and of torn lines that are not the last line.
        half_written: Files under a final name that must be whole but are not
            (a ``.json`` that does not parse).
        temp_files: Files whose name starts with ``.tmp-`` (never read).
    """

    lines: int = 0
    torn: list[tuple[str, int]] = field(default_factory=list)
    bad: list[tuple[str, int, str]] = field(default_factory=list)
    half_written: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)


def audit_store(root: Path) -> DiskAudit:
    """Read every file under ``root`` (skipping ``quarantine/`` and ``.cache/``)."""
    audit = DiskAudit()
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if d not in ("quarantine", ".cache")]
        for name in files:
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            if name.startswith(".tmp-"):
                audit.temp_files.append(relative)
            elif name.endswith(".jsonl"):
                _audit_jsonl(path, relative, audit)
            elif name.endswith(".json"):
                try:
                    orjson.loads(path.read_bytes())
                except orjson.JSONDecodeError:
                    audit.half_written.append(relative)
    return audit


def _audit_jsonl(path: Path, relative: str, audit: DiskAudit) -> None:
    data = path.read_bytes()
    pieces = data.split(b"\n")
    for number, piece in enumerate(pieces, start=1):
        last = number == len(pieces)
        if last and not piece:
            break  # the file ends with a newline
        if last:
            audit.torn.append((relative, number))
            continue
        if not piece.strip():
            continue
        try:
            record = orjson.loads(piece)
        except orjson.JSONDecodeError:
            audit.bad.append((relative, number, f"not JSON: {piece[:60]!r}"))
            continue
        if isinstance(record, dict):
            audit.lines += 1
        else:
            audit.bad.append((relative, number, "not an object"))


def snapshot(directory: Path, *, exclude: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``directory`` (outside ``exclude``): size and mode.

    Compare two snapshots to prove nothing was written outside a store.
    """
    found: dict[str, tuple[int, int]] = {}
    excluded = {path.resolve() for path in exclude}
    for current, subdirectories, files in os.walk(directory):
        here = Path(current)
        subdirectories[:] = [d for d in subdirectories if (here / d).resolve() not in excluded]
        for name in [*subdirectories, *files]:
            path = here / name
            if path.resolve() in excluded:
                continue
            status = path.lstat()
            found[path.relative_to(directory).as_posix()] = (status.st_size, status.st_mode)
    return found


def changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """The paths added, removed or changed between two snapshots."""
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )
