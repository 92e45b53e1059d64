"""The code a run ran, read from ``git.json`` and ``git.patch`` (``docs/format.md``).

``git.json`` is small and read when :attr:`RunRecord.git` is first used (and by
``load_runs()`` for its ``git.*`` columns); the patch, which may be megabytes,
is read only by :meth:`RunRecord.git_patch`. A resume writes its own
``git.<seg>.json`` and ``git.<seg>.patch``; the latest segment's is shown.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from runjournal.format import SkippedLine, read_file
from runjournal.query._tolerant import validate_tolerantly

__all__ = ["GIT", "GIT_PATCH", "GitState", "PatchInfo", "parse_git", "read_patch"]

GIT = "git.json"
GIT_PATCH = "git.patch"

_LENIENT = ConfigDict(frozen=True, extra="ignore")


class PatchInfo(BaseModel):
    """What ``git.json`` says about ``git.patch``.

    Attributes:
        file: The patch file's name in the run directory.
        bytes: Its size.
        sha256: Its SHA-256, hex.
        truncated: Whether it exceeded ``cap_bytes``; then the file holds
            nothing and cannot be applied.
        cap_bytes: The size cap in force.
        redacted_lines: How many added lines hold ``<redacted>`` in place of a
            credential (the patch still applies).

    Example:
        >>> PatchInfo(file="git.patch", bytes=10, truncated=False).truncated
        False
    """

    model_config = _LENIENT

    file: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    truncated: bool | None = None
    cap_bytes: int | None = None
    redacted_lines: int | None = None


class GitState(BaseModel):
    """The state of the run's git repository at ``start()``.

    Attributes:
        status: ``ok``, ``no_commits``, ``not_a_repo``, ``no_git`` or ``error``.
        message: What went wrong, for ``error``.
        commit: The ``HEAD`` commit.
        branch: Its branch; None when detached.
        detached: Whether ``HEAD`` was detached.
        describe: ``git describe --tags --always --dirty``.
        remotes: Remote name to URL, credentials removed.
        dirty: Whether tracked files differed from ``HEAD``.
        patch: The patch file's details, when there is one.
        untracked: Untracked, not ignored file names (at most 1,000).
        untracked_truncated: Whether there were more.
        root_name: The name of the repository's top directory.

    Example:
        >>> state = GitState.model_validate({"status": "ok", "commit": "9fceb02", "future": 1})
        >>> state.commit, state.dirty
        ('9fceb02', None)
    """

    model_config = _LENIENT

    format: int | None = None
    status: str | None = None
    message: str | None = None
    commit: str | None = None
    branch: str | None = None
    detached: bool | None = None
    describe: str | None = None
    remotes: dict[str, str] | None = None
    dirty: bool | None = None
    patch: PatchInfo | None = None
    untracked: list[str] | None = None
    untracked_truncated: bool | None = None
    root_name: str | None = None

    @property
    def has_patch(self) -> bool:
        """Whether the run recorded changes that ``git apply`` can restore.

        The uncommitted changes of a dirty tree, or in a repository without a
        commit the tracked files themselves. A clean tree's patch is empty; a
        truncated one holds nothing.

        Example:
            >>> GitState(dirty=True, patch=PatchInfo(file="git.patch", truncated=True)).has_patch
            False
        """
        patch = self.patch
        if patch is None or patch.truncated:
            return False
        return patch.bytes > 0 if patch.bytes is not None else bool(self.dirty)


def parse_git(
    document: dict[str, Any], file_name: str = GIT
) -> tuple[GitState | None, list[SkippedLine]]:
    """The :class:`GitState` of a decoded ``git.json``, with a problem for each field dropped.

    Example:
        >>> state, problems = parse_git({"status": "ok", "dirty": "very"})
        >>> state.dirty, [str(problem) for problem in problems]
        (None, ["git.json:0: field 'dirty' is not valid (bool_parsing); ignored"])
    """
    state, reasons = validate_tolerantly(GitState, document)
    return state, [SkippedLine(file_name, 0, reason) for reason in reasons]


def read_patch(run_dir: Path, state: GitState | None) -> tuple[bytes | None, list[SkippedLine]]:
    """The bytes of the run's ``git.patch``, checked against the recorded SHA-256.

    None when the run recorded no patch (clean tree, no git) or the file is
    missing or unreadable (then with a problem). A patch whose hash differs
    from the one recorded is returned with a problem: it was changed after
    the run.

    Example:
        >>> read_patch(Path("no-such-run"), None)
        (None, [])
    """
    if state is None or state.patch is None:
        return None, []
    name = state.patch.file or GIT_PATCH
    if Path(name).name != name:  # a name is never a path: nothing outside the run directory
        return None, [SkippedLine(GIT, 0, f"patch file name {name!r} is not a plain name")]
    try:
        data = read_file(run_dir / name)
    except FileNotFoundError:
        return None, [SkippedLine(name, 0, "recorded in git.json but missing")]
    except OSError as error:
        return None, [SkippedLine(name, 0, f"cannot read the file: {error.strerror or error}")]
    recorded = state.patch.sha256
    if recorded and hashlib.sha256(data).hexdigest() != recorded.lower():
        reason = "its SHA-256 differs from the one in git.json: it was changed after the run"
        return data, [SkippedLine(name, 0, reason)]
    return data, []
