"""The command line of comparing and reproducing: diff, show --reproduce and verify-data."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import pytest

from _runfiles import RunFiles, StoreFiles
from runjournal import cli

PATCH = b"diff --git a/train.py b/train.py\n-lr = 0.1\n+lr = 0.2\n"


@pytest.fixture
def files(tmp_path: Path) -> StoreFiles:
    return StoreFiles(tmp_path / "store")


def run_cli(files: StoreFiles, *args: str) -> int:
    return cli.main(["--store", str(files.root), *args])


def strict_json(text: str) -> object:
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))


def data_file(path: Path, content: bytes) -> dict[str, object]:
    """Write a file and return the data record fields of it in full mode (sha256sum's hash)."""
    path.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    return {"kind": "file", "path": str(path), "mode": "full", "hash": digest, "size": len(content)}


# -------------------------------------------------------------------- diff


def test_diff_prints_the_differences_and_json_is_strict(files: StoreFiles, capsys) -> None:
    """diff in text and as strict JSON, NaN tagged; by id prefix and by name."""
    files.ended_run("20261118-000000-aaaa0001", name="one").metrics(0, {"loss": float("nan")})
    files.ended_run("20261118-000100-bbbb0002", name="two").metrics(0, {"loss": 0.5})
    assert run_cli(files, "diff", "20261118-0000", "two") == 0
    out = capsys.readouterr().out
    assert "metrics: 1 changed" in out and "~ loss  nan -> 0.5" in out
    assert run_cli(files, "diff", "one", "two", "--json") == 0
    result = strict_json(capsys.readouterr().out)
    assert result["metrics"]["changed"]["loss"] == {
        "old": {"$float": "nan"},
        "new": 0.5,
        "delta": {"$float": "nan"},
    }
    assert result["a"] == {"id": "20261118-000000-aaaa0001", "name": "one"}


def test_diff_of_an_unknown_run_is_a_user_error(files: StoreFiles, capsys) -> None:
    files.ended_run("r1")
    assert run_cli(files, "diff", "r1", "nope") == 1
    assert "runjournal: error: no run in" in capsys.readouterr().err
    assert run_cli(files, "diff", "r1") == 2


# --------------------------------------------------------- show --reproduce


@pytest.fixture
def dirty_run(files: StoreFiles) -> RunFiles:
    run = files.ended_run("r1", name="brisk-heron-7")
    packages = {"numpy": "2.4.6", "pip": "24.0", "Proj": "0.1.0", "torch": "2.13.0+cu121"}
    argv = ["train.py", "--name", "two words", "--token", "<redacted>"]
    run.environment({"packages": packages, "command": {"argv": argv}})
    run.git(patch=PATCH).data()
    return run


def test_show_reproduce_prints_a_recipe_to_copy(
    files: StoreFiles, dirty_run: RunFiles, capsys
) -> None:
    """Checkout, apply the patch by its absolute path, pip install, verify-data, cd and command."""
    assert run_cli(files, "show", "r1", "--reproduce") == 0
    lines = capsys.readouterr().out.splitlines()
    commands = [line for line in lines if line and not line.startswith("#")]
    patch = dirty_run.path / "git.patch"
    assert commands == [
        "git checkout 9fceb02d0ae598e95dc970b74767f19372d61af8    # branch main",
        f"git apply {shlex.quote(str(patch))}    # uncommitted changes",
        "python -m pip install -r requirements.txt",
        f"runjournal --store {shlex.quote(str(files.root))} verify-data r1",
        "cd /home/ada/proj",
        "python train.py --name 'two words' --token '<redacted>'",
    ]
    text = "\n".join(lines)
    assert "# 2. Packages: 2 pinned; Python 3.11.7 (CPython) on Linux 6.1.0 x86_64" in text
    assert "train  input  sha256:3a7bd3e2360a3d29  /data/imagenet/train" in text
    assert "# note: the command line had secrets redacted" in text
    assert "2 untracked files" in text


def test_show_reproduce_writes_requirements(
    files: StoreFiles, dirty_run: RunFiles, tmp_path: Path, capsys
) -> None:
    """--requirements FILE writes name==version pins, without pip and the project itself."""
    target = tmp_path / "req.txt"
    assert run_cli(files, "show", "r1", "--reproduce", "--requirements", str(target)) == 0
    captured = capsys.readouterr()
    assert f"runjournal: wrote 2 package pins to {target}" in captured.err
    assert f"python -m pip install -r {target}" in captured.out
    lines = target.read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == [
        "numpy==2.4.6",
        "torch==2.13.0+cu121",
    ]
    assert "# not pinned: pip==24.0 (the installer itself)" in lines
    assert any(line.startswith("# not pinned: Proj==0.1.0 (the project itself") for line in lines)


def test_show_reproduce_json(files: StoreFiles, dirty_run: RunFiles, capsys) -> None:
    """--json gives the recipe as data."""
    assert run_cli(files, "show", "r1", "--reproduce", "--json") == 0
    recipe = strict_json(capsys.readouterr().out)
    assert recipe["git"]["commit"] == "9fceb02d0ae598e95dc970b74767f19372d61af8"
    assert recipe["patch_path"] == str(dirty_run.path / "git.patch")
    assert recipe["packages"] == {"numpy": "2.4.6", "torch": "2.13.0+cu121"}
    assert recipe["command"]["cwd"] == "/home/ada/proj"
    assert recipe["data"][0]["hash"].startswith("3a7bd3e2")


def test_show_reproduce_of_a_run_without_capture_says_what_is_missing(
    files: StoreFiles, capsys
) -> None:
    """No git state, no packages, no data, no command: each step says so."""
    files.ended_run("r1").write("git.json", b'{"format": 1, "status": "not_a_repo"}')
    assert run_cli(files, "show", "r1", "--reproduce") == 0
    out = capsys.readouterr().out
    assert "# 1. Code: the run was not in a git repository; the code cannot be checked out" in out
    assert "# 2. Packages: none were recorded" in out
    assert "# 3. Data: none was recorded" in out
    assert "# 4. Command: none was recorded" in out
    assert run_cli(files, "show", "r1", "--requirements", "req.txt") == 1
    assert "recorded no packages" in capsys.readouterr().err


def test_show_reproduce_of_a_module_and_a_notebook(files: StoreFiles, capsys) -> None:
    """python -m keeps its module; a notebook run names the notebook."""
    command = {"argv": ["/p/pkg/train.py", "--lr", "1"], "script": None, "module": "pkg.train"}
    files.ended_run("r1").environment({"command": command})
    notebook = {"kind": "jupyter", "path": "/home/ada/explore.ipynb", "cells": ["1 + 1"]}
    files.ended_run("r2").environment({"notebook": notebook})
    run_cli(files, "show", "r1", "--reproduce")
    assert "python -m pkg.train --lr 1" in capsys.readouterr().out
    run_cli(files, "show", "r2", "--reproduce")
    assert "started in the notebook /home/ada/explore.ipynb" in capsys.readouterr().out


def test_show_prints_git_command_and_data(files: StoreFiles, dirty_run: RunFiles, capsys) -> None:
    """Plain show has the git state and command in its header, and a data section."""
    assert run_cli(files, "show", "r1") == 0
    out = capsys.readouterr().out
    assert "git             9fceb02d0ae5 main dirty" in out
    assert "command         python train.py --name 'two words'" in out
    assert "train  input  sha256:3a7bd3e2360a3d29  /data/imagenet/train" in out


def test_ls_json_leaves_the_environment_out(files: StoreFiles, dirty_run: RunFiles, capsys) -> None:
    """ls --json has git, data and command; the package lists are for show --json."""
    assert run_cli(files, "ls", "--json") == 0
    (record,) = strict_json(capsys.readouterr().out)
    assert "environment" not in record
    assert record["git"]["branch"] == "main" and record["data"][0]["name"] == "train"
    assert record["command"]["argv"][0] == "train.py"
    run_cli(files, "show", "r1", "--json")
    assert strict_json(capsys.readouterr().out)["environment"]["packages"]["numpy"] == "2.4.6"


# -------------------------------------------------------------- verify-data


@pytest.fixture
def data_run(files: StoreFiles, tmp_path: Path) -> tuple[RunFiles, Path]:
    data = tmp_path / "data"
    data.mkdir()
    run = files.ended_run("r1")
    run.data(name="train", **data_file(data / "train.csv", b"x,y\n1,2\n"))
    run.data(name="labels", **data_file(data / "labels.csv", b"id,label\n1,cat\n"))
    run.data(name="model", role="output", **data_file(data / "model.bin", b"\x00weights"))
    run.data(name="frame", kind="dataframe", path=None, hash="ab" * 32)
    return run, data


def test_verify_data_passes_when_nothing_changed(
    files: StoreFiles, data_run: tuple[RunFiles, Path], capsys
) -> None:
    """Every file hashes as recorded: exit 0; a DataFrame is skipped, not failed."""
    assert run_cli(files, "verify-data", "r1") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "run r1 (brisk-heron-7): 3 ok, 1 skipped"
    assert "skipped  frame" in out and "a DataFrame" in out


def test_verify_data_fails_on_a_changed_or_missing_file(
    files: StoreFiles, data_run: tuple[RunFiles, Path], capsys
) -> None:
    """A changed file and a deleted one: exit 1, each named; --role limits the checks."""
    _, data = data_run
    (data / "train.csv").write_bytes(b"x,y\n1,3\n")
    (data / "labels.csv").unlink()
    assert run_cli(files, "verify-data", "r1") == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "run r1 (brisk-heron-7): 1 ok, 1 changed, 1 missing, 1 skipped"
    changed = next(line for line in out.splitlines() if "changed  train" in line)
    assert "recorded sha256:" in changed and ", now sha256:" in changed
    assert run_cli(files, "verify-data", "r1", "--role", "output") == 0
    assert capsys.readouterr().out.splitlines()[0] == "run r1 (brisk-heron-7): 1 ok"


def test_verify_data_json(files: StoreFiles, data_run: tuple[RunFiles, Path], capsys) -> None:
    """--json gives every check with its status; the exit code still says whether all match."""
    _, data = data_run
    (data / "model.bin").write_bytes(b"\x00retrained")
    assert run_cli(files, "verify-data", "r1", "--json") == 1
    result = strict_json(capsys.readouterr().out)
    assert result["ok"] is False
    assert {check["name"]: check["status"] for check in result["checks"]} == {
        "train": "ok",
        "labels": "ok",
        "model": "changed",
        "frame": "skipped",
    }
    model = next(check for check in result["checks"] if check["name"] == "model")
    expected = "sha256:" + hashlib.sha256(b"\x00retrained").hexdigest()
    assert model["found"] == expected


def test_verify_data_of_a_run_without_data(files: StoreFiles, capsys) -> None:
    files.ended_run("r1")
    assert run_cli(files, "verify-data", "r1") == 0
    assert capsys.readouterr().out == "run r1 (brisk-heron-7): no data was recorded\n"


def test_verify_data_reports_data_that_cannot_be_hashed(
    files: StoreFiles, tmp_path: Path, capsys
) -> None:
    """A path that became a FIFO cannot be hashed: an error, exit 1, no hang."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    files.ended_run("r1").data(name="pipe", kind="file", path=str(fifo), hash="ab" * 32)
    assert run_cli(files, "verify-data", "r1") == 1
    assert "error  pipe" in capsys.readouterr().out
