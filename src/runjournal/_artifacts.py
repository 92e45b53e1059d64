"""The lines of ``artifacts.jsonl``: validating names, storing content, describing it.

Each function returns the record to append (``docs/format.md``,
``artifacts.jsonl``) and raises :class:`~runjournal.errors.ArtifactError` when
the artifact cannot be stored. Names are data, never paths the writer opens:
content goes to ``blobs/`` under the name of its hash, so no artifact name and
no symbolic link in a source can make a write land outside the store. Links
in a source are followed (their targets' content is stored), as for
``log_data``.

Example:
    >>> from pathlib import Path
    >>> record = bytes_artifact(Path("art-store").absolute(), "notes.txt", "text", b"hi", seg=0)
    >>> record["kind"], record["size"], record["path"][:13]
    ('text', 2, 'blobs/sha256/')
"""

from __future__ import annotations

import mimetypes
import os
import time
from pathlib import Path
from typing import Any

from runjournal._blobs import blob_relpath, store_bytes, store_file
from runjournal.capture._hashing import manifest_digest, manifest_line
from runjournal.errors import ArtifactError, DataError

__all__ = [
    "ARTIFACTS",
    "ALGO",
    "bytes_artifact",
    "check_artifact_name",
    "path_artifact",
]

ARTIFACTS = "artifacts.jsonl"
ALGO = "sha256"
MAX_NAME = 1024
_DIRECTORY_TYPE = "inode/directory"
_UNKNOWN_TYPE = "application/octet-stream"
_TYPES = mimetypes.MimeTypes()
"""Python's built-in table only, not the system's ``mime.types``: the same answer everywhere."""


def check_artifact_name(name: object) -> str:
    r"""Return ``name`` if it is a valid artifact name, else raise.

    A relative, ``/``-separated name: not empty, no empty, ``.`` or ``..``
    component, no leading ``/``, no ``\``, no NUL, at most 1,024 characters.

    Raises:
        ArtifactError: the name is not valid.

    Example:
        >>> check_artifact_name("plots/loss.png")
        'plots/loss.png'
        >>> check_artifact_name("../etc/passwd")
        Traceback (most recent call last):
        ...
        runjournal.errors.ArtifactError: artifact name '../etc/passwd' is not valid: ...
    """
    why = _name_problem(name)
    if why is not None:
        shown = repr(name)[:80]
        raise ArtifactError(
            f"artifact name {shown} is not valid: {why}; use a relative name such as"
            " 'model.pt' or 'plots/loss.png'",
            name=name if isinstance(name, str) else None,
        )
    assert isinstance(name, str)
    return name


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"a {type(name).__name__} is not a string"
    if not name or len(name) > MAX_NAME:
        return f"it must have 1 to {MAX_NAME} characters"
    if "\x00" in name or "\\" in name:
        return "it holds a NUL or a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "it is an absolute path"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "it has an empty, '.' or '..' component"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "it cannot be encoded as UTF-8"
    return None


def media_type(name: str) -> str:
    """The media type a name suggests; ``application/octet-stream`` when unknown.

    Example:
        >>> media_type("loss.png"), media_type("model.pt")
        ('image/png', 'application/octet-stream')
    """
    guessed, _ = _TYPES.guess_type(name)
    return guessed or _UNKNOWN_TYPE


def bytes_artifact(
    root: Path,
    name: str,
    kind: str,
    data: bytes,
    *,
    seg: int,
    media: str | None = None,
    fsync: bool = False,
) -> dict[str, Any]:
    """Store bytes made in memory; return the artifact record.

    ``fsync`` syncs the blob (and its directory) to disk, for a run started
    with ``durability="fsync"``.
    """
    name = check_artifact_name(name)
    try:
        digest, size = store_bytes(root, data, ALGO, fsync=fsync)
    except OSError as error:
        raise _os_problem(name, "cannot store", root, error) from error
    return _record(name, kind, digest, size, media=media or media_type(name), seg=seg, blob=True)


