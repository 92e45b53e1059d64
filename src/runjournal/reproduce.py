"""Running a run again: its :class:`Recipe`, and checking that its data is unchanged.

:func:`reproduce` gathers from a run's files what it takes to rerun it: the
commit to check out and the patch of uncommitted changes to apply, the
package pins (as a ``requirements.txt``), the command line and its working
directory, and the data hashes to check. :func:`verify_data` hashes the
recorded data again, the way ``run.log_data`` did, and says which no longer
match. ``runjournal show RUN --reproduce`` and ``runjournal verify-data RUN``
print them.

Two decisions about the package pins: ``pip`` itself is left out (pinning the
installer rarely helps and upgrades it mid-install), and so is a distribution
named like the repository's top directory, the project itself, which is
installed from the checkout (``pip install -e .``), not from an index.
Everything else the run had installed is pinned, ``runjournal`` included.

Example:
    >>> import runjournal
    >>> from runjournal.reproduce import reproduce
    >>> with runjournal.start("again", params={"lr": 0.1}) as run:
    ...     pass
    >>> recipe = reproduce(run.id)
    >>> recipe.run.id == run.id, recipe.data
    (True, [])
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, computed_field

from runjournal.compare import RunRef
from runjournal.errors import DataError
from runjournal.query import Command, DataRecord, GitState, RunRecord, Store
from runjournal.typing import PathLike

__all__ = [
    "DataCheck",
    "DataVerification",
    "Recipe",
    "reproduce",
    "verify_data",
]

_NOT_PINNED = {"pip": "the installer itself"}
_FROZEN = ConfigDict(frozen=True)

CheckStatus = Literal["ok", "changed", "missing", "error", "skipped"]


class Recipe(BaseModel):
    """What it takes to run a run again, from its files.

    Attributes:
        run: The run's id and name.
        store: The store's directory.
        start_time: When the run started.
        host: The host it ran on.
        git: Its git state, or None when none was recorded.
        patch_path: The absolute path of its ``git.patch``, when it recorded
            uncommitted changes that ``git apply`` restores.
        python: Python version and implementation, e.g. ``3.11.7 (CPython)``.
        platform: Operating system and machine, e.g. ``Linux 6.1.0 x86_64``.
        packages: The pins, name to version, sorted by name; None when the run
            recorded no packages.
        not_pinned: Recorded packages left out of the pins: ``name==version``
            to the reason.
        command: How the process was started, or None.
        notebook: The notebook's path, when the run started in one.
        data: The latest record of each data name.
        notes: What cannot be reproduced exactly, in words.

    Example:
        >>> import datetime as dt
        >>> recipe = Recipe(run=RunRef(id="r1", name="x"), store="/s",
        ...                 start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        ...                 packages={"numpy": "2.4.6"})
        >>> print(recipe.requirements(), end="")
        # requirements of run r1 (x)
        numpy==2.4.6
    """

    model_config = _FROZEN

    run: RunRef
    store: str | None = None
    start_time: dt.datetime
    host: str | None = None
    git: GitState | None = None
    patch_path: str | None = None
    python: str | None = None
    platform: str | None = None
    packages: dict[str, str] | None = None
    not_pinned: dict[str, str] = {}
    command: Command | None = None
    notebook: str | None = None
    data: list[DataRecord] = []
    notes: list[str] = []

    def requirements(self) -> str:
        r"""The package pins as the text of a ``requirements.txt``: ``name==version`` lines.

        Example:
            >>> import datetime as dt
            >>> Recipe(run=RunRef(id="r1", name=""), packages={},
            ...        start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).requirements()
            '# requirements of run r1\n'
        """
        title = f"{self.run.id} ({self.run.name})" if self.run.name else self.run.id
        python = f"Python {self.python}" if self.python else None
        where = " on ".join(part for part in (python, self.platform) if part)
        lines = [f"# requirements of run {title}" + (f": {where}" if where else "")]
        lines += [f"# not pinned: {pin} ({reason})" for pin, reason in self.not_pinned.items()]
        lines += [f"{name}=={version}" for name, version in (self.packages or {}).items()]
        return "\n".join(lines) + "\n"

    def shell_command(self) -> str | None:
        """The command line to type, ``python ...``; None when none was recorded.

        Example:
            >>> import datetime as dt
            >>> Recipe(run=RunRef(id="r1", name=""),
            ...        start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            ...        command=Command(argv=["train.py", "--name", "a b"], script="train.py"),
            ...        ).shell_command()
            "python train.py --name 'a b'"
        """
        from runjournal._recipe_text import command_line

        return command_line(self.command)

    def to_text(self, requirements_file: str | None = None) -> str:
        """The recipe as a commented shell script, as ``runjournal show --reproduce`` prints it.

        Args:
            requirements_file: Where the pins were written, to name in the
                ``pip install -r`` line.
        """
        from runjournal._recipe_text import render_recipe

        return render_recipe(self, requirements_file)


class DataCheck(BaseModel):
    """The outcome of hashing one recorded data reference again.

    Attributes:
        name: The data name.
        role: Its role (``input``, ``output``, ...).
        kind: ``file``, ``directory`` or ``dataframe``.
        path: The recorded path.
        mode: The hashing mode recorded, used again.
        recorded: The recorded ``<algo>:<hash>``.
        found: The ``<algo>:<hash>`` of the data now, when it could be hashed.
        status: ``ok`` (same hash), ``changed``, ``missing`` (the path is
            gone), ``error`` (it could not be hashed) or ``skipped`` (a
            DataFrame, or no hash recorded: nothing to compare).
        message: Why, for ``missing``, ``error`` and ``skipped``.
    """

    model_config = _FROZEN

    name: str
    role: str | None = None
    kind: str | None = None
    path: str | None = None
    mode: str | None = None
    recorded: str | None = None
    found: str | None = None
    status: CheckStatus
    message: str | None = None


class DataVerification(BaseModel):
    """The data of one run, hashed again.

    Attributes:
        run: The run's id and name.
        checks: One check per data name (its latest record), in the order logged.

    Example:
        >>> DataVerification(run=RunRef(id="r1", name=""), checks=[]).ok
        True
    """

    model_config = _FROZEN

    run: RunRef
    checks: list[DataCheck] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """Whether no data changed, went missing or failed to hash (skipped ones count as ok)."""
        return all(check.status in ("ok", "skipped") for check in self.checks)

    def to_text(self) -> str:
        """The checks as text, one line per data name, as ``runjournal verify-data`` prints them."""
        from runjournal._recipe_text import render_verification

        return render_verification(self)


def reproduce(record: RunRecord | str, *, store: Store | PathLike | None = None) -> Recipe:
    """The recipe to run a run again (see :class:`Recipe`).

    Args:
        record: The run, a record or a run id, id prefix or name.
        store: Where to look up a run given by reference (default: the store
            :class:`Store` finds).

    Raises:
        RunNotFoundError: the reference matches no run.
        AmbiguousRunError: it matches several runs.

    Example:
        >>> import runjournal
        >>> with runjournal.start("recipe") as run:
        ...     pass
        >>> reproduce(run.id).run.name == run.name
        True
    """
    run = _record(record, store)
    environment = run.environment
    packages, not_pinned = _pins(environment.packages if environment else None, run.git)
    return Recipe(
        run=RunRef(id=run.id, name=run.name),
        store=str(run.dir.parent.parent) if run.dir is not None else None,
        start_time=run.start_time,
        host=run.host,
        git=run.git,
        patch_path=str(run.git_patch_path) if run.git_patch_path else None,
        python=_python(run),
        platform=_platform(run),
        packages=packages,
        not_pinned=not_pinned,
        command=run.command,
        notebook=environment.notebook.path if environment and environment.notebook else None,
        data=list(run.data_by_name.values()),
        notes=_notes(run),
    )


def verify_data(
    record: RunRecord | str,
    *,
    store: Store | PathLike | None = None,
    role: str | None = None,
) -> DataVerification:
    r"""Hash a run's recorded data again, as ``run.log_data`` did, and compare.

    Each data name's latest record is hashed with its recorded mode and
    algorithm. The store's hash cache answers for files whose size, times and
    inode are unchanged, as it does for ``log_data``; a changed file is read
    again.

    Args:
        record: The run, a record or a run id, id prefix or name.
        store: Where to look up a run given by reference.
        role: Only data of this role (``input``, ``output``); None for all.

    Raises:
        RunNotFoundError: the reference matches no run.

    Example:
        >>> import pathlib, runjournal
        >>> _ = pathlib.Path("labels.csv").write_text("id,label\n1,cat\n")
        >>> with runjournal.start("verify") as run:
        ...     _ = run.log_data("labels", "labels.csv")
        >>> verify_data(run.id).ok
        True
        >>> _ = pathlib.Path("labels.csv").write_text("id,label\n1,dog\n")
        >>> [check.status for check in verify_data(run.id).checks]
        ['changed']
    """
    run = _record(record, store)
    store_dir = run.dir.parent.parent if run.dir is not None else None
    checks = [
        _check(data, store_dir)
        for data in run.data_by_name.values()
        if role is None or data.role == role
    ]
    return DataVerification(run=RunRef(id=run.id, name=run.name), checks=checks)


def _record(record: RunRecord | str, store: Store | PathLike | None) -> RunRecord:
    if isinstance(record, RunRecord):
        return record
    return (store if isinstance(store, Store) else Store(store)).run(record)


def _pins(
    packages: dict[str, str] | None, git: GitState | None
) -> tuple[dict[str, str] | None, dict[str, str]]:
    """The packages to pin, sorted by name, and those left out with the reason."""
    if packages is None:
        return None, {}
    project = _normalized(git.root_name) if git and git.root_name else None
    pins: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for name in sorted(packages, key=str.lower):
        version = packages[name]
        key = _normalized(name)
        if key in _NOT_PINNED:
            left_out[f"{name}=={version}"] = _NOT_PINNED[key]
        elif key == project:
            reason = "the project itself: install it from the checkout, pip install -e ."
            left_out[f"{name}=={version}"] = reason
        else:
            pins[name] = version
    return pins, left_out


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _python(run: RunRecord) -> str | None:
    environment = run.environment
    python = environment.python if environment else None
    if python is None or python.version is None:
        return None
    if python.implementation is None:
        return python.version
    return f"{python.version} ({python.implementation})"


def _platform(run: RunRecord) -> str | None:
    environment = run.environment
    system = environment.platform if environment else None
    if system is None:
        return None
    parts = (system.system, system.release, system.machine)
    return " ".join(part for part in parts if part) or None


def _notes(run: RunRecord) -> list[str]:
    """What keeps the recipe from reproducing the run exactly."""
    notes: list[str] = []
    git = run.git
    if git is not None and git.dirty and not git.has_patch:
        notes.append(
            "the uncommitted changes were not recorded (the patch exceeded its size cap"
            " or is missing): the working tree cannot be restored exactly"
        )
    redacted = git.patch.redacted_lines if git is not None and git.patch is not None else None
    if git is not None and git.has_patch and redacted:
        notes.append(
            f"{redacted} added lines of the patch hold <redacted> in place of a credential:"
            " fill them in after `git apply`"
        )
    if git is not None and git.untracked:
        more = " and more" if git.untracked_truncated else ""
        shown = ", ".join(git.untracked[:5]) + (", ..." if len(git.untracked) > 5 else "")
        notes.append(
            f"{len(git.untracked)}{more} untracked files were present and are not in the"
            f" patch: {shown}"
        )
    command = run.command
    if command is not None and any("<redacted>" in arg for arg in command.argv or []):
        notes.append("the command line had secrets redacted: fill in each <redacted>")
    return notes


def _check(data: DataRecord, store_dir: Path | None) -> DataCheck:
    fields = data.model_dump(include={"name", "role", "kind", "path", "mode"})
    recorded = data.digest
    if data.kind == "dataframe" or data.path is None:
        reason = "a DataFrame: nothing on disk to hash again"
        return DataCheck(**fields, recorded=recorded, status="skipped", message=reason)
    if data.hash is None:
        return DataCheck(**fields, status="skipped", message="no hash was recorded")
    if not os.path.lexists(data.path):
        return DataCheck(**fields, recorded=recorded, status="missing", message="no longer exists")
    try:
        found = _hash_again(data.path, data, store_dir)
    except DataError as error:
        gone = isinstance(error.__cause__, FileNotFoundError)  # vanished since the check
        status: CheckStatus = "missing" if gone else "error"
        return DataCheck(**fields, recorded=recorded, status=status, message=str(error))
    status = "ok" if found == recorded else "changed"
    return DataCheck(**fields, recorded=recorded, found=found, status=status)


def _hash_again(path: str, data: DataRecord, store_dir: Path | None) -> str:
    """``<algo>:<hash>`` of the data now, hashed as ``log_data`` hashed it.

    The store is passed as ``log_data`` passes it: its hash cache answers for
    unchanged files, and a store inside a hashed directory is left out of it.
    """
    from runjournal.capture.data import hash_data  # the write side's hashing, loaded on use

    mode, algo = data.mode or "full", data.algo or "sha256"
    found = hash_data(path, mode=mode, algo=algo, store=store_dir, label=data.name)
    return f"{found.algo}:{found.hash}"
