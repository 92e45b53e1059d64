"""git capture from files and the per-process memo: the same answers as asking git everything.

Each scenario is a real repository in tmp_path. The reference is the way capture
worked before (``git rev-parse``, porcelain v1 status, every call, nothing
reused), which capture still uses for a git without porcelain v2; the fast way
(the repository found from its files, status v2, answers reused under their
keys) must give the same ``git.json``, patch and dirty files, in a fresh process
and after earlier captures of the same process.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import _gitrepos
from _gitrepos import IDENTITY, git
from runjournal.capture import GitCapture, _gitfiles, capture_git
from runjournal.capture import git as git_module

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")


PROJECT = {"train.py": b"lr = 0.1\n", "pkg/util.py": b"X = 1\n"}


def make_repo(path: Path, files: dict[str, bytes] | None = None) -> Path:
    """A repository with one commit of ``files`` (default: a two-file project)."""
    return _gitrepos.make_repo(path, files or PROJECT)


@pytest.fixture(autouse=True)
def _fresh_memo() -> Iterator[None]:
    git_module.clear_cache()
    yield
    git_module.clear_cache()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj")


def reference(directory: Path) -> GitCapture:
    """The old way: rev-parse, porcelain v1, every call, nothing remembered."""
    executable = shutil.which("git")
    assert executable is not None
    saved = dict(git_module._memos)
    git_module._memos.clear()
    git_module._legacy.add(executable)
    try:
        return capture_git(directory)
    finally:
        git_module._legacy.discard(executable)
        git_module._memos.update(saved)


def assert_same(directory: Path) -> GitCapture:
    """capture_git now (memo and all) equals the reference taken right after."""
    fast = capture_git(directory)
    slow = reference(directory)
    assert fast.info == slow.info
    assert fast.patch == slow.patch and fast.dirty_files == slow.dirty_files
    return fast


@pytest.fixture
def logged_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git on PATH that logs its subcommand to a file, then runs the real git."""
    real = shutil.which("git")
    assert real is not None
    folder = tmp_path / "logged-bin"
    folder.mkdir()
    log = tmp_path / "git-calls.log"
    wrapper = folder / "git"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in -*|*=*|*.*) ;; *) echo "$a" >> '
        f'"{log}"; break;; esac; done\n'
        f'exec "{real}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


def calls(log: Path) -> list[str]:
    """The git subcommands run since the last look, sorted; the log is emptied."""
    if not log.exists():
        return []
    found = sorted(log.read_text().split())
    log.unlink()
    return found


# -- the same answers ---------------------------------------------------------------------


def test_a_clean_tree_is_captured_as_git_would_tell_it(repo: Path) -> None:
    """Commit, branch, tag, remotes, no patch: the same as the reference, in a subdirectory too."""
    git(repo, "tag", "-a", "v1.0", "-m", "release")
    git(repo, "remote", "add", "origin", "https://ada:tok3nS3cret@example.org/r.git")
    info = assert_same(repo).info
    assert (info["branch"], info["describe"], info["dirty"]) == ("main", "v1.0", False)
    assert info["remotes"] == {"origin": "https://<redacted>@example.org/r.git"}
    assert assert_same(repo / "pkg").info == info  # found from a subdirectory: the same tree


def test_packed_refs_and_a_ref_only_in_packed_refs(repo: Path) -> None:
    """After git pack-refs the branch and the tags live only in packed-refs."""
    git(repo, "tag", "v1.0")
    git(repo, "tag", "-a", "v1.1", "-m", "annotated")
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    info = assert_same(repo).info
    assert info["branch"] == "main" and info["describe"] in ("v1.0", "v1.1")
    (repo / "train.py").write_text("lr = 0.2\n")
    git(repo, "commit", "-qam", "second")  # a loose ref again, beside the packed one
    assert assert_same(repo).info["describe"].startswith("v1.")


