"""The repository as files: where it is, and fingerprints of what git's answers depend on.

Capture asks the ``git`` executable for everything it records, but two things
can be read from the file system for much less than a subprocess each:

- :func:`locate` finds the work tree holding a directory the way git's own
  discovery does (the nearest ``.git``, a ``gitdir:`` file for worktrees and
  submodules, ``commondir``), so that no ``git rev-parse`` is needed. Anything
  it does not fully understand (``GIT_DIR`` and the other discovery variables,
  a bare repository, a file-system boundary, a ``.git`` git would reject or
  walk past, another owner, ``core.worktree`` elsewhere, an extension such as
  reftable, an include in the repository's config) makes it answer
  :data:`UNUSUAL`, and the caller asks git.
- :func:`config_key` and :func:`describe_key` are the *contents* of
  everything that ``git config --get-regexp remote...`` and ``git describe``
  read (config files, ``HEAD`` and its ref, tags, packed refs, the names of
  packs and of loose objects sharing the commit's prefix...), so that a
  capture can reuse an earlier answer exactly when nothing it depends on has
  changed. Contents, not time stamps: no racy-timestamp window, and an
  ``open()`` revalidates what NFS caches. None means "do not reuse" (an
  include, replace refs, alternates, too many loose tags, a file that cannot
  be read).

Example:
    >>> import subprocess, pathlib
    >>> _ = subprocess.run(["git", "init", "-q", "demo"], check=True)
    >>> found = locate(pathlib.Path("demo"))
    >>> found.top.name, found.gitdir.name
    ('demo', '.git')
    >>> locate(pathlib.Path("/")) is NOT_A_REPO
    True
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "NOT_A_REPO",
    "UNUSUAL",
    "Repository",
    "config_key",
    "describe_key",
    "git_environment",
    "locate",
    "objects_key",
]

_DISCOVERY_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
)
"""Variables that change which repository git finds, or how it reads it: git decides then."""

_KNOWN_EXTENSIONS = frozenset({"objectformat", "partialclone", "preciousobjects", "noop"})
"""Repository extensions that change nothing read here (others: refStorage, worktreeConfig...)."""

_HEX_OID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SECTION = re.compile(r'^\[\s*([A-Za-z0-9.-]+)(?:\s+"(?:[^"\\]|\\.)*")?\s*\]\s*(?:[#;].*)?$')
_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*?))?\s*$")
_INCLUDE = re.compile(rb"^\s*\[\s*include", re.IGNORECASE | re.MULTILINE)
_MAX_FILE = 4 << 20
"""A file git reads that is larger than this (a huge packed-refs) is not fingerprinted."""
_MAX_LOOSE_TAGS = 256
_UNREADABLE = "\0unreadable"


class Repository(NamedTuple):
    """A work tree found on disk.

    Attributes:
        top: The work tree's top directory (physical, as ``git rev-parse --show-toplevel``).
        gitdir: Its git directory (``.git``, or ``.git/worktrees/<name>`` of a worktree).
        commondir: Where config, refs and objects live (``gitdir`` but for a worktree).

    Example:
        >>> Repository(Path("/p"), Path("/p/.git"), Path("/p/.git")).top.name
        'p'
    """

    top: Path
    gitdir: Path
    commondir: Path


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NOT_A_REPO = _Marker("NOT_A_REPO")
"""No ``.git`` between the directory and the root, and nothing that could make one."""
UNUSUAL = _Marker("UNUSUAL")
"""A layout or setting this module does not reproduce: ask git."""


def locate(directory: Path) -> Repository | _Marker:
    """The work tree holding ``directory`` as git would find it, or a marker.

    Returns:
        A :class:`Repository`; :data:`NOT_A_REPO` when git would find none;
        :data:`UNUSUAL` when only git can tell.

    Example:
        >>> locate(Path("/")) is NOT_A_REPO
        True
    """
    if any(name in os.environ for name in _DISCOVERY_VARIABLES):
        return UNUSUAL
    try:
        start = directory.resolve(strict=True)
        device = start.stat().st_dev
        crossed = False  # git stops at a file-system boundary: what lies beyond is its call
        for level in (start, *start.parents):
            crossed = crossed or level.stat().st_dev != device
            dot_git = level / ".git"
            if os.path.lexists(dot_git):
                return UNUSUAL if crossed else _checked(level, dot_git)
            if os.path.lexists(level / "HEAD"):
                return UNUSUAL  # perhaps a bare repository, or inside a .git directory
    except (OSError, RuntimeError, ValueError):
        return UNUSUAL
    return NOT_A_REPO


def _checked(top: Path, dot_git: Path) -> Repository | _Marker:
    """The repository of ``top/.git`` if git would take it as plainly as we read it."""
    if dot_git.is_dir() and not dot_git.is_symlink():
        gitdir = dot_git
        owners = [top, dot_git]
    elif dot_git.is_file():
        text = _read_text(dot_git)
        if text is None or not text.startswith("gitdir: "):
            return UNUSUAL
        gitdir = Path(os.path.realpath(top / text[len("gitdir: ") :].strip()))
        owners = [top, dot_git, gitdir]
    else:
        return UNUSUAL
    commondir = gitdir
    if os.path.lexists(gitdir / "commondir"):
        text = _read_text(gitdir / "commondir")
        if text is None or not text.strip():
            return UNUSUAL
        commondir = Path(os.path.realpath(gitdir / text.strip()))
    if not _owned(owners) or not _is_git_directory(gitdir, commondir):
        return UNUSUAL
    if not _plain_config(commondir / "config", top, gitdir):
        return UNUSUAL
    return Repository(top, gitdir, commondir)


def _owned(paths: list[Path]) -> bool:
    """Owned by us, as git's ``safe.directory`` check wants (otherwise git decides)."""
    if not hasattr(os, "geteuid"):
        return False
    euid = os.geteuid()
    return all(os.lstat(path).st_uid == euid for path in paths)


