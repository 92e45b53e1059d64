"""Installed distributions and their versions, from ``importlib.metadata`` (no pip call).

Read once per process and cached. Only the header of each ``METADATA`` file is
parsed (name and version come first), which is several times faster than
``email``-parsing the whole file; a distribution whose metadata is missing or
broken is skipped and named in a note, never fatal.

Example:
    >>> from runjournal.capture._packages import installed
    >>> packages, notes = installed()
    >>> "runjournal" in packages
    True
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib import metadata

__all__ = ["clear_cache", "installed"]

_NORMALIZE = re.compile(r"[-_.]+")


def installed() -> tuple[dict[str, str], list[str]]:
    """Every installed distribution, name to version, and a note per skipped entry.

    A name found twice on ``sys.path`` keeps its first version (the one
    imports see). Names are sorted case-insensitively.

    Example:
        >>> packages, _ = installed()
        >>> list(packages) == sorted(packages, key=str.lower)
        True
    """
    packages, notes = _installed()
    return dict(packages), list(notes)


def clear_cache() -> None:
    """Forget the cached list (for tests that install something).

    Example:
        >>> clear_cache()
    """
    _installed.cache_clear()


@functools.cache
def _installed() -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    # Imported here, in the capture's thread: it costs ~15 ms, overlapped with git's calls.
    from importlib import metadata

    found: dict[str, tuple[str, str]] = {}
    notes: list[str] = []
    for distribution in metadata.distributions():
        try:
            name, version = _name_version(distribution)
        except Exception as error:  # one broken entry must not lose the others
            notes.append(f"skipped {_where(distribution)}: {type(error).__name__}: {error}")
            continue
        if not name or not version:
            notes.append(f"skipped {_where(distribution)}: no Name or Version in its metadata")
            continue
        found.setdefault(_NORMALIZE.sub("-", name).lower(), (name, version))
    packages = sorted(found.values(), key=lambda item: (item[0].lower(), item[0]))
    return tuple(packages), tuple(notes)


def _name_version(distribution: metadata.Distribution) -> tuple[str | None, str | None]:
    text = distribution.read_text("METADATA") or distribution.read_text("PKG-INFO")
    name = version = None
    if text:
        for line in text.partition("\n\n")[0].splitlines():
            if line.startswith("Name:"):
                name = line[5:].strip()
            elif line.startswith("Version:"):
                version = line[8:].strip()
    if not (name and version):  # an unusual layout: let importlib parse it
        fields: Any = distribution.metadata
        name, version = name or fields["Name"], version or fields["Version"]
    return name, version


def _where(distribution: metadata.Distribution) -> str:
    return str(getattr(distribution, "_path", None) or "a distribution")