def test_a_detached_head_and_a_detached_tag(repo: Path) -> None:
    """Detached at a commit, and at a tag: no branch, the commit, the tag's describe."""
    git(repo, "tag", "v2.0")
    (repo / "train.py").write_text("lr = 0.3\n")
    git(repo, "commit", "-qam", "second")
    git(repo, "checkout", "-q", "--detach", "v2.0")
    info = assert_same(repo).info
    assert (info["branch"], info["detached"], info["describe"]) == (None, True, "v2.0")
    git(repo, "checkout", "-q", "main")
    info = assert_same(repo).info
    assert (info["branch"], info["detached"]) == ("main", False)
    assert info["describe"].startswith("v2.0-1-g")


def test_a_linked_worktree_is_found_from_its_gitdir_file(repo: Path, tmp_path: Path) -> None:
    """git worktree add: a .git file, a commondir; its own HEAD, branch and changes."""
    git(repo, "tag", "v1.0")
    worktree = tmp_path / "feature-tree"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    located = _gitfiles.locate(worktree / "pkg")
    assert isinstance(located, _gitfiles.Repository)
    assert located.top == worktree.resolve()
    assert located.commondir == (repo / ".git").resolve()
    assert located.gitdir.parent == (repo / ".git" / "worktrees").resolve()
    info = assert_same(worktree).info
    assert (info["branch"], info["root_name"], info["describe"]) == (
        "feature",
        "feature-tree",
        "v1.0",
    )
    (worktree / "train.py").write_text("lr = 0.9\n")
    state = assert_same(worktree)
    assert state.dirty_files == ("train.py",) and b"lr = 0.9" in (state.patch or b"")
    assert assert_same(repo).info["dirty"] is False  # the main tree is untouched


def test_a_submodule_points_its_core_worktree_back_at_itself(tmp_path: Path) -> None:
    """A submodule's git dir has core.worktree: read, it names the submodule, no fallback."""
    library = make_repo(tmp_path / "library", {"lib.py": b"X = 1\n"})
    parent = make_repo(tmp_path / "parent")
    git(parent, "submodule", "add", "-q", str(library), "vendor/library")
    git(parent, "commit", "-qm", "add the submodule")
    inside = parent / "vendor" / "library"
    assert isinstance(_gitfiles.locate(inside), _gitfiles.Repository)
    assert assert_same(inside).info["root_name"] == "library"
    (inside / "lib.py").write_text("X = 2\n")
    assert assert_same(parent).dirty_files == ("vendor/library",)
    assert assert_same(inside).dirty_files == ("lib.py",)


def test_describe_is_asked_every_time_where_submodules_could_fool_status(
    tmp_path: Path,
) -> None:
    """diff.ignoreSubmodules=all hides a dirty submodule from status, not from describe --dirty."""
    library = make_repo(tmp_path / "library", {"lib.py": b"X = 1\n"})
    parent = make_repo(tmp_path / "parent")
    git(parent, "submodule", "add", "-q", str(library), "vendor/library")
    git(parent, "commit", "-qm", "add the submodule")
    git(parent, "tag", "v1")
    git(parent, "config", "diff.ignoreSubmodules", "all")
    located = _gitfiles.locate(parent)
    assert isinstance(located, _gitfiles.Repository)
    assert _gitfiles.describe_key(located, shutil.which("git") or "git") is None
    assert assert_same(parent).info["describe"] == "v1"
    (parent / "vendor" / "library" / "lib.py").write_text("X = 2\n")
    info = assert_same(parent).info
    assert (info["describe"], info["dirty"]) == ("v1-dirty", False)
    (parent / "vendor" / "library" / "untracked.txt").write_text("u\n")
    (parent / "vendor" / "library" / "lib.py").write_text("X = 1\n")
    assert assert_same(parent).info["describe"] == "v1"


def test_an_abandoned_describe_never_leaves_the_index_locked(tmp_path: Path) -> None:
    """describe --dirty takes index.lock; a call capture no longer needs is let finish."""
    for index in range(25):
        fresh = tmp_path / f"fresh{index}"
        fresh.mkdir()
        git(fresh, "init", "-q")
        (fresh / "a.py").write_text("print(1)\n")
        git_module.clear_cache()
        assert capture_git(fresh).info["status"] == "no_commits"  # describe started, then dropped
        assert not (fresh / ".git" / "index.lock").exists()
        git(fresh, "add", "a.py")  # would fail on a stale lock


