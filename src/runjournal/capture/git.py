"""The code a run ran: git state and the uncommitted diff, through the ``git`` executable.

The repository is the one holding the entry point (the script, or the file of
the ``-m`` module), else the one holding the working directory. Every call
has a timeout, runs with ``LC_ALL=C`` so messages can be read, with
``GIT_OPTIONAL_LOCKS=0`` so that it never takes the index lock (the user may
run git at the same moment), with no pager and with every network transport
forbidden. The independent calls run concurrently.

``git.patch`` is ``git diff HEAD --binary`` (staged and unstaged changes of
tracked files): ``git checkout <commit> && git apply git.patch`` restores the
tracked tree. In a repository without a commit yet, the patch is the diff of
the tracked files against the empty tree, so ``git apply`` in an empty
directory restores them.

Example:
    >>> from runjournal.capture import capture_git
    >>> capture_git(".").info["status"] in ("ok", "no_commits", "not_a_repo", "no_git", "error")
    True
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from runjournal.capture._options import DEFAULT_PATCH_CAP, DEFAULT_TIMEOUT
from runjournal.capture._parts import describe_error, run_concurrently
from runjournal.capture._redact import redact_url, redact_value
from runjournal.format import FORMAT_VERSION
from runjournal.typing import PathLike

__all__ = ["GIT_PATCH", "GitCapture", "capture_git", "entry_directories"]

GIT_PATCH = "git.patch"
UNTRACKED_CAP = 1000
"""Untracked file names recorded at most."""

_GLOBAL_ARGS = (
    "--no-pager",
    "-c",
    "core.quotepath=off",  # paths as UTF-8, not octal escapes
    "-c",
    "color.ui=never",
    "-c",
    "protocol.allow=never",  # no transport at all: capture never touches the network
)
_ENV = {
    "LC_ALL": "C",  # English messages, which we match
    "GIT_OPTIONAL_LOCKS": "0",  # never take the index lock for a status refresh
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PAGER": "cat",
    "GIT_NO_LAZY_FETCH": "1",  # a partial clone must not fetch missing objects
}
_DIFF_ARGS = (
    "--binary",
    "--no-color",
    "--no-ext-diff",  # a user's diff.external would not give an applicable patch
    "--no-textconv",
    "--src-prefix=a/",  # diff.noprefix or mnemonicPrefix would break `git apply`
    "--dst-prefix=b/",
    "--submodule=short",
)
_NOT_A_REPO = "not a git repository"
_NO_HEAD = ("unknown revision", "ambiguous argument 'head'", "bad revision 'head'")
_READ_CHUNK = 1 << 16


class GitCapture(NamedTuple):
    """What :func:`capture_git` found.

    Attributes:
        info: The content of ``git.json``.
        patch: The content of ``git.patch`` (empty when clean or truncated);
            None when there is no repository to diff.
        dirty_files: Tracked files that differ from ``HEAD``, as git names them.

    Example:
        >>> GitCapture({"status": "no_git"}, None, ()).status
        'no_git'
    """

    info: dict[str, Any]
    patch: bytes | None
    dirty_files: tuple[str, ...]

    @property
    def status(self) -> str:
        """``ok``, ``no_commits``, ``not_a_repo``, ``no_git`` or ``error``."""
        return str(self.info["status"])


class _GitError(Exception):
    """A git call failed in a way that makes the state unknown (status ``error``)."""


class _Head(NamedTuple):
    """Where a work tree is and what its HEAD is: commit None when there is none yet."""

    top: Path
    commit: str | None
    branch: str | None


def capture_git(
    directory: PathLike | None = None,
    *,
    patch_cap_bytes: int = DEFAULT_PATCH_CAP,
    timeout: float = DEFAULT_TIMEOUT,
) -> GitCapture:
    """The git state of the repository holding ``directory`` (default: the entry point's).

    Never raises: no git, no repository or a failing git are statuses.

    Args:
        directory: Where to look; by default the entry point's directory,
            then the working directory (see :func:`entry_directories`).
        patch_cap_bytes: The largest patch kept; a larger one is truncated to nothing.
        timeout: Seconds all git calls may take together.

    Example:
        >>> capture_git("/").info["status"] in ("not_a_repo", "no_git", "error")
        True
    """
    executable = shutil.which("git")
    if executable is None:
        return _only("no_git")
    candidates = [Path(directory)] if directory is not None else entry_directories()
    git = _Git(executable, time.monotonic() + timeout)
    try:
        for candidate in candidates:
            head = git.head(candidate)
            if head is not None:
                return _capture_repository(git, head, patch_cap_bytes)
    except (_GitError, OSError, subprocess.SubprocessError) as error:
        message = str(error) if isinstance(error, _GitError) else describe_error(error)
        return _only("error", message=message)
    return _only("not_a_repo")


def entry_directories() -> list[Path]:
    """Where to look for the repository: the entry point's directory, then the working one.

    The entry point is the running script, or the file of the ``-m`` module
    (so ``python -m mypkg.train`` finds the repository of ``mypkg``).

    Example:
        >>> entry_directories()[-1] == Path.cwd()
        True
    """
    directories: list[Path] = []
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    origin = getattr(spec, "origin", None) if spec is not None else getattr(main, "__file__", None)
    if isinstance(origin, str) and Path(origin).is_file():
        directories.append(Path(origin).resolve().parent)
    try:
        cwd = Path.cwd()
    except OSError:
        return directories  # the working directory was deleted
    if cwd not in directories:
        directories.append(cwd)
    return directories


def _only(status: str, **fields: Any) -> GitCapture:
    return GitCapture({"format": FORMAT_VERSION, "status": status, **fields}, None, ())


class _Git:
    """The git executable, its environment and the deadline shared by all calls."""

    def __init__(self, executable: str, deadline: float) -> None:
        self.executable = executable
        self.deadline = deadline
        self.env = {**os.environ, **_ENV}

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _GitError("git timed out")
        return left

    def command(self, *args: str) -> list[str]:
        return [self.executable, *_GLOBAL_ARGS, *args]

    def run(self, *args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                self.command(*args),
                cwd=cwd,
                env=self.env,
                input=stdin,
                capture_output=True,
                timeout=self.remaining(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _GitError(f"git {args[0]} timed out") from None

    def head(self, directory: Path) -> _Head | None:
        """The work tree holding ``directory`` and its HEAD; None when there is none.

        One call gives the top directory, the commit and the branch (``HEAD``
        when detached); an unborn HEAD (no commit yet) fails after printing
        the top directory.
        """
        if not directory.is_dir():
            return None
        done = self.run(
            "rev-parse", "--show-toplevel", "HEAD", "--abbrev-ref", "HEAD", "--", cwd=directory
        )
        lines = done.stdout.decode("utf-8", "surrogateescape").splitlines()
        message = _first_line(done.stderr)
        if done.returncode == 0 and len(lines) >= 3:
            branch = None if lines[2] == "HEAD" else lines[2]
            return _Head(Path(lines[0]), lines[1], branch)
        if lines and any(marker in message.lower() for marker in _NO_HEAD):
            return _Head(Path(lines[0]), None, None)
        if _NOT_A_REPO not in message.lower():
            raise _GitError(f"git rev-parse failed in {directory}: {message}")
        broken = _nearest_git_entry(directory)
        if broken is not None:  # e.g. a corrupt .git/HEAD: git walks past it
            raise _GitError(f"{broken} exists but git cannot read it ({message})")
        return None

    def diff(self, cwd: Path, base: str, cap: int) -> tuple[bytes, bool, str]:
        """``git diff <base>`` kept up to ``cap`` bytes; (patch, truncated, stderr).

        The process is killed once the cap is passed, so a huge dirty binary
        costs no more than the cap.
        """
        import tempfile  # only here: the rest of capture does without it

        with (
            tempfile.TemporaryFile() as errors,
            subprocess.Popen(
                self.command("diff", base, *_DIFF_ARGS),
                cwd=cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,  # a file: a chatty stderr can never block the read below
            ) as process,
        ):
            watchdog = threading.Timer(self.remaining(), process.kill)
            watchdog.daemon = True
            watchdog.start()
            try:
                patch, truncated = _read_capped(process, cap)
            finally:
                watchdog.cancel()
                if process.poll() is None:
                    process.kill()
            code = process.wait()
            errors.seek(0)
            message = _first_line(errors.read())
        if truncated:
            return b"", True, ""
        if code not in (0, 1):
            return b"", False, message or f"git diff exited with {code}"
        return patch, False, ""


def _read_capped(process: subprocess.Popen[bytes], cap: int) -> tuple[bytes, bool]:
    assert process.stdout is not None
    chunks: list[bytes] = []
    size = 0
    while chunk := process.stdout.read(_READ_CHUNK):
        size += len(chunk)
        if size > cap:
            return b"", True
        chunks.append(chunk)
    return b"".join(chunks), False


def _first_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    fatal = [line for line in lines if line.lower().startswith(("fatal", "error"))]
    return (fatal or lines or [""])[0]


def _nearest_git_entry(directory: Path) -> Path | None:
    for folder in (directory.resolve(), *directory.resolve().parents):
        if (folder / ".git").exists():
            return folder / ".git"
    return None


def _capture_repository(git: _Git, head: _Head, cap: int) -> GitCapture:
    top, commit = head.top, head.commit
    run = partial(git.run, cwd=top)
    calls: dict[str, Callable[[], Any]] = {
        "status": partial(run, "status", "--porcelain", "-z", "--untracked-files=normal"),
        "remotes": partial(run, "config", "-z", "--get-regexp", r"^remote\..*\.url$"),
    }
    if commit is not None:
        calls["describe"] = partial(run, "describe", "--tags", "--always", "--dirty")
        calls["patch"] = partial(git.diff, top, "HEAD", cap)
    else:  # no commit yet: the branch to be, and the tracked files against the empty tree
        calls["branch"] = partial(run, "symbolic-ref", "-q", "--short", "HEAD")
        calls["patch"] = lambda: git.diff(top, _empty_tree(git, top), cap)
    results = _all_or_fail(calls, git)
    patch, truncated, diff_error = results["patch"]
    if diff_error:
        raise _GitError(f"git diff failed in {top}: {diff_error}")
    dirty_files, untracked = _parse_status(results["status"])
    branch = head.branch if commit is not None else _output(results["branch"])
    patch, redacted = _redact_patch(patch)
    info = {
        "format": FORMAT_VERSION,
        "status": "ok" if commit is not None else "no_commits",
        "commit": commit,
        "branch": branch,
        "detached": commit is not None and branch is None,
        "describe": _output(results["describe"]) if commit is not None else None,
        "remotes": _parse_remotes(results["remotes"]),
        "dirty": bool(dirty_files),
        "patch": {
            "file": GIT_PATCH,
            "bytes": None if truncated else len(patch),
            "sha256": None if truncated else hashlib.sha256(patch).hexdigest(),
            "truncated": truncated,
            "cap_bytes": cap,
            "redacted_lines": redacted,
        },
        "untracked": untracked[:UNTRACKED_CAP],
        "untracked_truncated": len(untracked) > UNTRACKED_CAP,
        "root_name": top.name,
    }
    return GitCapture(info, patch, tuple(dirty_files))


def _output(done: subprocess.CompletedProcess[bytes]) -> str | None:
    """The output of a call that may fail without harm (no tag to describe): None then."""
    return _text(done) or None if done.returncode == 0 else None


def _all_or_fail(calls: dict[str, Callable[[], Any]], git: _Git) -> dict[str, Any]:
    outcomes = run_concurrently(calls, timeout=git.remaining() + 0.5)
    results: dict[str, Any] = {}
    for name, outcome in outcomes.items():
        if not outcome.done:
            raise _GitError(f"git {name} timed out")
        if outcome.error is not None:
            raise outcome.error
        results[name] = outcome.value
    status: subprocess.CompletedProcess[bytes] = results["status"]
    if status.returncode != 0:
        raise _GitError(f"git status failed: {_first_line(status.stderr)}")
    return results


def _empty_tree(git: _Git, top: Path) -> str:
    """The id of the empty tree, asked of git (it differs between SHA-1 and SHA-256 repos)."""
    done = git.run("hash-object", "-t", "tree", "--stdin", cwd=top)
    if done.returncode != 0:
        raise _GitError(f"git hash-object failed: {_first_line(done.stderr)}")
    return _text(done)


def _text(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stdout.decode("utf-8", "replace").strip()


def _parse_status(done: subprocess.CompletedProcess[bytes]) -> tuple[list[str], list[str]]:
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


def _parse_remotes(done: subprocess.CompletedProcess[bytes]) -> dict[str, str]:
    remotes: dict[str, str] = {}
    if done.returncode != 0:
        return remotes  # 1: no remote configured
    for entry in done.stdout.decode("utf-8", "replace").split("\0"):
        key, _, url = entry.partition("\n")
        if key.startswith("remote.") and key.endswith(".url"):
            remotes.setdefault(key[len("remote.") : -len(".url")], redact_value(redact_url(url)))
    return remotes


_SECRET_HINT = re.compile(rb"://[^/\s@]+@|gh[pousr]_|github_pat_|glpat-|hf_|sk-|xox|AKIA|ASIA|AIza")


def _redact_patch(patch: bytes) -> tuple[bytes, int]:
    """Cut credentials out of the lines a patch adds; (patch, number of lines changed).

    Only added lines are touched (context and removed lines must match the
    commit for ``git apply``), so the patch still applies; the restored file
    then holds ``<redacted>`` where the credential was.
    """
    if not _SECRET_HINT.search(patch):
        return patch, 0
    lines = patch.split(b"\n")
    changed = 0
    for index, line in enumerate(lines):
        if not line.startswith(b"+") or line.startswith(b"+++ "):
            continue
        text = line.decode("utf-8", "surrogateescape")
        clean = redact_value(text)
        if clean != text:
            lines[index] = clean.encode("utf-8", "surrogateescape")
            changed += 1
    return (b"\n".join(lines), changed) if changed else (patch, 0)