def _is_git_directory(gitdir: Path, commondir: Path) -> bool:
    """Like git's ``is_git_directory``: objects/ and refs/ directories and a valid HEAD."""
    if not ((commondir / "objects").is_dir() and (commondir / "refs").is_dir()):
        return False
    head = _read_text(gitdir / "HEAD")
    if head is None or (gitdir / "HEAD").is_symlink():
        return False
    head = head.strip()
    return head.startswith("ref: refs/") or bool(_HEX_OID.match(head))


def _plain_config(path: Path, top: Path, gitdir: Path) -> bool:
    """The repository's config asks for nothing unusual (bare, another work tree, extensions)."""
    text = _read_text(path)
    if text is None:
        return False
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            match = _SECTION.match(line)
            if match is None:
                return False  # e.g. a key on the header line: not worth reading further
            section = match[1].lower()
            if section.startswith("include"):
                return False
            continue
        if section not in ("core", "extensions"):
            continue
        match = _KEY.match(line)
        if match is None or line.endswith("\\"):
            return False
        key, value = match[1].lower(), _unquote(match[2])
        if section == "extensions" and key not in _KNOWN_EXTENSIONS:
            return False
        if value == _UNREADABLE and key in ("repositoryformatversion", "bare", "worktree"):
            return False
        if section == "core" and key == "repositoryformatversion" and value not in ("0", "1"):
            return False
        if section == "core" and key == "bare" and _maybe_true(value):
            return False
        if section == "core" and key == "worktree" and not _same(gitdir, value, top):
            return False  # a work tree elsewhere (a submodule's points back to it: fine)
    return True


def _same(gitdir: Path, worktree: str | None, top: Path) -> bool:
    """Whether ``core.worktree`` (relative to the git directory) is ``top``."""
    return worktree is not None and os.path.realpath(gitdir / worktree) == str(top)