def test_renames_unmerged_paths_and_odd_names(repo: Path) -> None:
    """Porcelain v2 entries of every kind give the same dirty and untracked names as v1."""
    git(repo, "mv", "pkg/util.py", "pkg/tools with space.py")
    (repo / "naïve ünïcode.txt").write_text("x\n")
    git(repo, "add", "naïve ünïcode.txt")
    (repo / "untracked dir").mkdir()
    (repo / "untracked dir" / "a.txt").write_text("u\n")
    state = assert_same(repo)
    assert "pkg/tools with space.py" in state.dirty_files
    git(repo, "commit", "-qam", "renamed")
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "train.py").write_text("lr = 'other'\n")
    git(repo, "commit", "-qam", "other")
    git(repo, "checkout", "-q", "main")
    (repo / "train.py").write_text("lr = 'main'\n")
    git(repo, "commit", "-qam", "main")
    merge = ["git", *IDENTITY, "merge", "-q", "other"]
    subprocess.run(merge, cwd=repo, capture_output=True, check=False)  # a conflict
    state = assert_same(repo)  # a conflict: an unmerged entry
    assert "train.py" in state.dirty_files


def test_a_repository_without_commits_then_its_first_commit(tmp_path: Path) -> None:
    """no_commits (patch against the empty tree), then ok after the first commit, one process."""
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q")
    assert assert_same(fresh).info["status"] == "no_commits"  # nothing tracked: empty patch
    (fresh / "a.py").write_text("print(1)\n")
    git(fresh, "add", "a.py")
    state = assert_same(fresh)
    assert state.info["status"] == "no_commits" and b"print(1)" in (state.patch or b"")
    git(fresh, "commit", "-qm", "first")
    info = assert_same(fresh).info
    assert (info["status"], info["dirty"], info["branch"]) == ("ok", False, "main")


# -- reusing earlier answers only while they hold ------------------------------------------


def test_a_dirty_tree_after_a_clean_capture_and_edits_between_captures(repo: Path) -> None:
    """Clean, then dirty, then the same file edited again, then clean: every patch is fresh."""
    assert assert_same(repo).patch == b""
    (repo / "train.py").write_text("lr = 0.2\n")
    first = assert_same(repo)
    assert first.dirty_files == ("train.py",) and b"+lr = 0.2" in (first.patch or b"")
    (repo / "train.py").write_text("lr = 0.3\n")  # the same file list, another patch
    second = assert_same(repo)
    assert second.dirty_files == first.dirty_files and b"+lr = 0.3" in (second.patch or b"")
    assert second.info["describe"].endswith("-dirty")
    (repo / "train.py").write_text("lr = 0.1\n")  # back to the commit
    clean = assert_same(repo)
    assert (clean.patch, clean.info["dirty"]) == (b"", False)
    assert not clean.info["describe"].endswith("-dirty")


def test_tags_commits_and_abbreviation_changes_are_seen(repo: Path) -> None:
    """describe follows new, moved, packed and deleted tags, new commits and core.abbrev."""
    assert assert_same(repo).info["describe"] == git(repo, "rev-parse", "--short", "HEAD")
    git(repo, "tag", "v1.0")
    assert assert_same(repo).info["describe"] == "v1.0"
    (repo / "train.py").write_text("lr = 0.2\n")
    git(repo, "commit", "-qam", "second")
    assert assert_same(repo).info["describe"].startswith("v1.0-1-g")
    git(repo, "tag", "v1.1")
    assert assert_same(repo).info["describe"] == "v1.1"
    git(repo, "pack-refs", "--all")
    assert assert_same(repo).info["describe"] == "v1.1"
    git(repo, "tag", "-d", "v1.1")
    assert assert_same(repo).info["describe"].startswith("v1.0-1-g")
    git(repo, "tag", "-f", "v1.0", "HEAD")  # moved
    assert assert_same(repo).info["describe"] == "v1.0"
    git(repo, "tag", "-d", "v1.0")
    git(repo, "config", "core.abbrev", "12")
    assert len(assert_same(repo).info["describe"]) == 12


