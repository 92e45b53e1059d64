"""The modes of what runjournal creates in a store: the process umask, or ``RUNJOURNAL_UMASK``.

By default every file and directory is created with mode ``0o666``/``0o777``
masked by the process umask, as any program creates files. A store shared by
a group on a cluster needs group-writable directories whatever the umask of
the jobs writing to it: ``RUNJOURNAL_UMASK=002`` makes every file and
directory the store *creates* ``0o664``/``0o775`` (``007`` keeps others out:
``0o660``/``0o770``). It never changes the mode of something that exists, and
keeps the set-group-id bit a directory inherits from a setgid parent, so the
usual recipe for shared directories (``chgrp team store; chmod g+s store``)
keeps working.

Example:
    >>> parse_umask("002")
    2
    >>> oct(0o666 & ~parse_umask("0o027"))
    '0o640'
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from runjournal import _env
from runjournal.errors import InvalidArgumentError

__all__ = ["apply_file_mode", "lock_mode", "make_dir", "open_file", "parse_umask", "store_umask"]

FILE_MODE = 0o666
DIR_MODE = 0o777


def parse_umask(text: str) -> int:
    """The umask an octal string such as ``002``, ``0o027`` or ``7`` names.

    Raises:
        InvalidArgumentError: ``text`` is not an octal number from 0 to 777.
    """
    digits = text.strip().lower().removeprefix("0o")
    try:
        value = int(digits, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        raise InvalidArgumentError(
            f"{_env.UMASK}={text!r} is not valid; give an octal umask such as 002 (group-shared)"
            " or 022",
            argument=_env.UMASK,
            value=text,
        )
    return value


def store_umask() -> int | None:
    """The umask ``RUNJOURNAL_UMASK`` asks for, or None to use the process umask.

    Raises:
        InvalidArgumentError: the variable is set to something that is not a umask.
    """
    text = _env.text(_env.UMASK)
    return None if text is None else parse_umask(text)


def _quiet_umask() -> int | None:
    """:func:`store_umask` for the write path, which must never raise (checked at start)."""
    try:
        return store_umask()
    except InvalidArgumentError:
        return None


def open_file(path: Path, flags: int) -> int:
    """``os.open(path, flags | O_CREAT)``; a file this call creates gets the store's mode.

    With ``RUNJOURNAL_UMASK`` set the file is created exclusively first, so
    that only a file this process created has its mode set.
    """
    umask = _quiet_umask()
    if umask is None:
        return os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return os.open(path, flags | os.O_CREAT, FILE_MODE)
    with contextlib.suppress(OSError):  # a file system without modes: keep what it gave
        os.fchmod(fd, FILE_MODE & ~umask)
    return fd


def lock_mode() -> int | None:
    """The mode for a ``filelock.FileLock`` file in the store, if ``RUNJOURNAL_UMASK`` asks one."""
    umask = _quiet_umask()
    return None if umask is None else FILE_MODE & ~umask


def apply_file_mode(path: Path) -> None:
    """Give a file just created (under a temporary name) the store's mode, if one is asked for."""
    umask = _quiet_umask()
    if umask is not None:
        with contextlib.suppress(OSError):
            path.chmod(FILE_MODE & ~umask)


def make_dir(path: Path, *, parents: bool = False, exist_ok: bool = False) -> bool:
    """Create a directory with the store's mode; returns whether this call created it.

    Raises:
        FileExistsError: it exists and ``exist_ok`` is false.
        OSError: it cannot be created.
    """
    if parents and not path.parent.is_dir():
        make_dir(path.parent, parents=True, exist_ok=True)  # each one created gets the mode
    try:
        path.mkdir()
    except FileExistsError:
        if not exist_ok or not path.is_dir():
            raise
        return False
    umask = _quiet_umask()
    if umask is not None:
        with contextlib.suppress(OSError):
            inherited = stat.S_IMODE(path.stat().st_mode) & stat.S_ISGID
            path.chmod(inherited | (DIR_MODE & ~umask))
    return True
