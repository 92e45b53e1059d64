"""Tolerant reading of the written-once JSON files of a run, and of records with odd fields.

``environment.json`` and ``git.json`` are written once by the capture at
``start()``; ``data.jsonl`` holds one record per ``log_data`` call. A reader
must never fail because one of them is damaged, hand-edited, or written by a
newer runjournal, so:

- a missing file reads as nothing, without a word (capture may be turned off);
- a file that cannot be read, is not valid JSON or is not an object reads as
  nothing, with a problem entry and a warning naming the file;
- a field whose value does not fit its model is dropped (read as missing) with
  a problem entry naming it, and the rest of the record is kept;
- unknown fields are ignored.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from runjournal.errors import RunjournalWarning
from runjournal.format import FORMAT_VERSION, SkippedLine, read_file

__all__ = ["latest_file", "read_json_object", "validate_tolerantly", "warn_problems"]

M = TypeVar("M", bound=BaseModel)


def latest_file(run_dir: Path, name: str) -> Path:
    """The run's latest segment's version of a file written at start and at each resume.

    ``environment.json`` is written at start, ``environment.<seg>.json`` at
    each resume (likewise ``git.json``): the one with the highest ``seg``
    wins, else the file of the start (which may not exist).

    Example:
        >>> run = Path("run-dir")
        >>> run.mkdir()
        >>> for file in ("git.json", "git.2.json", "git.10.json", ".tmp-git.11.json"):
        ...     _ = (run / file).write_text("{}")
        >>> latest_file(run, "git.json").name
        'git.10.json'
    """
    stem, _, suffix = name.rpartition(".")
    pattern = re.compile(rf"{re.escape(stem)}\.(\d+)\.{re.escape(suffix)}")
    best: tuple[int, str] | None = None
    try:
        with os.scandir(run_dir) as entries:
            for entry in entries:
                match = pattern.fullmatch(entry.name)
                if match and (best is None or int(match.group(1)) > best[0]):
                    best = (int(match.group(1)), entry.name)
    except OSError:
        pass
    return run_dir / (best[1] if best else name)


def read_json_object(path: Path) -> tuple[dict[str, Any] | None, list[SkippedLine]]:
    """The JSON object in a written-once file, or None with the reason it could not be used.

    A missing file is None without a problem. A ``format`` newer than this
    runjournal reads adds a problem, and the fields known are read anyway.

    Example:
        >>> _ = Path("env.json").write_text('{"format": 1, "seg": 0}')
        >>> read_json_object(Path("env.json"))
        ({'format': 1, 'seg': 0}, [])
        >>> _ = Path("torn.json").write_text('{"format": 1, "se')
        >>> [str(problem) for problem in read_json_object(Path("torn.json"))[1]]
        ['torn.json:0: not valid JSON; the file was ignored']
    """
    try:
        data = read_file(path)  # never blocks on a FIFO nor reads a device
    except FileNotFoundError:
        return None, []
    except OSError as error:
        return None, [_problem(path, f"cannot read the file: {error.strerror or error}")]
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None, [_problem(path, "not valid JSON; the file was ignored")]
    if not isinstance(document, dict):
        return None, [_problem(path, "not a JSON object; the file was ignored")]
    found = document.get("format")
    if type(found) is int and found > FORMAT_VERSION:
        reason = (
            f"written in format {found}, newer than the format {FORMAT_VERSION} this"
            " runjournal reads: upgrade runjournal; the fields it knows were read"
        )
        return document, [_problem(path, reason)]
    return document, []


def validate_tolerantly(
    model: type[M], document: dict[str, Any], prefix: str = ""
) -> tuple[M | None, list[str]]:
    """``model`` from ``document``, dropping the fields whose values do not fit.

    Args:
        model: A pydantic model whose fields are all optional but a few required ones.
        document: The decoded JSON object.
        prefix: Put before field names in the reasons, e.g. ``command.``.

    Returns:
        The model (None when a required field is missing or unusable) and one
        reason per field that was dropped.

    Example:
        >>> from pydantic import BaseModel
        >>> class Cpu(BaseModel):
        ...     model: str | None = None
        ...     cores: int | None = None
        >>> validate_tolerantly(Cpu, {"model": "EPYC", "cores": "many"}, "cpu.")
        (Cpu(model='EPYC', cores=None), ["field 'cpu.cores' is not valid (int_parsing); ignored"])
    """
    kept = dict(document)
    problems: list[str] = []
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    while True:
        try:
            return model.model_validate(kept), problems
        except ValidationError as error:
            bad = _failed_fields(error)
            if not bad or bad & required or not bad <= kept.keys():
                names = ", ".join(f"{prefix}{name}" for name in sorted(bad)) or "?"
                problems.append(f"required field {names} is missing or not valid")
                return None, problems
            for name in sorted(bad):
                kind = next(e["type"] for e in error.errors() if e["loc"][:1] == (name,))
                problems.append(f"field '{prefix}{name}' is not valid ({kind}); ignored")
                del kept[name]


def _failed_fields(error: ValidationError) -> set[str]:
    return {str(detail["loc"][0]) for detail in error.errors() if detail["loc"]}


def warn_problems(location: str, problems: list[SkippedLine]) -> None:
    """One warning for the problems met in one file, naming it relative to the store.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_problems("runs/r1/git.json", [SkippedLine("git.json", 0, "not valid JSON")])
        >>> print(caught[0].message)
        runs/r1/git.json: not valid JSON
    """
    if not problems:
        return
    more = "" if len(problems) == 1 else f" (and {len(problems) - 1} more problems)"
    warnings.warn(f"{location}: {problems[0].reason}{more}", RunjournalWarning, stacklevel=4)


def _problem(path: Path, reason: str) -> SkippedLine:
    return SkippedLine(path.name, 0, reason)
