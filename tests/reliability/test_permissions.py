"""File modes: created with the process umask, or ``RUNJOURNAL_UMASK`` for shared cluster stores.

Each scenario runs in a child process that sets its own umask first (the
umask is per process), then stats every path the store holds. Tests run as
root here, so modes are checked as numbers, not by trying to write as another
user.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

import runjournal
from _children import child_env, run_child
from runjournal.doctor import fix_store
from runjournal.errors import InvalidArgumentError

WRITE_A_STORE = """
os.umask(int(sys.argv[1], 8))
run = runjournal.start("modes", params={"lr": 0.1}, tags={"t": 1})
run.log({"loss": 0.5})
run.note("a note")
open("data.csv", "w").write("a,b\\n1,2\\n")
os.utime("data.csv", (1e9, 1e9))  # old enough to be cached
run.log_data("train", "data.csv")  # the hash cache
run.log_artifact("data.csv")  # a blob
run.end()
runjournal.Store().runs()  # the query cache
print("run", run.id, flush=True)
"""


def _modes(store: Path) -> dict[str, int]:
    """The permission bits (and setgid) of everything under ``store``, the store itself included."""
    found = {".": stat.S_IMODE(store.stat().st_mode)}
    for path in store.rglob("*"):
        found[path.relative_to(store).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _write(store: Path, umask: str, **env: str) -> dict[str, int]:
    child = run_child(WRITE_A_STORE, child_env(store, **env), args=[umask])
    assert child.proc.returncode == 0, child.stderr
    return _modes(store)


def _expect(modes: dict[str, int], store: Path, file_mode: int, dir_mode: int) -> None:
    for relative, mode in modes.items():
        wanted = dir_mode if (store / relative).is_dir() else file_mode
        assert mode & 0o7777 == wanted, f"{relative}: {oct(mode)} != {oct(wanted)}"


@pytest.mark.parametrize(
    ("process_umask", "store_umask", "file_mode", "dir_mode"),
    [
        pytest.param("077", None, 0o600, 0o700, id="process-umask-077"),
        pytest.param("022", None, 0o644, 0o755, id="process-umask-022"),
        pytest.param("022", "002", 0o664, 0o775, id="group-shared-002"),
        pytest.param("077", "007", 0o660, 0o770, id="group-only-007"),
        pytest.param("002", "0o077", 0o600, 0o700, id="private-0o077"),
    ],
)
def test_every_file_and_directory_gets_the_umask_asked_for(
    tmp_path: Path,
    process_umask: str,
    store_umask: str | None,
    file_mode: int,
    dir_mode: int,
    tally: Any,
) -> None:
    """Store, runs/, run directories, the marker and every run file: 0o666/0o777 minus the umask."""
    store = tmp_path / "store"
    env = {"RUNJOURNAL_UMASK": store_umask} if store_umask else {}
    modes = _write(store, process_umask, **env)
    assert {"runjournal.json", "runs"} <= modes.keys()
    assert any(name.endswith("metrics.jsonl") for name in modes)
    assert any(name.startswith("blobs/") for name in modes)
    assert any(name.startswith(".cache/query") for name in modes)
    assert any(name.startswith(".cache/") and "query" not in name for name in modes)
    _expect(modes, store, file_mode, dir_mode)
    tally("security").repetitions += 1


def test_a_setgid_store_keeps_its_group_and_bit_on_new_directories(tmp_path: Path) -> None:
    """In a `chmod g+s` store, run directories inherit the group and keep the setgid bit."""
    store = tmp_path / "store"
    store.mkdir()
    group = 4242  # any group id: root may chown to it
    os.chown(store, -1, group)
    store.chmod(0o2775)
    _write(store, "022", RUNJOURNAL_UMASK="002")
    for directory in [store / "runs", *(store / "runs").iterdir()]:
        status = directory.stat()
        assert status.st_gid == group, directory
        assert stat.S_IMODE(status.st_mode) == 0o2775, (directory, oct(status.st_mode))
    for path in store.rglob("*.jsonl"):
        assert path.stat().st_gid == group and stat.S_IMODE(path.stat().st_mode) == 0o664


def test_existing_files_keep_their_mode_when_a_run_is_resumed(tmp_path: Path) -> None:
    """RUNJOURNAL_UMASK applies to what is created; a resumed run never chmods existing files."""
    store = tmp_path / "store"
    _write(store, "077")
    run_id = next((store / "runs").iterdir()).name
    resume = f"""
    os.umask(0o022)
    run = runjournal.start(run_id={run_id!r}, resume=True)
    run.log({{"loss": 0.25}})
    run.end()
    """
    child = run_child(resume, child_env(store, RUNJOURNAL_UMASK="002"))
    assert child.proc.returncode == 0, child.stderr
    run_dir = store / "runs" / run_id
    assert stat.S_IMODE((run_dir / "metrics.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE((run_dir / "run.jsonl").stat().st_mode) == 0o600
    created = [p for p in run_dir.iterdir() if p.name.startswith("environment.1")]
    for path in created:  # the resume's own snapshot is new: it gets the asked-for mode
        assert stat.S_IMODE(path.stat().st_mode) == 0o664


@pytest.mark.parametrize("value", ["abc", "999", "-1", "0o1000", "0x2", "2.5"])
def test_a_bad_runjournal_umask_fails_start_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """RUNJOURNAL_UMASK that is not an octal umask: start() raises InvalidArgumentError early."""
    monkeypatch.setenv("RUNJOURNAL_UMASK", value)
    with pytest.raises(InvalidArgumentError, match="RUNJOURNAL_UMASK"):
        runjournal.start(store=tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_the_doctors_quarantine_follows_runjournal_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Directories doctor --fix creates get the store's mode too."""
    store = tmp_path / "store"
    _write(store, "022")
    metrics = next((store / "runs").iterdir()) / "metrics.jsonl"
    with metrics.open("ab") as file:
        file.write(b"garbage\n")
    monkeypatch.setenv("RUNJOURNAL_UMASK", "002")
    fixed = fix_store(store)
    assert fixed.quarantine is not None
    for directory in [fixed.quarantine.parent, fixed.quarantine, *fixed.quarantine.rglob("*")]:
        if directory.is_dir():
            assert stat.S_IMODE(directory.stat().st_mode) == 0o775, directory
