"""The index of the query cache: a manifest naming an immutable base, plus the changes since.

An *entry* is what a query needs of a run without opening anything else
(see :mod:`runjournal.query._cache`). The index keeps them in two parts:

- a *base*, ``<name>.idx``: ``{"version", "runs": {run_id: entry}}``, written
  once under a new name and never changed, so a process that parsed it once
  keeps the parsed entries for as long as the manifest names it (a second
  query in the same process parses nothing but the manifest);
- the *manifest*, ``index``: small, replaced (under the index lock) at every
  save. It names the base and holds the entries changed since (``delta``),
  the runs gone since (``gone``), the packs the entries may point into, and
  the files no index names any more (``retired``, with the time they were
  retired, deleted once no reader can still need them).

A save that changed ten runs of ten thousand therefore writes one pack and a
manifest of ten entries; only when the changes since the base grow past a
sixteenth of it (or past :data:`COMPACT_MIN`) are they folded into a new base.

Example:
    >>> manifest = Manifest()
    >>> manifest.apply({"r1": {"row": {}}}, ["r0"])
    >>> manifest.delta, manifest.gone
    ({'r1': {'row': {}}}, ['r0'])
    >>> Manifest.decode(manifest.encode("0.1")).delta == manifest.delta
    True
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from runjournal.format import read_file
from runjournal.query._packs import PACK_SUFFIX, new_name, valid_name

__all__ = [
    "BASE_SUFFIX",
    "COMPACT_MIN",
    "INDEX",
    "INDEX_VERSION",
    "NEW_PACKS",
    "Manifest",
    "names_key",
    "read_base",
    "refs_of",
    "remember_base",
]

INDEX = "index"
BASE_SUFFIX = ".idx"
INDEX_VERSION = 3
"""The query cache's layout version (bumped whenever the layout or a digest's meaning changes)."""
COMPACT_MIN = 256
"""Changes the manifest may hold (or a sixteenth of the base, if more) before a new base."""
NEW_PACKS = 16
"""Packs that may be added after a base before the next one (which merges the small ones)."""
_MEMO_SIZE = 1
"""Bases kept parsed (of the stores read last): about 7.5 MB of memory per 1,000 runs."""


def names_key(names: Iterable[str]) -> int:
    """A 56-bit digest of a directory listing: equal listings, equal keys.

    Example:
        >>> names_key(["b", "a"]) == names_key(["a", "b"]) != names_key(["a"])
        True
    """
    text = "\0".join(sorted(names)).encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.blake2b(text, digest_size=7).digest(), "little")


def refs_of(entry: Any) -> list[str]:
    """The pack references of an entry: its digest's, and its metric chunks'.

    Example:
        >>> refs_of({"state": "s", "chunks": [["metrics.jsonl", None, ["c1", "c2"], {}]]})
        ['s', 'c1', 'c2']
    """
    refs: list[str] = []
    if not isinstance(entry, dict):
        return refs
    state = entry.get("state")
    if isinstance(state, str):
        refs.append(state)
    chunks = entry.get("chunks")
    if isinstance(chunks, list):
        for item in chunks:
            if isinstance(item, list) and len(item) > 2 and isinstance(item[2], list):
                refs += [ref for ref in item[2] if isinstance(ref, str)]
    return refs


@dataclass
class Manifest:
    """The manifest of the index (see the module's docstring).

    Attributes:
        base: The name of the base (without suffix), or None when there is none.
        base_count: How many runs the base holds.
        base_packs: How many packs there were when the base was made.
        packs: The packs the entries may point into (names without suffix).
        retired: ``[file name, time retired (ns)]`` of files no index names any more.
        delta: Entries changed since the base, by run id.
        gone: Runs removed since the base.
    """

    base: str | None = None
    base_count: int = 0
    base_packs: int = 0
    packs: list[str] = field(default_factory=list)
    retired: list[list[Any]] = field(default_factory=list)
    delta: dict[str, Any] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, root: Path) -> Manifest:
        """The manifest in ``root``; an empty one when there is none usable."""
        try:
            return cls.decode(read_file(root / INDEX))
        except (OSError, ValueError):
            return cls()

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """A manifest from its bytes.

        Raises:
            ValueError: not a manifest of this version.
        """
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise ValueError("damaged manifest") from error
        if not isinstance(document, dict) or document.get("version") != INDEX_VERSION:
            raise ValueError("not a manifest of this version")
        base, count, base_packs = (document.get(k) for k in ("base", "base_count", "base_packs"))
        packs, retired = document.get("packs"), document.get("retired")
        delta, gone = document.get("delta"), document.get("gone")
        if not (base is None or valid_name(base)) or type(count) is not int:
            raise ValueError("damaged manifest")
        if type(base_packs) is not int:
            raise ValueError("damaged manifest")
        if not isinstance(packs, list) or not all(valid_name(name) for name in packs):
            raise ValueError("damaged manifest")
        if not isinstance(retired, list) or not all(_retired_item(item) for item in retired):
            raise ValueError("damaged manifest")
        if not isinstance(delta, dict) or not isinstance(gone, list):
            raise ValueError("damaged manifest")
        gone = [run_id for run_id in gone if isinstance(run_id, str)]
        return cls(base, count, base_packs, packs, retired, delta, gone)

    def encode(self, library: str) -> bytes:
        """The manifest's bytes."""
        return orjson.dumps(
            {
                "version": INDEX_VERSION,
                "library": library,
                "base": self.base,
                "base_count": self.base_count,
                "base_packs": self.base_packs,
                "packs": self.packs,
                "retired": self.retired,
                "delta": self.delta,
                "gone": self.gone,
            }
        )

    def apply(self, changed: dict[str, Any], gone: Iterable[str]) -> None:
        """Record entries changed and runs gone (later changes win)."""
        gone = [run_id for run_id in gone if run_id not in changed]
        self.delta.update(changed)
        for run_id in gone:
            self.delta.pop(run_id, None)
        known = set(self.gone)
        self.gone = [run_id for run_id in self.gone if run_id not in changed]
        self.gone += [run_id for run_id in gone if run_id not in known]

    def add_packs(self, names: Iterable[str]) -> None:
        """Name packs the entries point into (taking back any retired meanwhile)."""
        known = set(self.packs)
        for name in names:
            if name not in known:
                self.packs.append(name)
                known.add(name)
        revived = {f"{name}{PACK_SUFFIX}" for name in known}
        self.retired = [item for item in self.retired if item[0] not in revived]

    def oversized(self) -> bool:
        """Whether the changes (or the packs) have grown enough to make a new base."""
        limit = max(COMPACT_MIN, self.base_count // 16)
        changes = len(self.delta) + len(self.gone)
        return changes > limit or len(self.packs) >= self.base_packs + NEW_PACKS

    def entries(self, base: dict[str, Any]) -> dict[str, Any]:
        """Every entry: the base's, with the changes applied."""
        entries = dict(base)
        entries.update(self.delta)
        for run_id in self.gone:
            entries.pop(run_id, None)
        return entries

    def known_files(self) -> set[str]:
        """The names of the files of the cache this manifest names (retired ones included)."""
        names = {f"{name}{PACK_SUFFIX}" for name in self.packs}
        names.update(item[0] for item in self.retired)
        if self.base is not None:
            names.add(f"{self.base}{BASE_SUFFIX}")
        return names


def _retired_item(item: Any) -> bool:
    if not (isinstance(item, list) and len(item) == 2 and type(item[1]) is int):
        return False
    name = item[0]
    return isinstance(name, str) and any(
        name.endswith(suffix) and valid_name(name.removesuffix(suffix))
        for suffix in (PACK_SUFFIX, BASE_SUFFIX)
    )


# ------------------------------------------------------------------ bases

_memo: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
_reads: dict[str, int] = {}
"""Per cache directory, the bases this process read (or wrote)."""
_memo_lock = threading.Lock()


def read_base(root: Path, name: str) -> dict[str, Any]:
    """The entries of a base, by run id; empty when it is missing or damaged.

    A process that reads a store's base a second time keeps the entries of
    the base it read last in memory (a base never changes under its name), so
    that its next queries parse only the manifest. Not at the first read: the
    objects kept cost one garbage-collector pass over them (about 8 ms per
    1,000 runs), which a process that queries once (the command line) would
    pay for nothing. The entries are shared: nothing may change them.
    """
    path = root / f"{name}{BASE_SUFFIX}"
    try:
        status = os.stat(path)  # noqa: PTH116
        key = (status.st_ino, status.st_size, status.st_mtime_ns)
        with _memo_lock:
            known = _memo.get(str(path))
        if known is not None and known[0] == key:
            return known[1]
        document = orjson.loads(read_file(path))
    except (OSError, orjson.JSONDecodeError):
        return {}
    if not isinstance(document, dict) or document.get("version") != INDEX_VERSION:
        return {}
    runs = document.get("runs")
    if not isinstance(runs, dict):
        return {}
    _remember(root, str(path), key, runs)
    return runs


def write_base(root: Path, runs: dict[str, Any], write: Any) -> str:
    """Write a new base holding ``runs`` with ``write(path, data)``; its name.

    Raises:
        OSError: it cannot be written.
    """
    name = new_name()
    path = root / f"{name}{BASE_SUFFIX}"
    write(path, orjson.dumps({"version": INDEX_VERSION, "runs": runs}))
    remember_base(path, runs)
    return name


def remember_base(path: Path, runs: dict[str, Any]) -> None:
    """Keep the entries of a base just written (as :func:`read_base` would keep them)."""
    try:
        status = os.stat(path)  # noqa: PTH116
    except OSError:
        return
    _remember(path.parent, str(path), (status.st_ino, status.st_size, status.st_mtime_ns), runs)


def _remember(root: Path, path: str, key: tuple[int, int, int], runs: dict[str, Any]) -> None:
    with _memo_lock:
        reads = _reads[str(root)] = _reads.get(str(root), 0) + 1
        if reads < 2:
            return
        _memo.pop(path, None)
        while len(_memo) >= _MEMO_SIZE:
            del _memo[next(iter(_memo))]
        _memo[path] = (key, runs)
