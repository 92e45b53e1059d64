"""The text of ``runjournal show --reproduce`` and ``runjournal verify-data``.

A recipe is printed as a commented shell script: the commands can be copied
as they are, everything else is a ``#`` comment. Stored strings pass through
:func:`safe` and every path or argument is shell-quoted, so a recipe never
carries an escape sequence or an unquoted word from a store to a shell.
"""

from __future__ import annotations

import shlex
from collections import Counter
from typing import TYPE_CHECKING

from runjournal._terminal import format_time, safe, table
from runjournal.query._environment import Command

if TYPE_CHECKING:
    from runjournal.query._data import DataRecord
    from runjournal.reproduce import DataVerification, Recipe

__all__ = ["command_line", "render_recipe", "render_verification"]

_HASH_CHARS = 16
_REQUIREMENTS = "requirements.txt"
_STATUSES = ("ok", "changed", "missing", "error", "skipped")


def render_recipe(recipe: Recipe, requirements_file: str | None = None) -> str:
    """The recipe as a commented shell script, in four steps: code, packages, data, command.

    Example:
        >>> import datetime as dt
        >>> from runjournal.compare import RunRef
        >>> from runjournal.reproduce import Recipe
        >>> recipe = Recipe(run=RunRef(id="r1", name="x"), store="/s",
        ...                 start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        >>> print(render_recipe(recipe).splitlines()[3])
        # 1. Code: no git state was recorded; the code cannot be checked out
    """
    title = f"{recipe.run.id} ({safe(recipe.run.name)})" if recipe.run.name else recipe.run.id
    host = f" on {safe(recipe.host)}" if recipe.host else ""
    blocks = [
        f"# Reproduce run {title}\n# started {format_time(recipe.start_time, seconds=True)}{host}",
        _code(recipe),
        _packages(recipe, requirements_file),
        _data(recipe),
        _command(recipe),
    ]
    if recipe.notes:
        blocks.append("\n".join(f"# note: {safe(note)}" for note in recipe.notes))
    return "\n\n".join(blocks)


def command_line(command: Command | None) -> str | None:
    """The shell line that starts the process again: ``python <script or -m module> <args>``.

    Example:
        >>> command_line(Command(argv=["/p/train.py", "-m", "x"], module="pkg.train"))
        'python -m pkg.train -m x'
        >>> command_line(Command(argv=["-c"])) is None
        True
    """
    if command is None or not command.argv:
        return None
    argv = command.argv
    if command.module:
        words = ["python", "-m", command.module, *argv[1:]]
    elif argv[0] in ("-c", ""):  # python -c or an interactive session: the code was not a file
        return None
    else:
        words = ["python", *argv]
    return safe(shlex.join(words))


_NO_CODE = {
    "not_a_repo": "the run was not in a git repository",
    "no_git": "git was not installed",
    "no_commits": "the repository had no commit yet",
}


def _code(recipe: Recipe) -> str:
    git = recipe.git
    if git is not None and git.status == "no_commits" and recipe.patch_path:
        patch = shlex.quote(safe(recipe.patch_path))
        return (
            "# 1. Code: the repository had no commit yet; the patch holds the tracked files\n"
            f"git init && git apply {patch}    # in an empty directory"
        )
    if git is None or not git.commit:
        if git is None:
            reason = "no git state was recorded"
        else:
            status = git.status or "unknown"
            reason = _NO_CODE.get(status, f"git state {safe(status)}: {safe(git.message or '')}")
        return f"# 1. Code: {reason.rstrip(': ')}; the code cannot be checked out"
    origin = (git.remotes or {}).get("origin") or next(iter((git.remotes or {}).values()), None)
    where = ", ".join(
        part
        for part in (
            f"repository {safe(git.root_name)}" if git.root_name else "",
            f"origin {safe(origin)}" if origin else "",
        )
        if part
    )
    lines = [f"# 1. Code{': ' + where if where else ''}"]
    branch = f"    # branch {safe(git.branch)}" if git.branch else "    # detached HEAD"
    lines.append(f"git checkout {shlex.quote(safe(git.commit))}{branch}")
    if recipe.patch_path:
        lines.append(f"git apply {shlex.quote(safe(recipe.patch_path))}    # uncommitted changes")
    elif not git.dirty:
        lines.append("# the working tree was clean")
    return "\n".join(lines)


