"""git.json and git.patch, from real repositories made in tmp_path with the git executable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

import runjournal
from _gitrepos import git, make_repo
from runjournal.capture import capture_git
from runjournal.capture.git import entry_directories
from runjournal.errors import GitStateError, RunjournalWarning

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

BINARY = bytes(range(256)) * 4


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    files = {
        "train.py": b"lr = 0.1\n",
        "README.md": b"# proj\n",
        "model.bin": BINARY,
        "pkg/util.py": b"def f():\n    return 1\n",
        "old.txt": b"to be deleted\n",
    }
    return make_repo(tmp_path / "proj", files)


def tracked_tree(repo: Path) -> dict[str, bytes]:
    """The bytes of every tracked file present in the working tree."""
    names = git(repo, "ls-files", "-z").split("\0")
    return {name: (repo / name).read_bytes() for name in names if name and (repo / name).is_file()}


def working_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


def read_json(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_bytes())
    return result


def events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "run.jsonl").read_bytes().splitlines()]


def test_a_clean_repository_records_commit_branch_tag_and_an_empty_patch(repo: Path) -> None:
    """A clean tree: status ok, the HEAD commit, its branch and tag, not dirty, empty patch."""
    git(repo, "tag", "-a", "v1.0", "-m", "release")
    with runjournal.start(capture={"git_dir": str(repo)}) as run:
        pass
    assert run.dir is not None
    info = read_json(run.dir / "git.json")
    assert info["status"] == "ok" and info["format"] == 1
    assert info["commit"] == git(repo, "rev-parse", "HEAD")
    assert (info["branch"], info["detached"], info["describe"]) == ("main", False, "v1.0")
    assert (info["dirty"], info["untracked"], info["untracked_truncated"]) == (False, [], False)
    assert info["root_name"] == "proj" and info["remotes"] == {}
    assert info["patch"] == {
        "file": "git.patch",
        "bytes": 0,
        "sha256": hashlib.sha256(b"").hexdigest(),
        "truncated": False,
        "cap_bytes": 10 * 1024 * 1024,
        "redacted_lines": 0,
    }
    assert (run.dir / "git.patch").read_bytes() == b""
    assert str(repo) not in (run.dir / "git.json").read_text()  # no absolute path stored


def test_the_patch_applied_to_the_commit_restores_the_tracked_tree_byte_for_byte(
    repo: Path, tmp_path: Path
) -> None:
    """Staged, unstaged, binary, new and deleted changes: checkout + git apply gives the tree."""
    (repo / "train.py").write_bytes(b"lr = 0.2\nepochs = 3\n")  # unstaged
    (repo / "pkg/util.py").write_bytes(b"def f():\n    return 2\n")
    git(repo, "add", "pkg/util.py")
    (repo / "pkg/util.py").write_bytes(b"def f():\n    return 3\n")  # staged, then more unstaged
    (repo / "model.bin").write_bytes(BINARY[::-1] + b"\x00\xff")  # binary
    (repo / "new.py").write_bytes(b"x = 1\n")
    git(repo, "add", "new.py")  # a staged new file
    (repo / "old.txt").unlink()  # an unstaged deletion
    (repo / "notes.txt").write_text("untracked\n")
    state = capture_git(repo)
    assert state.status == "ok" and state.info["dirty"] is True
    changed = ["model.bin", "new.py", "old.txt", "pkg/util.py", "train.py"]
    assert sorted(state.dirty_files) == changed
    assert state.info["untracked"] == ["notes.txt"]
    assert state.patch is not None and b"GIT binary patch" in state.patch
    assert state.info["patch"]["sha256"] == hashlib.sha256(state.patch).hexdigest()

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "checkout", "-q", state.info["commit"])
    (tmp_path / "git.patch").write_bytes(state.patch)
    git(clone, "apply", str(tmp_path / "git.patch"))
    assert working_tree(clone) == tracked_tree(repo)


def test_a_detached_head_has_no_branch(repo: Path) -> None:
    """Checking out a commit: detached, branch null, the commit recorded."""
    git(repo, "checkout", "-q", "--detach", "HEAD")
    info = capture_git(repo).info
    assert (info["status"], info["detached"], info["branch"]) == ("ok", True, None)
    assert info["commit"] == git(repo, "rev-parse", "HEAD")


def test_a_repository_without_commits_records_a_patch_against_the_empty_tree(
    tmp_path: Path,
) -> None:
    """No commit yet: status no_commits, the unborn branch, and git apply in an empty dir works."""
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.py").write_bytes(b"print(1)\n")
    (repo / "data.bin").write_bytes(BINARY)
    git(repo, "add", "a.py", "data.bin")
    (repo / "a.py").write_bytes(b"print(2)\n")  # staged, then changed again
    (repo / "scratch.txt").write_text("not tracked\n")
    state = capture_git(repo)
    info = state.info
    assert (info["status"], info["commit"], info["describe"]) == ("no_commits", None, None)
    assert (info["branch"], info["detached"], info["dirty"]) == ("main", False, True)
    assert info["untracked"] == ["scratch.txt"]
    target = tmp_path / "restored"
    target.mkdir()
    git(target, "init", "-q")
    (tmp_path / "git.patch").write_bytes(state.patch or b"")
    git(target, "apply", str(tmp_path / "git.patch"))
    assert working_tree(target) == tracked_tree(repo)


def test_a_submodule_is_its_own_repository_and_dirties_its_parent(tmp_path: Path) -> None:
    """From inside a submodule the submodule is captured; a change in it makes the parent dirty."""
    library = make_repo(tmp_path / "library", {"lib.py": b"X = 1\n"})
    parent = make_repo(tmp_path / "parent")
    git(parent, "submodule", "add", "-q", str(library), "vendor/library")
    git(parent, "commit", "-qm", "add the submodule")
    assert capture_git(parent).info["dirty"] is False

    inside = capture_git(parent / "vendor" / "library")
    assert inside.info["root_name"] == "library"
    assert inside.info["commit"] == git(library, "rev-parse", "HEAD")

    (parent / "vendor/library/lib.py").write_bytes(b"X = 2\n")
    outer = capture_git(parent)
    assert outer.status == "ok" and outer.dirty_files == ("vendor/library",)
    assert capture_git(parent / "vendor" / "library").dirty_files == ("lib.py",)


def test_outside_a_repository_the_status_says_so_and_nothing_warns(tmp_path: Path) -> None:
    """Not a repository is an expected absence: git.json says not_a_repo, and no warning."""
    plain = tmp_path / "plain"
    plain.mkdir()
    with runjournal.start(capture={"git_dir": str(plain)}) as run:
        pass
    assert run.dir is not None
    assert read_json(run.dir / "git.json") == {"format": 1, "status": "not_a_repo"}
    assert not (run.dir / "git.patch").exists()


def test_without_git_on_path_the_status_is_no_git_and_the_run_starts(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git missing from PATH is an expected absence: no_git, and no warning."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with runjournal.start(capture={"git_dir": str(repo)}) as run:
        pass
    assert run.dir is not None
    assert read_json(run.dir / "git.json") == {"format": 1, "status": "no_git"}


def test_a_broken_repository_is_an_error_and_the_run_still_starts(repo: Path) -> None:
    """A corrupt .git/HEAD: status error with a message, a capture_error event, one warning."""
    (repo / ".git" / "HEAD").write_text("garbage\n")
    with pytest.warns(RunjournalWarning, match="git"):
        run = runjournal.start(capture={"git_dir": str(repo)})
    run.log({"loss": 1.0})
    run.end()
    assert run.dir is not None
    info = read_json(run.dir / "git.json")
    assert info["status"] == "error" and ".git" in info["message"]
    errors = [e for e in events(run.dir) if e["event"] == "error"]
    assert [(e["cause"], e["key"]) for e in errors] == [("capture_error", "git")]
    environment = read_json(run.dir / "environment.json")
    assert [error["part"] for error in environment["capture_errors"]] == ["git"]
    assert runjournal.Store().run(run.id).status == "completed"


def test_remote_urls_are_recorded_without_credentials(repo: Path) -> None:
    """A remote with user:token in its URL is stored with the userinfo redacted."""
    git(repo, "remote", "add", "origin", "https://ada:s3cr3tT0k3n@example.org/r.git")
    git(repo, "remote", "add", "mirror", "git@example.org:ada/proj.git")
    remotes = capture_git(repo).info["remotes"]
    assert remotes == {
        "origin": "https://<redacted>@example.org/r.git",
        "mirror": "git@example.org:ada/proj.git",
    }


def test_credentials_added_to_source_are_redacted_in_the_patch_which_still_applies(
    repo: Path, tmp_path: Path
) -> None:
    """A token pasted into a tracked file is cut out of git.patch; the patch still applies."""
    token = "ghp_" + "Ab1Cd2Ef3Gh4" * 3
    (repo / "train.py").write_text(f"lr = 0.1\nTOKEN = '{token}'\n")
    state = capture_git(repo)
    assert state.patch is not None and token.encode() not in state.patch
    assert state.info["patch"]["redacted_lines"] == 1
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    (tmp_path / "git.patch").write_bytes(state.patch)
    git(clone, "apply", str(tmp_path / "git.patch"))
    assert (clone / "train.py").read_text() == "lr = 0.1\nTOKEN = '<redacted>'\n"


def test_a_patch_over_the_cap_is_recorded_as_truncated_and_left_empty(repo: Path) -> None:
    """Over patch_cap_bytes: truncated, no bytes kept, size and hash unknown."""
    (repo / "model.bin").write_bytes(os.urandom(64 * 1024))
    with runjournal.start(capture={"git_dir": str(repo), "patch_cap_bytes": 1000}) as run:
        pass
    assert run.dir is not None
    patch = read_json(run.dir / "git.json")["patch"]
    assert patch["truncated"] is True and patch["cap_bytes"] == 1000
    assert patch["bytes"] is None and patch["sha256"] is None
    assert (run.dir / "git.patch").read_bytes() == b""


def test_untracked_names_are_capped_at_a_thousand(repo: Path) -> None:
    """More than 1,000 untracked files: the first 1,000 names and a truncation flag."""
    for index in range(1005):
        (repo / f"u{index:04d}.txt").write_bytes(b"")
    info = capture_git(repo).info
    assert len(info["untracked"]) == 1000 and info["untracked_truncated"] is True


def test_capture_never_takes_the_index_lock(repo: Path) -> None:
    """With another git holding index.lock, capture still works and leaves the lock alone."""
    (repo / "train.py").write_text("lr = 0.3\n")
    lock = repo / ".git" / "index.lock"
    lock.write_bytes(b"held by the user's git")
    state = capture_git(repo)
    assert state.status == "ok" and state.dirty_files == ("train.py",)
    assert lock.read_bytes() == b"held by the user's git"


def test_a_hung_git_is_given_up_at_the_timeout(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A git that never answers makes status error within the timeout, not a hang."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake_git = fake_bin / "git"
    fake_git.write_text(f"#!/bin/sh\nexec {shutil.which('sleep')} 30\n")
    fake_git.chmod(fake_git.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(fake_bin))
    for where in (repo, repo / "pkg"):  # the repository is found from its files, then git hangs
        began = time.monotonic()
        info = capture_git(where, timeout=0.5).info
        assert time.monotonic() - began < 5
        assert info["status"] == "error" and "timed out" in info["message"]
    (repo / ".git" / "HEAD").write_text("garbage\n")  # a layout left to git: it hangs too
    info = capture_git(repo, timeout=0.5).info
    assert info["status"] == "error" and "timed out" in info["message"]


def test_outside_a_repository_no_git_process_is_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No .git above the directory: not_a_repo from the files alone, git is never run."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    marker = tmp_path / "git-was-run"
    fake_git = fake_bin / "git"
    fake_git.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake_git.chmod(fake_git.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(fake_bin))
    plain = tmp_path / "plain"
    plain.mkdir()
    assert capture_git(plain).info == {"format": 1, "status": "not_a_repo"}
    assert not marker.exists()


def test_require_clean_git_refuses_a_dirty_tree_before_writing_anything(
    repo: Path, tmp_path: Path
) -> None:
    """A dirty tree raises GitStateError naming the files, and no store or run is created."""
    (repo / "train.py").write_text("lr = 0.5\n")
    store = tmp_path / "store"
    with pytest.raises(GitStateError, match=r"train\.py") as caught:
        runjournal.start(store=store, require_clean_git=True, capture={"git_dir": str(repo)})
    assert caught.value.dirty_files == ["train.py"] and caught.value.status == "ok"
    assert not store.exists()


def test_require_clean_git_accepts_a_clean_tree_with_untracked_files(repo: Path) -> None:
    """Untracked files do not make a tree dirty; the check's git state is what git.json holds."""
    (repo / "notes.txt").write_text("scratch\n")
    with runjournal.start(require_clean_git=True, capture={"git_dir": str(repo)}) as run:
        pass
    assert run.dir is not None
    assert read_json(run.dir / "git.json")["untracked"] == ["notes.txt"]