def path_artifact(
    root: Path,
    source: object,
    name: str | None,
    *,
    seg: int,
    copy: bool,
    kind: str | None = None,
    fsync: bool = False,
) -> dict[str, Any]:
    """Store (or, without ``copy``, only hash) a file or a directory; return the record.

    ``fsync`` syncs each blob (and its directory) to disk, for a run started
    with ``durability="fsync"``.

    Example:
        >>> from pathlib import Path
        >>> _ = Path("w.bin").write_bytes(b"w")
        >>> record = path_artifact(Path("art-store").absolute(), "w.bin", None, seg=0,
        ...                        copy=True, fsync=True)
        >>> record["name"], record["size"]
        ('w.bin', 1)
    """
    from runjournal.capture.data import _list, _resolve

    try:
        path = _resolve(source)
        found, entries = _list(path, root)
    except DataError as error:
        label = name if name is not None else _base_name(source)
        raise ArtifactError(str(error), name=label, path=error.path) from error
    name = check_artifact_name(Path(path).name if name is None else name)
    if not copy:
        return _reference(root, name, path, found, seg)
    if found == "file":
        digest, size = _store_one(root, name, path, fsync)
        media = media_type(name)
        if media == _UNKNOWN_TYPE:
            media = media_type(path)
        return _record(name, kind or "file", digest, size, media=media, seg=seg, blob=True)
    files = [_stored_entry(root, name, entry.relative, entry.path, fsync) for entry in entries]
    files.sort(key=lambda item: item["path"].encode("utf-8"))
    lines = (manifest_line(item["path"].encode("utf-8"), item["hash"]) for item in files)
    size = sum(item["size"] for item in files)
    record = _record(
        name, "directory", manifest_digest(lines, ALGO), size, media=_DIRECTORY_TYPE, seg=seg
    )
    record["files"] = files
    return record


def _base_name(source: object) -> str | None:
    """The last component of a path given as a source, to name its problems by."""
    if isinstance(source, (str, os.PathLike)):
        return Path(os.fsdecode(os.fspath(source))).name or None
    return None


def _stored_entry(root: Path, name: str, relative: bytes, path: str, fsync: bool) -> dict[str, Any]:
    try:
        text = relative.decode("utf-8")
    except UnicodeDecodeError:
        raise ArtifactError(
            f"artifact {name!r}: the file name {relative!r} is not UTF-8", name=name, path=path
        ) from None
    digest, size = _store_one(root, name, path, fsync)
    return {"path": text, "hash": digest, "size": size}


def _store_one(root: Path, name: str, path: str, fsync: bool) -> tuple[str, int]:
    try:
        return store_file(root, path, ALGO, fsync=fsync)
    except OSError as error:
        raise _os_problem(name, "cannot store", path, error) from error


def _reference(root: Path, name: str, path: str, found: str, seg: int) -> dict[str, Any]:
    """``copy=False``: the hash and size of the source, which stays where it is."""
    from runjournal.capture.data import hash_data

    try:
        hashed = hash_data(path, mode="full", algo=ALGO, store=root)
    except DataError as error:
        raise ArtifactError(str(error), name=name, path=path) from error
    media = _DIRECTORY_TYPE if found == "directory" else media_type(name)
    record = _record(name, found, hashed.hash, hashed.size, media=media, seg=seg)
    record["stored"], record["path"] = False, hashed.path
    return record


def _record(
    name: str, kind: str, digest: str, size: int, *, media: str, seg: int, blob: bool = False
) -> dict[str, Any]:
    return {
        "time": time.time(),
        "seg": seg,
        "name": name,
        "kind": kind,
        "algo": ALGO,
        "hash": digest,
        "size": size,
        "media_type": media,
        "stored": True,
        "path": blob_relpath(ALGO, digest) if blob else None,
    }


def _os_problem(name: str, what: str, path: object, error: OSError) -> ArtifactError:
    return ArtifactError(
        f"artifact {name!r}: {what} {path}: {error.strerror or error}", name=name, path=str(path)
    )
