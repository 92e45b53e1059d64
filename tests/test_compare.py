"""runjournal.compare.diff: what differs between two runs, group by group, in Python and JSON."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from _runfiles import T0, RunFiles, StoreFiles
from runjournal import cli
from runjournal.compare import GROUPS, RunDiff, diff, same_value
from runjournal.query import Store
from runjournal.reproduce import reproduce, verify_data

PATCH = b"diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-a\n+b\n"


@pytest.fixture
def files(tmp_path: Path) -> StoreFiles:
    return StoreFiles(tmp_path / "store")


def twin(files: StoreFiles, run_id: str, *, start: float = T0) -> RunFiles:
    """A run with params, metrics, environment, git state and data: the same for every twin."""
    run = files.ended_run(run_id, start=start, name=run_id)
    run.params({"lr": 0.1, "model": {"depth": 50, "act": "relu"}, "seed": 7})
    run.metrics(0, {"loss": 1.0, "acc": 0.5}).metrics(1, {"loss": 0.5, "acc": float("nan")})
    return run


def full_twin(files: StoreFiles, run_id: str, **changes) -> RunFiles:
    run = twin(files, run_id, start=T0 + len(list(files.root.glob("runs/*"))))
    run.environment(changes.get("environment")).git(changes.get("git"), patch=changes.get("patch"))
    run.data(**changes.get("data", {}))
    run.data(name="labels", kind="file", path="/data/labels.csv", hash="c" * 64)
    return run


def run_diff(files: StoreFiles, a: str = "a", b: str = "b", **options) -> RunDiff:
    return diff(a, b, store=files.root, **options)


# ------------------------------------------------------------------ must show


@pytest.fixture
def three_differences(files: StoreFiles) -> StoreFiles:
    """Two runs that differ in exactly one param, one data file's hash and one package version."""
    full_twin(files, "a")
    run_b = full_twin(
        files,
        "b",
        environment={"packages": {"numpy": "2.4.7"}},
        data={"hash": "f" * 64},
    )
    run_b.params({"lr": 0.2})
    return files


def test_diff_names_exactly_the_one_param_data_file_and_package_that_differ(
    three_differences: StoreFiles,
) -> None:
    """The must-show of issue 3, in Python: three differences, nothing else."""
    result = run_diff(three_differences)
    assert result.differences() == ["params.lr", "data.train", "packages.numpy"]
    assert result.params.changed["lr"].model_dump() == {"old": 0.1, "new": 0.2}
    assert result.data.changed["train"].new == "sha256:" + "f" * 64
    assert result.packages.changed["numpy"].model_dump() == {"old": "2.4.6", "new": "2.4.7"}
    assert not result.is_empty
    assert (result.params.equal, result.data.equal, result.packages.equal) == (3, 1, 1)
    for name in ("metrics", "code", "platform", "command", "env"):
        group = result.group(name)
        assert group.is_empty and group.equal > 0, name