def test_require_clean_git_outside_a_repository_refuses_to_start(tmp_path: Path) -> None:
    """No git state to check is not a clean tree: GitStateError with the status."""
    with pytest.raises(GitStateError, match="not a repo") as caught:
        runjournal.start(require_clean_git=True, capture={"git_dir": str(tmp_path)})
    assert caught.value.status == "not_a_repo" and caught.value.dirty_files == []


def test_require_clean_git_must_be_a_bool() -> None:
    """A bad require_clean_git is an InvalidArgumentError naming the argument."""
    with pytest.raises(runjournal.errors.InvalidArgumentError, match="require_clean_git"):
        runjournal.start(require_clean_git="yes")  # type: ignore[arg-type]


def test_a_resume_writes_the_git_state_of_its_own_segment(repo: Path) -> None:
    """Resuming writes git.1.json and git.1.patch beside the first segment's files."""
    options = {"git_dir": str(repo)}
    with runjournal.start(run_id="job-1", capture=options) as run:
        pass
    (repo / "train.py").write_text("lr = 0.7  # fixed after the first attempt\n")
    with runjournal.start(run_id="job-1", resume=True, capture=options) as resumed:
        pass
    assert run.dir is not None and resumed.dir == run.dir
    first, second = read_json(run.dir / "git.json"), read_json(run.dir / "git.1.json")
    assert (first["dirty"], second["dirty"]) == (False, True)
    assert second["patch"]["file"] == "git.1.patch"
    assert b"lr = 0.7" in (run.dir / "git.1.patch").read_bytes()
    assert (run.dir / "git.patch").read_bytes() == b""
    assert read_json(run.dir / "environment.1.json")["seg"] == 1


