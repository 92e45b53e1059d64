"""Installed distributions and their versions, as ``importlib.metadata`` finds them (no pip call).

Read once per process and cached. Only the header of each ``METADATA`` file is
parsed (name and version come first), which is several times faster than
``email``-parsing the whole file; a distribution whose metadata is missing or
broken is skipped and named in a note, never fatal.

When the only distribution finder is the standard one (the usual case), the
``*.dist-info`` and ``*.egg-info`` directories of ``sys.path`` are listed
directly, in the order and with the grouping that
``importlib.metadata.distributions()`` uses, so that importing
``importlib.metadata`` (about 15 ms, more than the listing) is not needed;
anything else (another finder, a zip or ``.egg`` on ``sys.path``, a metadata
file of an unusual layout) is left to ``importlib.metadata``. Both ways give
the same answer, which a test checks.

Example:
    >>> from runjournal.capture._packages import installed
    >>> packages, notes = installed()
    >>> "runjournal" in packages
    True
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
import sys
from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from importlib import metadata

__all__ = ["clear_cache", "is_cached", "installed"]

_NORMALIZE = re.compile(r"[-_.]+")
_INFO_SUFFIXES = (".dist-info", ".egg-info")


class _Distribution(Protocol):
    """What the listing needs of a distribution (``importlib.metadata.Distribution`` has it)."""

    def read_text(self, filename: str) -> str | None: ...

    @property
    def metadata(self) -> Any: ...


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


def is_cached() -> bool:
    """Whether the list was read already in this process (then :func:`installed` is instant).

    Example:
        >>> _ = installed()
        >>> is_cached()
        True
    """
    return _installed.cache_info().currsize > 0


def clear_cache() -> None:
    """Forget the cached list (for tests that install something).

    Example:
        >>> clear_cache()
        >>> is_cached()
        False
    """
    _installed.cache_clear()


@functools.cache
def _installed() -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    found: dict[str, tuple[str, str]] = {}
    notes: list[str] = []
    for distribution in distributions():
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


def distributions() -> Iterable[_Distribution]:
    """The distributions ``importlib.metadata.distributions()`` gives, in its order.

    Example:
        >>> any(d.read_text("METADATA") for d in distributions())
        True
    """
    listed = _listed(sys.path) if _standard_finders_only() else None
    if listed is not None:
        return listed
    from importlib import metadata  # the general case: other finders, zips, eggs

    return metadata.distributions()


def _standard_finders_only() -> bool:
    """Whether the standard path finder is the only one that lists distributions."""
    import importlib.machinery  # already loaded by the interpreter: no cost

    for finder in sys.meta_path:
        if getattr(finder, "find_distributions", None) is None:
            continue
        if finder is not importlib.machinery.PathFinder:
            return False
    return True


def _listed(paths: list[Any]) -> list[_Distribution] | None:
    """``MetadataPathFinder``'s search of ``paths`` without importlib.metadata; None if unusual.

    For each entry: its ``*.dist-info``/``*.egg-info`` children, grouped by
    the normalized name of the directory, groups in the order they first
    appear (``importlib.metadata``'s ``Lookup``). An entry that is a file (a
    zip) or an ``.egg`` directory is unusual: None, and importlib answers.
    """
    found: list[_Distribution] = []
    for root in paths:
        if not isinstance(root, str):
            return None
        if pathlib.Path(root).name.lower().endswith(".egg"):
            return None  # an egg's EGG-INFO: importlib's rules
        try:
            children = os.listdir(root or ".")  # noqa: PTH208 - importlib's listing, in its order
        except OSError:
            if pathlib.Path(root or ".").exists():
                return None  # a zip (or something unreadable): importlib's rules
            continue  # a missing entry (python311.zip) lists nothing
        groups: dict[str, list[_Distribution]] = {}
        for child in children:
            low = child.lower()
            if low.endswith(_INFO_SUFFIXES):
                name = low.rpartition(".")[0].partition("-")[0]
                groups.setdefault(_normalize(name), []).append(_FoundDistribution(root, child))
        for group in groups.values():
            found.extend(group)
    return found


def _normalize(name: str) -> str:
    """``importlib.metadata.Prepared.normalize``: PEP 503 plus dashes as underscores."""
    return _NORMALIZE.sub("-", name).lower().replace("-", "_")


class _FoundDistribution:
    """A metadata directory found on ``sys.path``; reads like ``PathDistribution``.

    Plain strings rather than ``pathlib`` on the way (a few ms over hundreds of
    distributions); ``_path`` is the ``pathlib.Path`` importlib would hold.
    """

    def __init__(self, root: str, child: str) -> None:
        self._root = root
        self._child = child
        self._folder = os.path.join(root, child) if root else child  # noqa: PTH118

    @property
    def _path(self) -> pathlib.Path:
        return pathlib.Path(self._root, self._child)

    def read_text(self, filename: str) -> str | None:
        """The file's text, None when it is not there (``PathDistribution.read_text``)."""
        with suppress(
            FileNotFoundError, IsADirectoryError, KeyError, NotADirectoryError, PermissionError
        ):
            path = os.path.join(self._folder, filename)  # noqa: PTH118
            with open(path, encoding="utf-8") as file:  # noqa: PTH123 - as Path.read_text
                return file.read()
        return None

    @property
    def metadata(self) -> Any:
        """The parsed metadata, by ``importlib.metadata`` itself (an unusual layout)."""
        from importlib import metadata

        return metadata.PathDistribution(self._path).metadata


def _name_version(distribution: _Distribution) -> tuple[str | None, str | None]:
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


def _where(distribution: _Distribution | metadata.Distribution) -> str:
    return str(getattr(distribution, "_path", None) or "a distribution")
