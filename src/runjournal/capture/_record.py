"""The capture at ``start()``: run every part under one deadline and write the files once.

Segment 0 (a new run) writes ``environment.json``, ``git.json`` and
``git.patch``; the resume that starts segment *n* writes
``environment.<n>.json``, ``git.<n>.json`` and ``git.<n>.patch``, since a
requeued job may run on another node and with fixed code. Nothing here
raises into ``start()`` except :func:`check_clean_git`, whose purpose is to.

Example:
    >>> segment_file("git.json", 0), segment_file("git.patch", 2)
    ('git.json', 'git.2.patch')
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from runjournal.capture._options import CaptureOptions
from runjournal.capture._parts import describe_error, run_parts
from runjournal.capture.environment import environment_parts, order_errors, snapshot
from runjournal.capture.git import GIT_PATCH, GitCapture, capture_git
from runjournal.errors import GitStateError, StoreWriteError
from runjournal.format import FORMAT_VERSION
from runjournal.store import write_once

__all__ = ["ENVIRONMENT", "GIT", "capture_run", "check_clean_git", "segment_file"]

ENVIRONMENT = "environment.json"
GIT = "git.json"
_SHOWN_FILES = 10


def segment_file(name: str, segment: int) -> str:
    """The name of a once-written file for a segment: ``git.json``, ``git.1.json``, ...

    Example:
        >>> segment_file("environment.json", 3)
        'environment.3.json'
    """
    if segment == 0:
        return name
    stem, _, suffix = name.rpartition(".")
    return f"{stem}.{segment}.{suffix}"


def check_clean_git(options: CaptureOptions) -> GitCapture:
    """The git state, if the working tree is clean; for ``start(require_clean_git=True)``.

    Untracked files do not make a tree dirty (they are listed in ``git.json``).

    Raises:
        GitStateError: tracked files differ from ``HEAD``, or there is no
            git state to check (no git, not a repository, git failed).

    Example:
        >>> import subprocess
        >>> _ = subprocess.run(["git", "init", "-q", "."], check=True)
        >>> check_clean_git(CaptureOptions(git_dir=".")).status
        'no_commits'
    """
    state = capture_git(
        options.git_dir, patch_cap_bytes=options.patch_cap_bytes, timeout=options.timeout
    )
    if state.status not in ("ok", "no_commits"):
        why = state.info.get("message") or state.status.replace("_", " ")
        raise GitStateError(
            f"require_clean_git=True, but the git state cannot be checked ({why});"
            " run from a git working tree, or start without require_clean_git",
            status=state.status,
            dirty_files=[],
        )
    if state.dirty_files:
        shown = ", ".join(state.dirty_files[:_SHOWN_FILES])
        more = len(state.dirty_files) - _SHOWN_FILES
        raise GitStateError(
            f"require_clean_git=True, but {len(state.dirty_files)} tracked file(s) have"
            f" uncommitted changes: {shown}{f' and {more} more' if more > 0 else ''};"
            " commit or stash them first",
            status=state.status,
            dirty_files=list(state.dirty_files),
        )
    return state


def capture_run(
    run_dir: Path, segment: int, options: CaptureOptions, *, git: GitCapture | None = None
) -> list[dict[str, str]]:
    """Capture the environment and git state of a run's segment and write their files.

    Args:
        run_dir: The run directory.
        segment: The segment being started (0) or resumed (1, 2, ...).
        options: What to capture.
        git: The git state when it was captured already (by :func:`check_clean_git`).

    Returns:
        ``{"part", "message"}`` for every part that failed, timed out, or
        could not be written; never raises.
    """
    started = time.monotonic()
    threaded, inline = environment_parts(options)
    if options.git and git is None:
        # First: its thread mostly waits for git processes, which then run while the
        # other parts' threads (listing packages, the first time) hold the GIL.
        threaded = {
            "git": partial(
                capture_git,
                options.git_dir,
                patch_cap_bytes=options.patch_cap_bytes,
                timeout=options.timeout,
            ),
            **threaded,
        }
    values, errors = run_parts(threaded, timeout=options.timeout, inline=inline)
    errors = order_errors(errors)
    if options.git:
        git = git or values.get("git") or _failed_git(errors)
        if git.status == "error" and not any(error["part"] == "git" for error in errors):
            errors.append({"part": "git", "message": str(git.info.get("message"))})
    document = snapshot(values, errors, started)
    document = {"format": document.pop("format"), "seg": segment, **document}
    problems = _write(run_dir / segment_file(ENVIRONMENT, segment), document, "environment")
    if git is not None:
        problems += _write_git(run_dir, segment, git)
    return errors + problems


def _failed_git(errors: list[dict[str, str]]) -> GitCapture:
    message = next((error["message"] for error in errors if error["part"] == "git"), "failed")
    return GitCapture({"format": FORMAT_VERSION, "status": "error", "message": message}, None, ())


def _write_git(run_dir: Path, segment: int, git: GitCapture) -> list[dict[str, str]]:
    info = git.info
    problems: list[dict[str, str]] = []
    if git.patch is not None and isinstance(info.get("patch"), dict):
        patch_name = segment_file(GIT_PATCH, segment)
        info = {**info, "patch": {**info["patch"], "file": patch_name}}
        problems = _write_bytes(run_dir / patch_name, git.patch, "git")
        if problems:
            return problems  # git.json never names a patch that is not there
    return problems + _write(run_dir / segment_file(GIT, segment), info, "git")


def _write(path: Path, document: dict[str, Any], part: str) -> list[dict[str, str]]:
    # One line, like every other JSON file of the format (`jq . environment.json` to read).
    try:
        data = orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:  # a lone surrogate from an undecodable argv or path
        data = orjson.dumps(_valid_text(document), option=orjson.OPT_APPEND_NEWLINE)
    return _write_bytes(path, data, part)


def _write_bytes(path: Path, data: bytes, part: str) -> list[dict[str, str]]:
    try:
        write_once(path, data, exist_ok=True)
    except (StoreWriteError, OSError) as error:
        return [{"part": part, "message": f"cannot write {path.name}: {describe_error(error)}"}]
    return []


def _valid_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_valid_text(key): _valid_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_valid_text(item) for item in value]
    return value
