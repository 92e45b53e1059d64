"""Rank-aware start(): a distributed job (torchrun, srun, mpirun) is one run, not one per rank."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import runjournal
from _children import TIMEOUT, child_env
from runjournal import _ranks
from runjournal.errors import InvalidArgumentError, RunNotFoundError

TRAIN = """
import sys, time, runjournal
if sys.argv[2] == "late":
    time.sleep(0.5)  # rank 0 comes last: the other ranks must wait for it
run = runjournal.start("ddp", per_rank=sys.argv[1] == "1", params={"lr": 0.1}, tags={"k": 1})
run.log_params({"lr": 0.1})  # the same script on every rank
run.tag(stage="train")
for step in range(100):
    run.log({"loss": 1 / (step + 1)}, step=step)
run.end()
print(type(run).__name__, run.id, run.dir is not None, flush=True)
"""

_LAUNCHER_VARIABLES = (
    "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID",
    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_JOB_ID", "SLURM_STEP_ID",
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_SIZE", "PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _torchrun_env(rank: int, world: int = 4) -> dict[str, str]:
    """What torchrun sets for each worker (torch.distributed.elastic)."""
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "GROUP_RANK": "0",
        "ROLE_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(world),
        "ROLE_WORLD_SIZE": str(world),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
        "TORCHELASTIC_RUN_ID": "job-7f3a",
        "TORCHELASTIC_RESTART_COUNT": "0",
        "TORCHELASTIC_MAX_RESTARTS": "0",
    }


def _launch(store: Path, envs: list[dict[str, str]], per_rank: bool) -> list[list[str]]:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", TRAIN, "1" if per_rank else "0", "late" if i == 0 else ""],
            env={**child_env(store), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, env in enumerate(envs)
    ]
    outputs = [child.communicate(timeout=TIMEOUT) for child in children]
    assert [child.returncode for child in children] == [0] * len(envs), outputs
    return [out.split() for out, _ in outputs]


def _run_dirs(store: Path) -> list[Path]:
    return sorted((store / "runs").iterdir())


def test_four_torchrun_ranks_make_one_run(tmp_path: Path) -> None:
    store = tmp_path / "store"
    printed = _launch(store, [_torchrun_env(rank) for rank in range(4)], per_rank=False)
    assert (
        printed
        == [["Run", "torchrun-job-7f3a", "True"]] + [["Run", "torchrun-job-7f3a", "False"]] * 3
    )
    (run_dir,) = _run_dirs(store)
    assert not list(run_dir.glob("metrics.*.jsonl"))
    assert not list(run_dir.glob("attach.*"))
    record = runjournal.Store(store).run(run_dir.name)
    assert record.status == "completed"
    assert record.params == {"lr": 0.1}
    assert len(runjournal.load_metrics(store)) == 100


def test_with_per_rank_each_rank_writes_its_own_metrics_file(tmp_path: Path) -> None:
    store = tmp_path / "store"
    printed = _launch(store, [_torchrun_env(rank) for rank in range(4)], per_rank=True)
    assert [words[0] for words in printed] == ["Run"] + ["AttachedRun"] * 3
    (run_dir,) = _run_dirs(store)
    assert sorted(p.name for p in run_dir.glob("metrics*.jsonl")) == [
        "metrics.jsonl",
        "metrics.rank1.jsonl",
        "metrics.rank2.jsonl",
        "metrics.rank3.jsonl",
    ]
    frame = runjournal.load_metrics(store)
    labels = frame["writer"].fillna("main")
    assert labels.value_counts().to_dict() == {w: 100 for w in ("main", "rank1", "rank2", "rank3")}
    events = [orjson.loads(line) for line in (run_dir / "run.jsonl").read_bytes().splitlines()]
    assert [e["event"] for e in events].count("start") == 1
    assert [e["event"] for e in events].count("tags") == 2  # rank 0's own: start() and tag()
    assert runjournal.Store(store).run(run_dir.name).status == "completed"


SAMPLED = """
import sys, time, runjournal
if sys.argv[2] == "late":
    time.sleep(0.3)  # rank 0 comes last: the other ranks wait for its run
interval = False if sys.argv[1] == "off" else float(sys.argv[1])
run = runjournal.start("ddp", per_rank=True, system_metrics=interval)
for step in range(6):
    run.log({"loss": 1 / (step + 1)}, step=step)
    time.sleep(0.1)
