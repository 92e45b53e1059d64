"""The data a run used or made, read from ``data.jsonl`` (``docs/format.md``).

One record per ``run.log_data(name, source, ...)`` call, in file order. The
same name may be logged more than once (a data set re-logged after a resume);
:func:`latest_by_name` keeps the last record of each name, and the run table
and ``diff`` use that one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from runjournal.format import SkippedLine
from runjournal.query._lines import read_jsonl
from runjournal.query._tolerant import validate_tolerantly

__all__ = ["DATA", "DataRecord", "latest_by_name", "read_data"]

DATA = "data.jsonl"


class DataRecord(BaseModel):
    """One data reference: what was hashed, how, and the hash.

    Attributes:
        name: The name the user gave.
        role: ``input``, ``output`` or a role the user named.
        kind: ``file``, ``directory`` or ``dataframe``.
        path: The path as resolved at logging time; None for a DataFrame.
        mode: ``full``, ``sample`` or ``stat``.
        algo: The hash algorithm, e.g. ``sha256``.
        hash: The hex digest.
        size: Total bytes.
        files: Number of files (rows for a DataFrame).
        seconds: How long hashing took.
        time: When it was logged (UTC).
        seg: The segment that logged it.

    Example:
        >>> record = DataRecord(name="train", algo="sha256", hash="3a7bd3e2")
        >>> record.digest
        'sha256:3a7bd3e2'
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    role: str | None = None
    kind: str | None = None
    path: str | None = None
    mode: str | None = None
    algo: str | None = None
    hash: str | None = None
    size: int | None = None
    files: int | None = None
    seconds: float | None = None
    time: dt.datetime | None = None
    seg: int = 0

    @property
    def digest(self) -> str | None:
        """``<algo>:<hash>``, the hash with its algorithm; None without a hash.

        Example:
            >>> DataRecord(name="x", hash="ab").digest
            'ab'
        """
        if self.hash is None:
            return None
        return f"{self.algo}:{self.hash}" if self.algo else self.hash


def read_data(run_dir: Path) -> tuple[list[DataRecord], list[SkippedLine]]:
    """The records of a run's ``data.jsonl``, in file order, with the lines skipped.

    A line without a usable ``name`` is skipped; a field that does not fit
    reads as None, and is reported.

    Example:
        >>> read_data(Path("no-such-run"))
        ([], [])
    """
    lines = read_jsonl(run_dir / DATA)
    records: list[DataRecord] = []
    for index, document in enumerate(lines.records):
        record, reasons = validate_tolerantly(DataRecord, document)
        if reasons:
            lines.skip(index, "; ".join(reasons))
        if record is not None:
            records.append(record)
    return records, lines.skipped


def latest_by_name(records: Iterable[DataRecord]) -> dict[str, DataRecord]:
    """The last record of each name, in order of first appearance.

    Example:
        >>> records = [DataRecord(name="train", hash="a"), DataRecord(name="train", hash="b")]
        >>> latest_by_name(records)["train"].hash
        'b'
    """
    latest: dict[str, DataRecord] = {}
    for record in records:
        latest[record.name] = record
    return latest
