r"""git capture the way a git before 2.11 allows it: ``rev-parse``, porcelain v1, every call.

Loaded only for such a git (``git status --porcelain=v2`` refused), so that
the usual path does not pay for it. Nothing is reused between captures here.

Example:
    >>> import subprocess
    >>> done = subprocess.CompletedProcess([], 0, b" M a.py\0?? new.txt\0", b"")
    >>> parse_status(done)
    (['a.py'], ['new.txt'])
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from runjournal.capture._parts import run_concurrently
from runjournal.capture.git import (
    _CONFIG,
    _DESCRIBE,
    GitCapture,
    _empty_tree,
    _first_line,
    _Git,
    _GitError,
    _output,
    _parse_remotes,
    _state,
    _Status,
)

__all__ = ["capture_legacy", "parse_status"]

_LEGACY_STATUS = ("status", "--porcelain", "-z", "--untracked-files=normal")


def capture_legacy(git: _Git, top: Path, cap: int) -> GitCapture:
    """The state as git before 2.11 can tell it: ``rev-parse``, then porcelain v1 status."""
    head = git.head(top)
    if head is None:
        raise _GitError(f"git rev-parse found no work tree at {top}")
    commit = head.commit
    run = partial(git.run, cwd=top)
    calls: dict[str, Callable[[], Any]] = {
        "status": partial(run, *_LEGACY_STATUS),
        "remotes": partial(run, *_CONFIG),
    }
    if commit is not None:
        calls["describe"] = partial(run, *_DESCRIBE)
        calls["patch"] = partial(git.diff, top, "HEAD", cap)
    else:  # no commit yet: the branch to be, and the tracked files against the empty tree
        calls["branch"] = partial(run, "symbolic-ref", "-q", "--short", "HEAD")
        calls["patch"] = lambda: git.diff(top, _empty_tree(git, top), cap)
    results = _all_or_fail(calls, git)
    done: subprocess.CompletedProcess[bytes] = results["status"]
    if done.returncode != 0:
        raise _GitError(f"git status failed: {_first_line(done.stderr)}")
    patch, truncated, diff_error = results["patch"]
    if diff_error:
        raise _GitError(f"git diff failed in {top}: {diff_error}")
    dirty_files, untracked = parse_status(done)
    branch = head.branch if commit is not None else _output(results["branch"])
    describe = _output(results["describe"]) if commit is not None else None
    status = _Status(commit, branch, dirty_files, untracked, ())
    remotes = _parse_remotes(results["remotes"])
    return _state(top, status, describe, remotes, patch, truncated, cap=cap)


def _all_or_fail(calls: dict[str, Callable[[], Any]], git: _Git) -> dict[str, Any]:
    """Run the calls together (``status`` in this thread); raise if one failed to run."""
    outcomes = run_concurrently(calls, timeout=git.remaining() + 0.5, here="status")
    results: dict[str, Any] = {}
    for name, outcome in outcomes.items():
        if not outcome.done:
            raise _GitError(f"git {name} timed out")
        if outcome.error is not None:
            raise outcome.error
        results[name] = outcome.value
    return results


def parse_status(done: subprocess.CompletedProcess[bytes]) -> tuple[list[str], list[str]]:
    """Tracked files that differ from HEAD, and untracked names, from ``status --porcelain -z``."""
    dirty: list[str] = []
    untracked: list[str] = []
    entries = iter(done.stdout.decode("utf-8", "replace").split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code == "??":
            untracked.append(path)
        elif code != "!!":
            dirty.append(path)
            if "R" in code or "C" in code:
                next(entries, None)  # the original path of a rename or copy
    return dirty, untracked
