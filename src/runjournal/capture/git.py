"""The code a run ran: git state and the uncommitted diff, through the ``git`` executable.

The repository is the one holding the entry point (the script, or the file of
the ``-m`` module), else the one holding the working directory. Every call
has a timeout, runs with ``LC_ALL=C`` so messages can be read, with
``GIT_OPTIONAL_LOCKS=0`` so that it does not take the index lock (the user may
run git at the same moment; only ``git describe --dirty`` takes it for an
instant whatever the variable says), with no pager and with every network
transport forbidden. The independent calls run concurrently.

One ``git status --porcelain=v2 --branch`` gives the commit, the branch, and
the changed and untracked files; the work tree is found from the files
(:mod:`runjournal.capture._gitfiles`), and ``git rev-parse`` is asked only
for an unusual layout. Every capture runs a fresh ``git status``. What else
git would say is reused within a process only while everything it depends on
is unchanged (``docs/capture.md``, *Performance*): the remotes while the
config files are, ``git describe`` while HEAD, the tags, the packs, the
config and the changed files are. ``git diff`` runs only when status reports
a tracked change (the diff is empty otherwise), and a patch is never reused.
A git older than 2.11 (no ``--porcelain=v2``) is asked the older way.

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

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from runjournal.capture import _gitfiles
from runjournal.capture._gitfiles import Repository
from runjournal.capture._options import DEFAULT_PATCH_CAP, DEFAULT_TIMEOUT
from runjournal.capture._parts import Concurrently, describe_error
from runjournal.capture._redact import redact_url, redact_value
from runjournal.format import FORMAT_VERSION
from runjournal.typing import PathLike

__all__ = ["GIT_PATCH", "GitCapture", "capture_git", "clear_cache", "entry_directories"]

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
_STATUS = (
    "-c",
    "status.aheadBehind=false",  # git 2.22+: no walk counting commits ahead of the upstream
    "status",
    "--porcelain=v2",
    "--branch",
    "-z",
    "--untracked-files=normal",
)
_DESCRIBE = ("describe", "--tags", "--always", "--dirty")
_CONFIG = ("config", "-z", "--get-regexp", r"^remote\..*\.url$|^diff\.autorefreshindex$")
_USAGE_ERROR = 129
"""git's exit code for an option it does not know (``--porcelain=v2`` before git 2.11)."""
_NOT_A_REPO = "not a git repository"
_NO_HEAD = ("unknown revision", "ambiguous argument 'head'", "bad revision 'head'")
_FALSE = ("false", "no", "off", "0", "")
_READ_CHUNK = 1 << 16
_MEMO_LIMIT = 64
_GRACE = 1.0
"""Seconds a git process has to exit on SIGTERM before it is killed."""


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


class _Status(NamedTuple):
    """What ``git status --porcelain=v2 --branch -z`` says."""

    commit: str | None  # None: no commit yet
    branch: str | None  # None: detached
    dirty_files: list[str]
    untracked: list[str]
    changes: tuple[str, ...]  # the tracked-change entries as printed (what --dirty depends on)


class _Found(NamedTuple):
    """A work tree to capture: read from the files (``repo``), or told by git (``repo`` None)."""

    top: Path
    repo: Repository | None


class _Memo:
    """What one process learnt of one repository, reused only under an unchanged key.

    ``config`` is (key, remotes, auto-refresh); ``describe`` is (key, output);
    ``diffed`` says whether the last capture needed ``git diff``.
    """

    def __init__(self) -> None:
        self.config: tuple[tuple[Any, ...], dict[str, str], bool] | None = None
        self.describe: tuple[tuple[Any, ...], str | None] | None = None
        self.diffed: bool | None = None


_memos: dict[tuple[Any, ...], _Memo] = {}
_memos_lock = threading.Lock()
_legacy: set[str] = set()
"""git executables without ``status --porcelain=v2``."""


def clear_cache() -> None:
    """Forget what earlier captures of this process learnt (tests; never needed for correctness).

    Example:
        >>> clear_cache()
    """
    with _memos_lock:
        _memos.clear()
        _legacy.clear()


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
            found = _find(git, candidate)
            if found is not None:
                if executable in _legacy:
                    return _legacy_capture(git, found.top, patch_cap_bytes)
                return _capture_repository(git, found, patch_cap_bytes)
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