def test_remote_and_config_changes_are_seen(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Remotes follow the repository's config, the global config, and includes."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert assert_same(repo).info["remotes"] == {}
    git(repo, "remote", "add", "origin", "https://example.org/a.git")
    assert assert_same(repo).info["remotes"] == {"origin": "https://example.org/a.git"}
    git(repo, "remote", "set-url", "origin", "https://example.org/b.git")
    assert assert_same(repo).info["remotes"] == {"origin": "https://example.org/b.git"}
    (home / ".gitconfig").write_text('[remote "global"]\n\turl = https://example.org/g.git\n')
    assert assert_same(repo).info["remotes"]["global"] == "https://example.org/g.git"
    extra = tmp_path / "extra.gitconfig"
    extra.write_text('[remote "inc"]\n\turl = https://example.org/i1.git\n')
    (home / ".gitconfig").write_text(f"[include]\n\tpath = {extra}\n")
    assert assert_same(repo).info["remotes"]["inc"] == "https://example.org/i1.git"
    extra.write_text('[remote "inc"]\n\turl = https://example.org/i2.git\n')  # only the target
    assert assert_same(repo).info["remotes"]["inc"] == "https://example.org/i2.git"


def test_an_unchanged_clean_tree_costs_one_git_status(repo: Path, logged_git: Path) -> None:
    """The second capture runs status only; a change re-asks just what it affects."""
    git(repo, "tag", "v1.0")
    calls(logged_git)
    capture_git(repo)
    assert calls(logged_git) == ["config", "describe", "status"]
    for _ in range(3):
        assert capture_git(repo).info["describe"] == "v1.0"
        assert calls(logged_git) == ["status"]
    (repo / "train.py").write_text("lr = 0.5\n")
    capture_git(repo)
    assert calls(logged_git) == ["describe", "diff", "status"]  # dirty: diff, and -dirty
    capture_git(repo)
    assert calls(logged_git) == ["diff", "status"]  # a dirty patch is never reused
    git(repo, "remote", "add", "origin", "https://example.org/r.git")
    calls(logged_git)
    assert capture_git(repo).info["remotes"] == {"origin": "https://example.org/r.git"}
    assert calls(logged_git) == ["config", "describe", "diff", "status"]  # config: core.abbrev


def test_outside_a_repository_and_next_to_one(tmp_path: Path, logged_git: Path) -> None:
    """No .git above: not_a_repo and no git call; a .git git rejects: git decides."""
    plain = tmp_path / "plain" / "deeper"
    plain.mkdir(parents=True)
    assert capture_git(plain).info["status"] == "not_a_repo"
    assert calls(logged_git) == []
    (tmp_path / "plain" / ".git").mkdir()  # empty: git walks past it, then says not a repo
    assert _gitfiles.locate(plain) is _gitfiles.UNUSUAL
    assert capture_git(plain).info["status"] == "error"  # as before: it exists, git can't read it
    assert calls(logged_git) == ["rev-parse"]


# -- unusual layouts: git is asked, and the answer is the same ------------------------------


def test_unusual_settings_are_left_to_git(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIT_DIR, a bare repository, another owner, an extension, an include: rev-parse decides."""
    assert isinstance(_gitfiles.locate(repo), _gitfiles.Repository)
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    assert _gitfiles.locate(repo) is _gitfiles.UNUSUAL
    assert assert_same(repo).info["status"] == "ok"
    monkeypatch.delenv("GIT_DIR")

    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    assert _gitfiles.locate(bare) is _gitfiles.UNUSUAL
    assert capture_git(bare).info["status"] == "error"  # no work tree, as before

    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 4242)
    assert _gitfiles.locate(repo) is _gitfiles.UNUSUAL
    monkeypatch.undo()
    config = repo / ".git" / "config"
    original = config.read_text()
    for extra in ("[extensions]\n\tworktreeConfig = true\n", "[include]\n\tpath = x\n"):
        config.write_text(original + extra)
        assert _gitfiles.locate(repo) is _gitfiles.UNUSUAL
        assert assert_same(repo).info["status"] == "ok"
    for setting in ("\tbare = true\n", "\tbare\n", "\tBare = 1\n", '\tbare = "yes"\n'):
        config.write_text(original + "[core]\n" + setting)
        assert _gitfiles.locate(repo) is _gitfiles.UNUSUAL, setting
    for plain in ("\tbare = false\n", "\tbare =\n", "\tbare = 0 ; a comment\n"):
        config.write_text(original + "[core]\n" + plain)
        assert isinstance(_gitfiles.locate(repo), _gitfiles.Repository), plain
    config.write_text(original)


def test_stat_only_changes_with_auto_refresh_off_still_run_the_diff(
    repo: Path, logged_git: Path
) -> None:
    """diff.autoRefreshIndex=false: a clean status does not vouch for an empty diff."""
    git(repo, "config", "diff.autoRefreshIndex", "false")
    calls(logged_git)
    for _ in range(2):
        os.utime(repo / "train.py")  # stat-only change
        assert capture_git(repo).info["dirty"] is False
        assert "diff" in calls(logged_git)
        assert assert_same(repo).info["dirty"] is False
        calls(logged_git)


def test_a_git_without_porcelain_v2_is_asked_the_older_way(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """status --porcelain=v2 refused (git before 2.11): rev-parse and v1, remembered."""
    real = shutil.which("git")
    folder = tmp_path / "old-git"
    folder.mkdir()
    old = folder / "git"
    old.write_text(
        '#!/bin/sh\nfor a in "$@"; do [ "$a" = "--porcelain=v2" ] && '
        'echo "error: option porcelain takes no value" >&2 && exit 129; done\n'
        f'exec "{real}" "$@"\n'
    )
    old.chmod(old.stat().st_mode | stat.S_IEXEC)
    (repo / "train.py").write_text("lr = 0.4\n")
    expected = reference(repo)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    for _ in range(2):
        state = capture_git(repo)
        assert (state.info, state.patch) == (expected.info, expected.patch)
    assert str(old) in git_module._legacy


def test_concurrent_captures_of_one_repository_agree(repo: Path) -> None:
    """Runs started from several threads share the memo safely."""
    (repo / "train.py").write_text("lr = 0.6\n")
    expected = reference(repo)
    found: list[GitCapture] = []
    threads = [threading.Thread(target=lambda: found.append(capture_git(repo))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all((state.info, state.patch) == (expected.info, expected.patch) for state in found)


# -- the keys -------------------------------------------------------------------------------


def test_the_describe_key_is_the_content_of_what_describe_reads(repo: Path) -> None:
    """Contents, not time stamps: a rewritten tag with the same time is still seen."""
    located = _gitfiles.locate(repo)
    assert isinstance(located, _gitfiles.Repository)
    executable = shutil.which("git") or "git"
    before = _gitfiles.describe_key(located, executable)
    git(repo, "tag", "v1.0")
    tag = repo / ".git" / "refs" / "tags" / "v1.0"
    after = _gitfiles.describe_key(located, executable)
    assert before is not None and after is not None and before != after
    stamp = tag.stat()
    (repo / "README").write_text("r\n")
    git(repo, "add", "README")
    git(repo, "commit", "-qm", "readme")
    tag.write_text(git(repo, "rev-parse", "HEAD") + "\n")  # moved by hand, same times
    os.utime(tag, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert _gitfiles.describe_key(located, executable) != after
    (repo / ".git" / "refs" / "replace").mkdir(exist_ok=True)
    (repo / ".git" / "refs" / "replace" / ("0" * 40)).write_text("0" * 40 + "\n")
    assert _gitfiles.describe_key(located, executable) is None  # replace refs: never reused