def test_diff_json_names_exactly_the_same_three(three_differences: StoreFiles, capsys) -> None:
    """The must-show on the command line: runjournal diff --json gives the same structure."""
    assert cli.main(["--store", str(three_differences.root), "diff", "a", "b", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    kinds = ("changed", "added", "removed")
    differing = {
        group: sorted(name for kind in kinds for name in output[group][kind]) for group in GROUPS
    }
    assert {group: names for group, names in differing.items() if names} == {
        "params": ["lr"],
        "data": ["train"],
        "packages": ["numpy"],
    }
    assert output["packages"]["changed"]["numpy"] == {"old": "2.4.6", "new": "2.4.7"}
    assert output["is_empty"] is False
    assert all(output[group]["not_recorded_in"] == [] for group in GROUPS)


def test_diff_text_names_the_three_and_summarises_the_rest(
    three_differences: StoreFiles, capsys
) -> None:
    """Equal groups take one line each; the three differences one line each."""
    assert cli.main(["--store", str(three_differences.root), "diff", "a", "b"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == [
        "params: 1 changed, 3 equal",
        "  ~ lr  0.1 -> 0.2",
        "metrics: 2 equal",
        "code: 5 equal",
        "data: 1 changed, 1 equal",
        "  ~ train  sha256:3a7bd3e2360a -> sha256:ffffffffffff",
        "packages: 1 changed, 1 equal",
        "  ~ numpy  2.4.6 -> 2.4.7",
        "platform: 13 equal",
        "command: 4 equal",
        "env: 2 equal",  # SLURM_JOB_ID names the job: left out
    ]
    assert lines[0].split() == ["A", "a", "a"]


# ------------------------------------------------------------------ values


def test_values_are_compared_as_stored(files: StoreFiles) -> None:
    """1 and 1.0 differ, True and 1 differ, NaN equals NaN, nested lists compare by value."""
    twin(files, "a").params({"n": 1, "flag": True, "x": float("nan"), "widths": [1, 2]})
    twin(files, "b").params({"n": 1.0, "flag": 1, "x": float("nan"), "widths": [1, 2]})
    result = run_diff(files)
    assert sorted(result.params.changed) == ["flag", "n"]
    assert result.params.equal == 6
    assert result.metrics.is_empty and result.metrics.equal == 2  # acc is NaN in both


def test_same_value_is_strict_about_types_and_kind_to_nan() -> None:
    assert same_value(float("nan"), float("nan"))
    assert same_value({"a": [float("nan")]}, {"a": [float("nan")]})
    assert not same_value(1, 1.0) and not same_value(0.0, -0.0) and not same_value(1, True)
    assert not same_value({"a": 1}, {"a": 1, "b": 2}) and not same_value([1], [1, 2])
    assert same_value("x", "x") and same_value(None, None)


def test_params_added_removed_and_nested_names(files: StoreFiles) -> None:
    """Names only one run has are added (B) or removed (A), with flat dotted names."""
    twin(files, "a").params({"dropout": 0.1})
    twin(files, "b").params({"model": {"depth": 101}, "warmup": 100})
    result = run_diff(files)
    assert result.params.removed == {"dropout": 0.1}
    assert result.params.added == {"warmup": 100}
    assert result.params.changed["model.depth"].model_dump() == {"old": 50, "new": 101}
    assert result.differences() == ["params.model.depth", "params.warmup", "params.dropout"]


def test_metrics_compare_last_values_with_deltas(files: StoreFiles) -> None:
    """Changed metrics carry new - old; NaN against a number has a NaN delta."""
    twin(files, "a").metrics(2, {"loss": 0.25, "acc": 0.5, "only_a": 1})
    twin(files, "b").metrics(2, {"loss": 0.125, "acc": 0.75, "tokens": 2**70})
    result = run_diff(files)
    assert result.metrics.changed["loss"].delta == -0.125
    assert result.metrics.changed["acc"].delta == 0.25
    assert result.metrics.added == {"tokens": 2**70} and result.metrics.removed == {"only_a": 1}
    twin(files, "c").metrics(2, {"loss": float("nan"), "acc": 0.5, "only_a": 1})
    nan_delta = diff("a", "c", store=files.root).metrics.changed["loss"].delta
    assert math.isnan(nan_delta)


# ------------------------------------------------------------------ code


def test_code_commit_branch_and_dirty(files: StoreFiles) -> None:
    """Commits, branches and dirty flags are compared, and the patches by their hash."""
    full_twin(files, "a")
    full_twin(files, "b", git={"commit": "1" * 40, "branch": "exp"}, patch=PATCH)
    result = run_diff(files)
    assert sorted(result.code.changed) == ["branch", "commit", "dirty", "patch"]
    assert result.code.changed["patch"].old is None
    assert result.code.changed["patch"].new is not None
    assert result.code.patch_diff is None  # not asked for
    text = result.to_text()
    assert "~ commit  9fceb02d0ae5 -> 111111111111" in text
    assert "`git diff 9fceb02d0ae5 111111111111`" in text


def test_patches_that_differ_and_the_patch_diff_on_request(files: StoreFiles, capsys) -> None:
    """Two dirty trees: whether the patches differ, and their unified diff with --patch."""
    full_twin(files, "a", patch=PATCH)
    full_twin(files, "b", patch=PATCH.replace(b"+b\n", b"+c\n"))
    full_twin(files, "c", patch=PATCH)
    assert diff("a", "c", store=files.root).code.is_empty
    result = run_diff(files, patch=True)
    assert list(result.code.changed) == ["patch"]
    assert "-+b\n++c\n" in result.code.patch_diff
    assert result.code.patch_diff.startswith("--- A/a/git.patch\n+++ B/b/git.patch\n")
    assert cli.main(["--store", str(files.root), "diff", "a", "b", "--patch"]) == 0
    out = capsys.readouterr().out
    assert "patch diff (A's git.patch -> B's git.patch):" in out and "  ++c" in out


def test_a_group_only_one_run_recorded_is_a_difference(files: StoreFiles) -> None:
    """No environment or git in B: not recorded in B, nothing listed one by one."""
    full_twin(files, "a")
    twin(files, "b").data().data(name="labels", kind="file", hash="c" * 64)
    twin(files, "c")
    result = run_diff(files)
    assert result.packages.not_recorded_in == ["b"] and result.packages.added == {}
    assert result.code.not_recorded_in == ["b"]
    assert result.differences() == ["code", "packages", "platform", "command", "env"]
    assert "packages: not recorded in B" in result.to_text()
    neither = diff("b", "c", store=files.root)
    assert neither.packages.not_recorded_in == ["a", "b"] and neither.packages.is_empty
    assert "packages: not recorded in either run" in neither.to_text()


# ------------------------------------------------------------ environment


def test_packages_platform_command_and_env(files: StoreFiles) -> None:
    """Package versions (names normalized), hardware, the command line and env variables."""
    full_twin(files, "a", environment={"packages": {"PyYAML": "6.0.2", "scipy": "1.0"}})
    full_twin(
        files,
        "b",
        environment={
            "packages": {"pyyaml": "6.0.2", "torch": "2.14.0", "rich": "14.0.0"},
            "gpus": [{"name": "NVIDIA H100"}, {"name": "NVIDIA H100"}],
            "memory": {"total_bytes": 1},
            "command": {"argv": ["train.py", "--lr", "0.2"]},
            "env": {"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_ID": "4243", "MASTER_PORT": "2"},
        },
    )
    result = run_diff(files)
    assert result.packages.changed["torch"].model_dump() == {"old": "2.13.0", "new": "2.14.0"}
    assert result.packages.added == {"rich": "14.0.0"}
    assert result.packages.removed == {"scipy": "1.0"}
    assert result.packages.equal == 2  # pyyaml and numpy
    assert sorted(result.platform.changed) == ["gpus", "memory.total_bytes"]
    assert result.platform.changed["gpus"].new == ["NVIDIA H100", "NVIDIA H100"]
    assert list(result.command.changed) == ["argv"]
    assert list(result.env.changed) == ["CUDA_VISIBLE_DEVICES"]  # job ids are no difference
    assert result.env.added == {} and result.env.equal == 1
    text = result.to_text()
    assert "~ argv  train.py --lr 0.1 -> train.py --lr 0.2" in text


def test_records_and_references_both_work(files: StoreFiles) -> None:
    """diff takes records or references; two identical runs give an empty diff."""
    full_twin(files, "a")
    full_twin(files, "b")
    store = Store(files.root)
    result = diff(store.run("a"), "b", store=store)
    assert result.is_empty and result.differences() == []
    assert result.to_text().endswith("no differences")
    assert (result.a.id, result.b.name) == ("a", "b")


def test_escape_sequences_never_reach_the_text(files: StoreFiles) -> None:
    """Names and values from the store are made safe for the terminal."""
    twin(files, "a").params({"p\x1b[2J": "v\x1b]0;pwned\x07"})
    twin(files, "b")
    text = run_diff(files).to_text()
    assert "\x1b" not in text and "\x07" not in text


# ---------------------------------------------------------------- end to end


def _git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=Ada", "-c", "user.email=ada@example.com"]
    command = ["git", *identity, "-c", "commit.gpgsign=false", "-C", str(repo), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def test_real_runs_in_a_real_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs of a script: another lr, an edited script, changed data; diff names just those."""
    repo, store, labels = tmp_path / "proj", tmp_path / "store", tmp_path / "labels.csv"
    repo.mkdir()
    (repo / "train.py").write_text(
        "import sys, runjournal\n"
        "with runjournal.start('e2e', params={'lr': float(sys.argv[1])}) as run:\n"
        f"    run.log_data('labels', {str(labels)!r})\n"
        "    run.log({'acc': 0.5})\n"
    )
    _git(repo, "init", "-q")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-qm", "first")
    monkeypatch.setenv("RUNJOURNAL_STORE", str(store))

    def train(lr: str) -> str:
        subprocess.run([sys.executable, "train.py", lr], cwd=repo, check=True, timeout=120)
        return Store(store).runs()[-1].id

    labels.write_text("id,label\n1,cat\n")
    run_a = train("0.1")
    labels.write_text("id,label\n1,dog\n")
    (repo / "train.py").write_text((repo / "train.py").read_text() + "# tuned\n")
    run_b = train("0.2")

    result = diff(run_a, run_b, store=store, patch=True)
    assert result.differences() == [
        "params.lr",
        "code.dirty",
        "code.patch",
        "data.labels",
        "command.argv",
    ]
    assert result.packages.equal > 0 and result.platform.equal > 0
    assert "+# tuned" in result.code.patch_diff

    recipe = reproduce(run_b, store=store)
    commit = Store(store).run(run_b).git.commit
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, timeout=60)
    _git(clone, "checkout", "-q", commit)
    _git(clone, "apply", recipe.patch_path)
    assert (clone / "train.py").read_text() == (repo / "train.py").read_text()
    assert recipe.shell_command() == "python train.py 0.2"
    assert [check.status for check in verify_data(run_a, store=store).checks] == ["changed"]
    assert verify_data(run_b, store=store).ok
