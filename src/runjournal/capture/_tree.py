"""Listing the files of a directory tree for hashing, with their stats.

Decisions (normative in ``docs/format.md``, section ``data.jsonl``):

- Symbolic links are followed: a link to a file counts as that file's content
  under the link's own path, a link to a directory is descended into. A link
  that points to one of its own ancestors (a loop) or to nothing (dangling) is
  an error naming it, since skipping it would give a hash of less than the data.
- Only regular files are listed; empty directories add nothing, as in git.
  FIFOs, sockets and devices are errors (reading a FIFO would block).
- Paths are relative to the root, ``/``-separated, and kept as the file
  system's raw bytes (no Unicode normalisation).
- The store, when it lies inside the tree, is left out: it changes while the
  data is being logged.

Example:
    >>> import pathlib
    >>> _ = pathlib.Path("tree/sub").mkdir(parents=True)
    >>> _ = pathlib.Path("tree/sub/a.txt").write_text("a")
    >>> [entry.relative for entry in walk_files(os.path.abspath("tree"))]
    [b'sub/a.txt']
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

from runjournal.capture._hashing import FileStat
from runjournal.errors import DataError

__all__ = ["FileEntry", "walk_files"]


class FileEntry(NamedTuple):
    """A regular file found under a root.

    Attributes:
        relative: Its path from the root, ``/``-separated, as raw bytes.
        path: Its absolute path, through any links as walked.
        stat: Its size, mtime, ctime and inode (of the link's target).
    """

    relative: bytes
    path: str
    stat: FileStat


def walk_files(root: str, *, exclude: tuple[int, int] | None = None) -> list[FileEntry]:
    """Every regular file under ``root`` (an absolute path), in no particular order.

    Args:
        root: The directory to list.
        exclude: The ``(st_dev, st_ino)`` of a directory to leave out (the store).

    Raises:
        DataError: a directory cannot be listed, a file cannot be stat'ed, or a
            link is dangling or loops.
    """
    root_stat = _stat(root)
    files: list[FileEntry] = []
    pending = [(root, b"", frozenset({(root_stat.st_dev, root_stat.st_ino)}))]
    while pending:
        directory, prefix, ancestors = pending.pop()
        for entry in _scan(directory):
            st = _entry_stat(entry)
            relative = prefix + os.fsencode(entry.name)
            if stat.S_ISREG(st.st_mode):
                files.append(FileEntry(relative, entry.path, FileStat.of(st)))
            elif stat.S_ISDIR(st.st_mode):
                identity = (st.st_dev, st.st_ino)
                if identity in ancestors:
                    raise DataError(
                        f"{entry.path} is a symbolic link to one of its own parent"
                        " directories (a loop)",
                        path=entry.path,
                    )
                if identity != exclude:
                    pending.append((entry.path, relative + b"/", ancestors | {identity}))
            else:
                raise DataError(
                    f"{entry.path} is not a regular file or a directory (a FIFO, socket"
                    " or device), so it cannot be hashed",
                    path=entry.path,
                )
    return files


def _stat(path: str) -> os.stat_result:
    try:
        return Path(path).stat()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}", path=path) from error


def _scan(directory: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError as error:
        raise DataError(
            f"cannot list {directory}: {error.strerror or error}", path=directory
        ) from error


def _entry_stat(entry: os.DirEntry[str]) -> os.stat_result:
    try:
        return entry.stat()  # follows symbolic links
    except FileNotFoundError as error:
        if entry.is_symlink():
            target = _readlink(entry.path)
            raise DataError(
                f"{entry.path} is a dangling symbolic link (to {target})", path=entry.path
            ) from error
        raise DataError(
            f"{entry.path} disappeared while the directory was listed", path=entry.path
        ) from error
    except OSError as error:
        raise DataError(
            f"cannot read {entry.path}: {error.strerror or error}", path=entry.path
        ) from error


def _readlink(path: str) -> str:
    try:
        return str(Path(path).readlink())
    except OSError:
        return "?"