run.end()
"""


def _launch_sampled(store: Path, interval: str, world: int) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", SAMPLED, interval, "late" if rank == 0 else ""],
            env={**child_env(store), **_torchrun_env(rank, world)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(world)
    ]
    outputs = [child.communicate(timeout=TIMEOUT) for child in children]
    assert [child.returncode for child in children] == [0] * world, outputs


def test_with_per_rank_each_rank_samples_system_metrics_into_its_own_file(
    tmp_path: Path,
) -> None:
    """Every per_rank rank writes system.rankN.jsonl, and load_metrics(system=True) labels them."""
    store = tmp_path / "store"
    _launch_sampled(store, "0.05", world=3)
    (run_dir,) = _run_dirs(store)
    files = sorted(p.name for p in run_dir.glob("system*.jsonl"))
    assert files == ["system.jsonl", "system.rank1.jsonl", "system.rank2.jsonl"]
    for name in files:
        lines = [orjson.loads(line) for line in (run_dir / name).read_bytes().splitlines()]
        assert lines and all("proc/rss_bytes" in line["s"] for line in lines)
        assert {line["seg"] for line in lines} == {0}
    frame = runjournal.load_metrics(store, system=True)
    labels = frame["writer"].fillna("main")
    system = frame[frame["key"] == "system/proc/rss_bytes"]
    for writer, name in zip(("main", "rank1", "rank2"), files, strict=True):
        rows = system[labels[system.index] == writer]
        samples = len((run_dir / name).read_bytes().splitlines())
        assert rows["step"].tolist() == list(range(samples))  # numbered per writer's file
    metrics = frame[frame["key"] == "loss"]
    assert labels[metrics.index].value_counts().to_dict() == {"main": 6, "rank1": 6, "rank2": 6}
    only = runjournal.load_metrics(store, system=True, writer="rank2")
    assert set(only["writer"]) == {"rank2"}
    assert {"loss", "system/proc/rss_bytes"} <= set(only["key"])


def test_per_rank_ranks_sample_nothing_with_system_metrics_off(tmp_path: Path) -> None:
    """start(per_rank=True, system_metrics=False) leaves no system file on any rank."""
    store = tmp_path / "store"
    _launch_sampled(store, "off", world=2)
    (run_dir,) = _run_dirs(store)
    assert not list(run_dir.glob("system*.jsonl"))
    assert (run_dir / "metrics.rank1.jsonl").exists()


def test_srun_tasks_make_one_run_named_after_the_job_step(tmp_path: Path) -> None:
    store = tmp_path / "store"
    envs = [
        {"SLURM_PROCID": str(n), "SLURM_NTASKS": "2", "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0"}
        for n in range(2)
    ]
    printed = _launch(store, envs, per_rank=True)
    assert {words[1] for words in printed} == {"slurm-4242-0"}
    assert (store / "runs" / "slurm-4242-0" / "metrics.rank1.jsonl").exists()


def test_a_restarted_job_resumes_its_run(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for _ in range(2):
        _launch(store, [_torchrun_env(rank, world=2) for rank in range(2)], per_rank=True)
    (run_dir,) = _run_dirs(store)
    events = [
        orjson.loads(line)["event"] for line in (run_dir / "run.jsonl").read_bytes().splitlines()
    ]
    assert events.count("resume") == 1
    assert sorted(p.name for p in run_dir.glob("attach.*")) == [
        "attach.rank1.0.json",
        "attach.rank1.1.json",
    ]


def test_detect_reads_torchrun_first_and_ignores_a_job_of_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _ranks.detect() is None
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert _ranks.detect() is None  # any sbatch job: one task is not distributed
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert _ranks.detect() == _ranks.Ranks("slurm", 1, 2, one_node=False)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert _ranks.detect() == _ranks.Ranks("torchrun", 3, 8, one_node=False)
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "2")
    monkeypatch.delenv("RANK")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert _ranks.detect() == _ranks.Ranks("mpi", 2, 4, one_node=False)


def test_the_run_id_comes_from_the_launcher_or_start(monkeypatch: pytest.MonkeyPatch) -> None:
    ranks = _ranks.Ranks("torchrun", 0, 2, one_node=False)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # torchrun's default without --rdzv-id
    with pytest.raises(InvalidArgumentError, match="run_id"):
        _ranks.job_run_id(ranks)
    one_node = _ranks.job_run_id(ranks._replace(one_node=True))
    assert one_node.startswith("torchrun-") and one_node == _ranks.job_run_id(
        ranks._replace(one_node=True, rank=1)
    )
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    assert _ranks.job_run_id(ranks) == "slurm-99"
    monkeypatch.setenv("OMPI_MCA_ess_base_jobid", "123@1")
    assert _ranks.job_run_id(ranks._replace(launcher="mpi")) == "mpi-123-1"


def test_an_explicit_run_id_wins_over_the_derived_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _torchrun_env(1, world=2).items():
        monkeypatch.setenv(name, value)
    run = runjournal.start(run_id="mine")
    assert (run.id, run.dir) == ("mine", None)
    run.log({"x": 1})  # a rank above 0 without per_rank: every call works, nothing is written
    run.end()
    assert not Path(".runjournal").exists()


def test_a_rank_gives_up_waiting_for_rank_0(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _torchrun_env(1, world=2).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RUNJOURNAL_RANK_TIMEOUT", "0.2")
    with pytest.raises(RunNotFoundError, match="rank 0"):
        runjournal.start(per_rank=True)
    monkeypatch.setenv("RUNJOURNAL_RANK_TIMEOUT", "soon")
    with pytest.raises(InvalidArgumentError, match="RUNJOURNAL_RANK_TIMEOUT"):
        runjournal.start(per_rank=True)