def _find(git: _Git, directory: Path) -> _Found | None:
    """The work tree holding ``directory``; None when there is none."""
    if not directory.is_dir():
        return None
    located = _gitfiles.locate(directory)
    if isinstance(located, Repository):
        return _Found(located.top, located)
    if located is _gitfiles.NOT_A_REPO:
        return None  # no .git anywhere above: git would say "not a git repository"
    head = git.head(directory)  # an unusual layout or setting: git itself says where
    return None if head is None else _Found(head.top, None)


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
        process = self.start(*args, cwd=cwd, stdin=subprocess.PIPE)
        return self.wait(process, args[0], stdin)

    def start(
        self, *args: str, cwd: Path, stdin: int = subprocess.DEVNULL
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command(*args),
            cwd=cwd,
            env=self.env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def wait(
        self, process: subprocess.Popen[bytes], name: str, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Its output and exit code; at the deadline it is stopped and ``_GitError`` raised."""
        try:
            out, err = process.communicate(stdin, timeout=self.remaining())
        except subprocess.TimeoutExpired:
            _stop(process)
            raise _GitError(f"git {name} timed out") from None
        except BaseException:
            _stop(process)
            raise
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

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


def _capture_repository(git: _Git, found: _Found, cap: int) -> GitCapture:
    """The state of a work tree: a fresh ``git status``, and what it leaves to ask.

    Status starts first and runs while the keys of the earlier answers are
    read; ``config`` and ``describe`` start beside it unless an earlier
    answer is still valid, ``diff`` beside it when the tree was dirty last
    time, else only if status reports a change.
    """
    top, repo = found.top, found.repo
    with _Calls(git, top) as calls:
        calls.start("status", *_STATUS)
        memo = _memo(git.executable, repo)
        config = describing = None
        if repo is not None:
            config = _gitfiles.config_key(repo, git.executable)
            describing = _gitfiles.describe_key(repo, git.executable, config=config)
        known = memo.config if memo is not None and config is not None else None
        if known is not None and known[0] != config:
            known = None
        if known is None:
            calls.start("remotes", *_CONFIG)
        previous = memo.describe if memo is not None else None
        if describing is None or previous is None or previous[0][0] != describing:
            calls.start("describe", *_DESCRIBE)
        speculative = None
        if memo is not None and memo.diffed:
            speculative = Concurrently({"patch": partial(git.diff, top, "HEAD", cap)})
        done = calls.finish("status")
        if done.returncode == _USAGE_ERROR:  # a git before 2.11: no porcelain v2
            _legacy.add(git.executable)
            return _legacy_capture(git, top, cap)
        if done.returncode != 0:
            raise _GitError(f"git status failed: {_first_line(done.stderr)}")
        status = _parse_status_v2(done.stdout)
        if status is None:  # no branch header: ask the older way
            return _legacy_capture(git, top, cap)
        remotes, refresh = known[1:] if known is not None else _remotes(calls, repo, memo, config)
        # Clean per status means an empty diff, unless diff.autoRefreshIndex=false shows
        # stat-only changes as empty diffs: then diff anyway, as before.
        needs_diff = bool(status.dirty_files) or not refresh
        commit = status.commit
        describe = None
        diff: tuple[bytes, bool, str] = (b"", False, "")
        if commit is not None:
            describe = _describe(git, calls, repo=repo, memo=memo, key=describing, status=status)
        speculated = _speculated(speculative, git, needed=needs_diff and commit is not None)
        if needs_diff and commit is None:  # no commit yet: the tracked files against the empty tree
            diff = git.diff(top, _empty_tree(git, top), cap)
        elif needs_diff:
            diff = speculated or git.diff(top, "HEAD", cap)
    if memo is not None:
        memo.diffed = needs_diff
    patch, truncated, diff_error = diff
    if diff_error:
        raise _GitError(f"git diff failed in {top}: {diff_error}")
    return _state(top, status, describe, remotes, patch, truncated, cap=cap)


def _remotes(
    calls: _Calls, repo: Repository | None, memo: _Memo | None, config: tuple[Any, ...] | None
) -> tuple[dict[str, str], bool]:
    """The remotes and ``diff.autoRefreshIndex`` from the config call; kept if nothing moved."""
    answer = calls.finish("remotes")
    remotes, refresh = _parse_remotes(answer), _auto_refresh(answer)
    if memo is None or repo is None or config is None:
        return remotes, refresh
    if _gitfiles.config_key(repo, calls.git.executable) == config:  # unchanged meanwhile
        memo.config = (config, remotes, refresh)
    return remotes, refresh


class _Calls:
    """git processes started at once, then read one by one; any still running at exit is killed.

    No thread per call: the processes run side by side while this thread
    reads each one's output in turn (``communicate`` drains both pipes, so a
    large output cannot block).
    """

    def __init__(self, git: _Git, cwd: Path) -> None:
        self.git = git
        self.cwd = cwd
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> _Calls:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A call no longer needed is waited for, not signalled: `git describe --dirty`
        # holds index.lock for a moment, and git can die on a signal between creating
        # the lock and arming its clean-up. Only one still running at the deadline is stopped.
        for name, process in self.running.items():
            with contextlib.suppress(_GitError):
                self.git.wait(process, name)
        self.running.clear()

    def __contains__(self, name: str) -> bool:
        return name in self.running

    def start(self, name: str, *args: str) -> None:
        self.running[name] = self.git.start(*args, cwd=self.cwd)

    def finish(self, name: str) -> subprocess.CompletedProcess[bytes]:
        return self.git.wait(self.running.pop(name), name)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End a git process that outlived the deadline: SIGTERM, then SIGKILL if it lingers.

    On SIGTERM git removes the lock files it holds (``git describe --dirty`` holds
    ``index.lock`` for a moment), which a SIGKILL would leave behind.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def _speculated(
    running: Concurrently[tuple[bytes, bool, str]] | None, git: _Git, *, needed: bool
) -> tuple[bytes, bool, str] | None:
    """The diff started beside status, if there was one; waited for even when not ``needed``.

    Waiting (it is the same diff git would run now) keeps capture's promise that its
    threads end before ``start()`` returns.
    """
    if running is None:
        return None
    outcome = running.wait(max(0.0, git.deadline - time.monotonic()) + 0.5)["patch"]
    if not needed:
        return None
    if not outcome.done:
        raise _GitError("git diff timed out")
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def _memo(executable: str, repo: Repository | None) -> _Memo | None:
    """This process's memo of a repository located from its files (None: nothing is kept)."""
    if repo is None:
        return None
    key = (repo, _gitfiles.git_environment(executable))
    with _memos_lock:
        memo = _memos.get(key)
        if memo is None:
            if len(_memos) >= _MEMO_LIMIT:
                _memos.clear()
            memo = _memos[key] = _Memo()
        return memo


def _describe(
    git: _Git,
    calls: _Calls,
    *,
    repo: Repository | None,
    memo: _Memo | None,
    key: tuple[Any, ...] | None,
    status: _Status,
) -> str | None:
    """``git describe --tags --always --dirty``: started beside status, reused, or asked now.

    An answer is kept only when the key read before the call is still the
    key after it (nothing moved meanwhile) and its ``-dirty`` agrees with
    status; it is reused only for the same commit, tracked changes, loose
    objects of the commit's prefix and :func:`_gitfiles.describe_key`.
    """
    assert status.commit is not None
    full = None
    if memo is not None and repo is not None and key is not None:
        objects = _gitfiles.objects_key(repo, status.commit)
        if objects is not None:
            full = (key, status.commit, status.changes, objects)
    if "describe" not in calls:
        previous = memo.describe if memo is not None else None
        if full is not None and previous is not None and previous[0] == full:
            return previous[1]
        calls.start("describe", *_DESCRIBE)
    described = _output(calls.finish("describe"))
    if full is not None and memo is not None and repo is not None:
        dirty = described is not None and described.endswith("-dirty")
        if dirty == bool(status.changes) and (
            _gitfiles.describe_key(repo, git.executable) == key
            and _gitfiles.objects_key(repo, status.commit) == full[3]
        ):
            memo.describe = (full, described)
    return described


def _state(  # noqa: PLR0917 - the parts of git.json, in its order
    top: Path,
    status: _Status,
    describe: str | None,
    remotes: dict[str, str],
    patch: bytes,
    truncated: bool,
    *,
    cap: int,
) -> GitCapture:
    """``git.json`` and the patch, from what was found."""
    commit, branch = status.commit, status.branch
    patch, redacted = _redact_patch(patch)
    info = {
        "format": FORMAT_VERSION,
        "status": "ok" if commit is not None else "no_commits",
        "commit": commit,
        "branch": branch,
        "detached": commit is not None and branch is None,
        "describe": describe,
        "remotes": remotes,
        "dirty": bool(status.dirty_files),
        "patch": {
            "file": GIT_PATCH,
            "bytes": None if truncated else len(patch),
            "sha256": None if truncated else _sha256(patch),
            "truncated": truncated,
            "cap_bytes": cap,
            "redacted_lines": redacted,
        },
        "untracked": status.untracked[:UNTRACKED_CAP],
        "untracked_truncated": len(status.untracked) > UNTRACKED_CAP,
        "root_name": top.name,
    }
    return GitCapture(info, patch, tuple(status.dirty_files))


def _legacy_capture(git: _Git, top: Path, cap: int) -> GitCapture:
    """The older way, for a git without porcelain v2 (loaded only then)."""
    from runjournal.capture._gitlegacy import capture_legacy

    return capture_legacy(git, top, cap)


def _sha256(data: bytes) -> str:
    """The hex SHA-256; a clean tree's empty patch without loading hashlib (a few ms)."""
    if not data:
        return _EMPTY_SHA256
    import hashlib

    return hashlib.sha256(data).hexdigest()


_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _parse_status_v2(stdout: bytes) -> _Status | None:
    """Commit, branch, changed and untracked files from ``status --porcelain=v2 --branch -z``.

    Changed entries are ``1 XY sub mH mI mW hH hI path``, ``2 ... Xscore
    path<NUL>orig`` (a rename or copy) and ``u XY sub m1 m2 m3 mW h1 h2 h3
    path`` (unmerged); ``? path`` is untracked. None without the branch header.
    """
    commit: str | None = None
    branch: str | None = None
    seen_oid = False
    dirty: list[str] = []
    untracked: list[str] = []
    changes: list[str] = []
    entries = iter(stdout.decode("utf-8", "replace").split("\0"))
    for entry in entries:
        kind = entry[:2]
        if kind == "# ":
            name, _, value = entry[2:].partition(" ")
            if name == "branch.oid":
                seen_oid, commit = True, None if value == "(initial)" else value
            elif name == "branch.head":
                branch = None if value == "(detached)" else value
        elif kind in ("1 ", "2 ", "u "):
            fields = {"1 ": 8, "2 ": 9, "u ": 10}[kind]
            parts = entry.split(" ", fields)
            if len(parts) <= fields:
                continue
            dirty.append(parts[fields])
            changes.append(entry)
            if kind == "2 ":
                changes.append(next(entries, ""))  # the original path of a rename or copy
        elif kind == "? ":
            untracked.append(entry[2:])
    if not seen_oid:
        return None
    return _Status(commit, branch, dirty, untracked, tuple(changes))


def _auto_refresh(done: subprocess.CompletedProcess[bytes]) -> bool:
    """``diff.autoRefreshIndex`` (default true): whether git diff hides stat-only changes."""
    value = True
    if done.returncode != 0:
        return value
    for entry in done.stdout.decode("utf-8", "replace").split("\0"):
        key, newline, text = entry.partition("\n")
        if key == "diff.autorefreshindex":
            value = not newline or text.strip().lower() not in _FALSE  # the last one wins
    return value


def _output(done: subprocess.CompletedProcess[bytes]) -> str | None:
    """The output of a call that may fail without harm (no tag to describe): None then."""
    return _text(done) or None if done.returncode == 0 else None


def _empty_tree(git: _Git, top: Path) -> str:
    """The id of the empty tree, asked of git (it differs between SHA-1 and SHA-256 repos)."""
    done = git.run("hash-object", "-t", "tree", "--stdin", cwd=top)
    if done.returncode != 0:
        raise _GitError(f"git hash-object failed: {_first_line(done.stderr)}")
    return _text(done)


def _text(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stdout.decode("utf-8", "replace").strip()


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
