"""The artifacts of a run, read from ``artifacts.jsonl`` (``docs/format.md``), and their blobs.

One record per artifact logged, in file order; the same name may be logged
more than once, and the latest record of a name is the artifact of that name.
A record's blob is found from its ``algo`` and ``hash`` alone, both checked to
be plain names, so a damaged or hostile record cannot point outside the store.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from runjournal._blobs import blob_path
from runjournal.errors import ArtifactError
from runjournal.format import SkippedLine
from runjournal.query._lines import read_jsonl
from runjournal.query._tolerant import validate_tolerantly

__all__ = [
    "ARTIFACTS",
    "ArtifactFile",
    "ArtifactRecord",
    "export_artifact",
    "latest_artifacts",
    "read_artifacts",
    "stored_path",
]

ARTIFACTS = "artifacts.jsonl"


class ArtifactFile(BaseModel):
    """One file of a directory artifact.

    Attributes:
        path: Its path inside the directory, ``/``-separated.
        hash: The hex digest of its content (its blob's name).
        size: Its size in bytes.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    path: str
    hash: str
    size: int = 0


class ArtifactRecord(BaseModel):
    """One artifact: what was logged, its hash, and where its content is.

    Attributes:
        name: The artifact name (``model.pt``, ``plots/loss.png``).
        kind: ``file``, ``directory``, ``text``, ``json``, ``table``, ``image`` or ``figure``.
        algo: The hash algorithm, e.g. ``sha256``.
        hash: The hex digest of the content (of the manifest, for a directory).
        size: Bytes of content.
        media_type: The IANA media type.
        stored: Whether the content is in the store's ``blobs/`` (False for ``copy=False``).
        path: The blob's path relative to the store root, or the original
            path when not stored; None for a stored directory.
        files: The files of a directory artifact.
        time: When it was logged (UTC).
        seg: The segment that logged it.

    Example:
        >>> record = ArtifactRecord(name="model.pt", algo="sha256", hash="ab12cd34")
        >>> record.digest
        'sha256:ab12cd34'
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    kind: str | None = None
    algo: str | None = None
    hash: str | None = None
    size: int | None = None
    media_type: str | None = None
    stored: bool = True
    path: str | None = None
    files: list[ArtifactFile] | None = None
    time: dt.datetime | None = None
    seg: int = 0

    @property
    def digest(self) -> str | None:
        """``<algo>:<hash>``; None without a hash."""
        if self.hash is None:
            return None
        return f"{self.algo}:{self.hash}" if self.algo else self.hash


def read_artifacts(run_dir: Path) -> tuple[list[ArtifactRecord], list[SkippedLine]]:
    """The records of a run's ``artifacts.jsonl``, in file order, with the lines skipped.

    Example:
        >>> read_artifacts(Path("no-such-run"))
        ([], [])
    """
    lines = read_jsonl(run_dir / ARTIFACTS)
    records: list[ArtifactRecord] = []
    for index, document in enumerate(lines.records):
        record, reasons = validate_tolerantly(ArtifactRecord, document)
        if reasons:
            lines.skip(index, "; ".join(reasons))
        if record is not None:
            records.append(record)
    return records, lines.skipped


def latest_artifacts(records: Iterable[ArtifactRecord]) -> dict[str, ArtifactRecord]:
    """The last record of each name, in order of first appearance.

    Example:
        >>> records = [ArtifactRecord(name="m", hash="a1"), ArtifactRecord(name="m", hash="b2")]
        >>> latest_artifacts(records)["m"].hash
        'b2'
    """
    latest: dict[str, ArtifactRecord] = {}
    for record in records:
        latest[record.name] = record
    return latest


def stored_path(root: Path, record: ArtifactRecord) -> Path:
    """The file holding a file artifact's content: its blob, or its original path.

    Raises:
        ArtifactError: a directory artifact (no single file), or a record without a hash.
    """
    if record.kind == "directory":
        raise ArtifactError(
            f"artifact {record.name!r} is a directory: it has no single path;"
            " use Store.get_artifact() or `runjournal get` to rebuild it",
            name=record.name,
        )
    if not record.stored:
        if record.path is None:
            raise ArtifactError(f"artifact {record.name!r} records no path", name=record.name)
        return Path(record.path)
    return blob_path(root, record.algo or "", record.hash or "")


def export_artifact(root: Path, record: ArtifactRecord, target: Path) -> Path:
    """Copy an artifact out of the store to ``target`` (a directory artifact is rebuilt).

    Raises:
        ArtifactError: ``target`` exists, a blob is missing, or a file name in
            the record would leave ``target``.
    """
    if target.exists() or target.is_symlink():
        raise ArtifactError(f"{target} exists; choose another output path", name=record.name)
    if record.kind != "directory":
        _copy_blob(stored_path(root, record), target, record.name)
        return target
    if not record.stored:
        _copy_tree(Path(record.path or ""), target, record.name)
        return target
    for entry in record.files or []:
        _check_inside(entry.path, record.name)
        destination = target.joinpath(*entry.path.split("/"))
        destination.parent.mkdir(parents=True, exist_ok=True)
        _copy_blob(blob_path(root, record.algo or "", entry.hash), destination, record.name)
    target.mkdir(parents=True, exist_ok=True)  # an empty directory is rebuilt too
    return target


def _check_inside(relative: str, name: str) -> None:
    parts = relative.split("/")
    if not relative or relative.startswith("/") or "\\" in relative or ".." in parts:
        raise ArtifactError(
            f"artifact {name!r}: the file name {relative!r} would leave the output directory",
            name=name,
        )


def _copy_blob(source: Path, target: Path, name: str) -> None:
    try:
        shutil.copyfile(source, target)
    except FileNotFoundError as error:
        raise ArtifactError(
            f"artifact {name!r}: {source} is missing (was it garbage-collected or not copied?)",
            name=name,
            path=str(source),
        ) from error
    except OSError as error:
        raise ArtifactError(
            f"artifact {name!r}: cannot copy {source} to {target}: {error.strerror or error}",
            name=name,
            path=str(source),
        ) from error


def _copy_tree(source: Path, target: Path, name: str) -> None:
    try:
        shutil.copytree(source, target)
    except OSError as error:
        raise ArtifactError(
            f"artifact {name!r}: cannot copy {source}: {error}", name=name, path=str(source)
        ) from error