def _unquote(value: str | None) -> str | None:
    if value is None:
        return None
    if "\\" in value or value.count('"') not in (0, 2):
        return _UNREADABLE  # escapes, or a quote inside: not read here
    for marker in ("#", ";"):
        if marker in value and '"' not in value:
            value = value.split(marker, 1)[0].strip()
    return value.strip('"')


def _maybe_true(value: str | None) -> bool:
    """A config boolean that is, or might be, true (a bare ``key`` is; ``key =`` is not)."""
    if value is None:
        return True
    word = value.strip().lower()
    if word in ("false", "no", "off", ""):
        return False
    try:
        return int(word) != 0
    except ValueError:
        return True  # "true", "yes", "on", or something git may read as true


def _read_text(path: Path) -> str | None:
    data = _read_bytes(path)
    return None if data is None else data.decode("utf-8", "surrogateescape")


def _read_bytes(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as file:  # noqa: PTH123 - one bounded read
            data = file.read(_MAX_FILE + 1)
    except OSError:
        return None
    return None if len(data) > _MAX_FILE else data


# -- what git's answers depend on ---------------------------------------------------------


def git_environment(executable: str) -> tuple[Any, ...]:
    """The part of the process environment that can change git's answers.

    Every ``GIT_*`` variable (config parameters, replace refs, namespaces...),
    the home and XDG directories (global config) and the executable itself.

    Example:
        >>> git_environment("/usr/bin/git")[0]
        '/usr/bin/git'
    """
    return (
        executable,
        os.environ.get("HOME"),
        os.environ.get("XDG_CONFIG_HOME"),
        tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("GIT_"))),
    )


def _config_files(repo: Repository, executable: str) -> list[Path]:
    """The config files git reads (without includes), most general first."""
    # Every place git may read, whatever GIT_CONFIG_NOSYSTEM or _GLOBAL say (they are in the
    # key too): one file more only makes the key stricter.
    files = [Path("/etc/gitconfig")]
    for binary in dict.fromkeys((Path(executable), Path(os.path.realpath(executable)))):
        files.append(binary.parent.parent / "etc" / "gitconfig")  # a relocatable git's
    for variable in ("GIT_CONFIG_SYSTEM", "GIT_CONFIG_GLOBAL"):
        if os.environ.get(variable):
            files.append(Path(os.environ[variable]))
    home = os.environ.get("HOME")
    xdg = os.environ.get("XDG_CONFIG_HOME") or (home and str(Path(home, ".config")))
    if xdg:
        files.append(Path(xdg, "git", "config"))
    if home:
        files.append(Path(home, ".gitconfig"))
    files += [repo.commondir / "config", repo.gitdir / "config.worktree"]
    return files


def config_key(repo: Repository, executable: str) -> tuple[Any, ...] | None:
    """The contents of every config file git reads, or None when they cannot be pinned down.

    None when a file includes another (``[include]``, ``[includeIf]``: its
    target could change unseen) or exists but cannot be read.

    Example:
        >>> import subprocess
        >>> _ = subprocess.run(["git", "init", "-q", "cfg"], check=True)
        >>> found = locate(Path("cfg"))
        >>> config_key(found, "git") == config_key(found, "git")
        True
    """
    contents: list[tuple[str, bytes | None]] = []
    for path in _config_files(repo, executable):
        data = _read_bytes(path)
        if data is None and os.path.lexists(path):
            return None
        if data is not None and _INCLUDE.search(data):
            return None
        contents.append((str(path), data))
    return (git_environment(executable), tuple(contents))