def _packages(recipe: Recipe, requirements_file: str | None) -> str:
    python = f"Python {recipe.python}" if recipe.python else None
    about = " on ".join(part for part in (python, recipe.platform) if part)
    if recipe.packages is None:
        return f"# 2. Packages: none were recorded{'; ' + safe(about) if about else ''}"
    lines = [f"# 2. Packages: {len(recipe.packages)} pinned{'; ' + safe(about) if about else ''}"]
    target = requirements_file or _REQUIREMENTS
    lines.append(f"python -m pip install -r {shlex.quote(target)}")
    if requirements_file is None:
        lines.append(
            f"# write it with: runjournal {_store_option(recipe)}show {recipe.run.id}"
            f" --reproduce --requirements {_REQUIREMENTS}"
        )
    lines += [f"# not pinned: {safe(pin)} ({safe(why)})" for pin, why in recipe.not_pinned.items()]
    return "\n".join(lines)


def _data(recipe: Recipe) -> str:
    if not recipe.data:
        return "# 3. Data: none was recorded"
    lines = ["# 3. Data: check that it is unchanged"]
    lines.append(f"runjournal {_store_option(recipe)}verify-data {recipe.run.id}")
    rows = [_data_row(record) for record in recipe.data]
    lines += [f"#   {line}" for line in table(rows).split("\n")]
    return "\n".join(lines)


def _store_option(recipe: Recipe) -> str:
    return f"--store {shlex.quote(safe(recipe.store))} " if recipe.store else ""


def _data_row(record: DataRecord) -> list[str]:
    return [
        safe(record.name),
        safe(record.role or "-"),
        safe(_short(record.digest)),
        safe(record.path or f"({record.kind or 'no path'})"),
    ]


def _command(recipe: Recipe) -> str:
    line = command_line(recipe.command)
    command = recipe.command
    if recipe.notebook:
        return f"# 4. Command: the run started in the notebook {safe(recipe.notebook)}"
    if line is None or command is None:
        return "# 4. Command: none was recorded"
    lines = ["# 4. Command"]
    if command.cwd:
        lines.append(f"cd {shlex.quote(safe(command.cwd))}")
    lines.append(line)
    if command.executable:
        lines.append(f"# the run's Python was {safe(command.executable)}")
    return "\n".join(lines)


def render_verification(result: DataVerification) -> str:
    """The checks of ``verify-data`` as text: a summary line, then one row per data name.

    Example:
        >>> from runjournal.compare import RunRef
        >>> from runjournal.reproduce import DataCheck, DataVerification
        >>> check = DataCheck(name="train", path="/d/train", status="missing",
        ...                   message="no longer exists")
        >>> print(render_verification(DataVerification(run=RunRef(id="r1", name=""),
        ...                                                checks=[check])))
        run r1: 1 missing
          missing  train  /d/train  no longer exists
    """
    title = f"run {result.run.id}" + (f" ({safe(result.run.name)})" if result.run.name else "")
    if not result.checks:
        return f"{title}: no data was recorded"
    counts: Counter[str] = Counter(check.status for check in result.checks)
    summary = ", ".join(f"{counts[status]} {status}" for status in _STATUSES if counts[status])
    rows = [
        [
            check.status,
            safe(check.name),
            safe(check.path or "-"),
            safe(_detail(check.recorded, check.found, check.message)),
        ]
        for check in result.checks
    ]
    body = "\n".join(f"  {line}" for line in table(rows).split("\n"))
    return f"{title}: {summary}\n{body}"


def _detail(recorded: str | None, found: str | None, message: str | None) -> str:
    if message:
        return message
    if found is not None and found != recorded:
        return f"recorded {_short(recorded)}, now {_short(found)}"
    return _short(recorded)


def _short(digest: str | None) -> str:
    if digest is None:
        return "-"
    algo, colon, value = digest.rpartition(":")
    return f"{algo}{colon}{value[:_HASH_CHARS]}"