def test_the_repository_of_the_entry_point_wins_over_the_working_directory(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script's repository is captured even when started from another directory."""
    script = repo / "pkg" / "run_me.py"
    script.write_text("pass\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    elsewhere = make_repo(tmp_path / "elsewhere")
    monkeypatch.chdir(elsewhere)
    assert entry_directories() == [script.parent, elsewhere]
    assert capture_git().info["root_name"] == "proj"

    main.__file__ = str(tmp_path / "not-in-a-repo.py")
    (tmp_path / "not-in-a-repo.py").write_text("pass\n")
    assert capture_git().info["root_name"] == "elsewhere"  # falls back to the working directory


def test_a_script_in_a_repository_run_as_a_process_records_that_repository(
    repo: Path, tmp_path: Path
) -> None:
    """End to end: `python proj/train.py` from another directory records proj's commit."""
    (repo / "train.py").write_text(
        "import runjournal\nwith runjournal.start('e2e') as run:\n    print(run.dir)\n"
    )
    git(repo, "add", "train.py")
    git(repo, "commit", "-qm", "script")
    env = {**os.environ, "RUNJOURNAL_STORE": str(tmp_path / "store"), "RUNJOURNAL_STRICT": "1"}
    done = subprocess.run(
        [sys.executable, str(repo / "train.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    run_dir = Path(done.stdout.strip())
    info = read_json(run_dir / "git.json")
    assert (info["status"], info["commit"], info["dirty"]) == (
        "ok",
        git(repo, "rev-parse", "HEAD"),
        False,
    )
    command = read_json(run_dir / "environment.json")["command"]
    assert command["script"] == "proj/train.py" and command["module"] is None  # relative to cwd