def describe_key(
    repo: Repository, executable: str, *, config: tuple[Any, ...] | None = None
) -> tuple[Any, ...] | None:
    """What ``git describe --tags --always`` reads, but for the commit's own object names.

    ``HEAD`` and the ref it names, the loose tags and ``packed-refs``, grafts
    and shallow, the pack names (they set the abbreviation length), and the
    config; None when replace refs or alternates are in play, when there are
    more than a few hundred loose tags, or when a file cannot be read; and
    None with submodules (a ``.gitmodules``, or a config that tells status to
    ignore submodules), where ``--dirty`` and ``git status`` do not always
    agree (untracked files in a submodule, ``diff.ignoreSubmodules``), so
    status cannot vouch for the ``-dirty`` part.
    ``config`` is :func:`config_key`'s answer when it was just read.

    Example:
        >>> import subprocess
        >>> _ = subprocess.run(["git", "init", "-q", "desc"], check=True)
        >>> describe_key(locate(Path("desc")), "git") is not None
        True
    """
    config = config or config_key(repo, executable)
    common, gitdir = repo.commondir, repo.gitdir
    if config is None or _has_entries(common / "refs" / "replace"):
        return None
    if os.path.lexists(repo.top / ".gitmodules") or _ignores_submodules(config):
        return None  # describe --dirty may judge a submodule otherwise than status does
    if os.path.lexists(common / "objects" / "info" / "alternates"):
        return None
    head = _read_bytes(gitdir / "HEAD")
    if head is None:
        return None
    ref = _head_ref(head, repo)
    if ref is not None and ref.startswith(b"ref:"):
        return None  # a symbolic ref to a symbolic ref
    tags = _loose_refs(common / "refs" / "tags")
    packs = _names(common / "objects" / "pack")
    if tags is None or packs is None:
        return None
    files = [common / "packed-refs", common / "info" / "grafts", common / "shallow"]
    contents = []
    for path in files:
        data = _read_bytes(path)
        if data is None and os.path.lexists(path):
            return None
        contents.append(data)
    return (config, head, ref, tags, packs, tuple(contents))


def _ignores_submodules(config: tuple[Any, ...]) -> bool:
    """Whether any config file sets ``diff.ignoreSubmodules`` or a submodule's ``ignore``."""
    for _, data in config[1]:
        text = (data or b"").lower()
        if b"ignoresubmodules" in text or (b"[submodule" in text and b"ignore" in text):
            return True
    return False


def objects_key(repo: Repository, commit: str) -> tuple[str, ...] | None:
    """The loose objects sharing the commit's first two hex digits (an abbreviation may grow).

    Example:
        >>> objects_key(Repository(Path("/none"), Path("/none"), Path("/none")), "ab12")
        ()
    """
    return _names(repo.commondir / "objects" / commit[:2])


def _head_ref(head: bytes, repo: Repository) -> bytes | None:
    """The content of the loose ref HEAD names (None: packed, or detached)."""
    text = head.decode("utf-8", "surrogateescape").strip()
    if not text.startswith("ref: "):
        return None
    name = text[len("ref: ") :]
    per_worktree = name.startswith(("refs/worktree/", "refs/bisect/", "refs/rewritten/"))
    base = repo.gitdir if per_worktree else repo.commondir
    return _read_bytes(base / name)


def _loose_refs(directory: Path) -> tuple[tuple[str, bytes | None], ...] | None:
    """Every loose ref under ``directory`` with its content, sorted; None if too many."""
    found: list[tuple[str, bytes | None]] = []
    for folder, _, files in os.walk(directory):
        for name in files:
            path = Path(folder, name)
            found.append((str(path), _read_bytes(path)))
            if len(found) > _MAX_LOOSE_TAGS:
                return None
    return tuple(sorted(found))


def _names(directory: Path) -> tuple[str, ...] | None:
    """The sorted entry names of a directory: () when it does not exist, None if unreadable."""
    try:
        return tuple(sorted(os.listdir(directory)))  # noqa: PTH208 - names, not paths
    except FileNotFoundError:
        return ()
    except OSError:
        return None


def _has_entries(directory: Path) -> bool:
    try:
        return any(True for _ in os.scandir(directory))
    except FileNotFoundError:
        return False
    except OSError:
        return True
