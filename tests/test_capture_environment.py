"""environment.json: what start() captures, how parts are tuned, and that it never fails a run."""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import runjournal
from runjournal.capture import CaptureOptions, _hardware, _packages, capture_environment
from runjournal.capture.environment import environment_variables, python_env, scheduler
from runjournal.errors import InvalidArgumentError, RunjournalWarning

NO_GIT: dict[str, Any] = {"git": False}
"""Most tests here are about the environment; git has tests/test_capture_git.py."""


def read_json(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_bytes())
    return result


def events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "run.jsonl").read_bytes().splitlines()]


def environment_of(run: runjournal.Run, name: str = "environment.json") -> dict[str, Any]:
    assert run.dir is not None
    return read_json(run.dir / name)


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    """Forget the once-per-process readings before and after a test that changes the machine."""
    _hardware.clear_caches()
    _packages.clear_cache()
    yield
    _hardware.clear_caches()
    _packages.clear_cache()


def executable(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_start_writes_every_part_of_the_environment_once() -> None:
    """A default start writes environment.json with every part, in the documented shapes."""
    with runjournal.start(capture=NO_GIT) as run:
        pass
    env = environment_of(run)
    assert (env["format"], env["seg"], env["capture_errors"]) == (1, 0, [])
    assert 0 <= env["capture_seconds"] < 30 and env["captured_at"] <= time.time()
    command = env["command"]
    assert command["argv"] == sys.argv and command["cwd"] == str(Path.cwd())
    assert command["executable"] == sys.executable
    assert re.fullmatch(r"UTC[+-]\d\d:\d\d", command["timezone"])
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["platform"]["system"] == os.uname().sysname
    assert env["host"]["hostname"] == os.uname().nodename
    assert env["cpu"]["logical_cores"] == os.cpu_count() and env["memory"]["total_bytes"] > 0
    assert isinstance(env["gpus"], list)
    assert env["packages"]["pytest"] == __import__("pytest").__version__
    assert env["python_env"]["prefix"] == sys.prefix
    assert env["notebook"] is None
    record = runjournal.Store().run(run.id)  # the read side accepts what the capture wrote
    assert record.environment is not None and record.environment.python is not None
    assert record.environment.python.version == env["python"]["version"]


def test_parts_can_be_turned_off_one_by_one() -> None:
    """A part set to False is absent; git False writes no git.json."""
    options = {"git": False, "packages": False, "gpus": False, "env": False}
    with runjournal.start(capture=options) as run:
        pass
    env = environment_of(run)
    assert not {"packages", "gpus", "cuda", "env"} & set(env)
    assert {"command", "python", "cpu", "memory"} <= set(env)
    assert run.dir is not None and not (run.dir / "git.json").exists()


def test_capture_false_and_the_environment_variable_turn_capture_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """capture=False or RUNJOURNAL_CAPTURE=0 writes no capture file; capture=True overrides."""
    with runjournal.start(capture=False) as off:
        pass
    monkeypatch.setenv("RUNJOURNAL_CAPTURE", "0")
    with runjournal.start() as off_by_env:
        pass
    with runjournal.start(capture=NO_GIT) as on_by_argument:
        pass
    for run in (off, off_by_env):
        assert run.dir is not None
        assert sorted(p.name for p in run.dir.iterdir()) == ["run.jsonl"]
    assert on_by_argument.dir is not None and (on_by_argument.dir / "environment.json").exists()


@pytest.mark.parametrize(
    ("capture", "named"),
    [
        ({"gitt": False}, "gitt"),
        ({"git": "no"}, "git"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"env_allow": "MYLAB_"}, "env_allow"),
        ({"secret_words": [""]}, "secret_words"),
        ({"patch_cap_bytes": -1}, "patch_cap_bytes"),
        ({"git_dir": 3}, "git_dir"),
        ("yes", "capture="),
        (CaptureOptions(timeout=-1.0), "timeout"),
    ],
)
def test_bad_capture_options_raise_naming_the_key(capture: Any, named: str, tmp_path: Path) -> None:
    """An unknown option or a bad value raises InvalidArgumentError before anything is written."""
    store = tmp_path / "store"
    with pytest.raises(InvalidArgumentError, match=re.escape(named)) as caught:
        runjournal.start(store=store, capture=capture)
    assert caught.value.argument == "capture" and not store.exists()


def test_a_bad_runjournal_capture_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """RUNJOURNAL_CAPTURE must be a boolean word."""
    monkeypatch.setenv("RUNJOURNAL_CAPTURE", "maybe")
    with pytest.raises(InvalidArgumentError, match="RUNJOURNAL_CAPTURE"):
        runjournal.start()


def test_a_disabled_run_captures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """mode="disabled" never runs the capture (and still validates its options)."""
    from runjournal.capture import _record

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("capture ran in disabled mode")

    monkeypatch.setattr(_record, "capture_run", refuse)
    with runjournal.start(mode="disabled") as run:
        run.log({"loss": 1.0})
    assert run.dir is None and not Path(".runjournal").exists()
    with pytest.raises(InvalidArgumentError):
        runjournal.start(mode="disabled", capture={"nope": 1})


def test_the_options_object_is_accepted_like_a_mapping() -> None:
    """CaptureOptions(...) works wherever a mapping does."""
    with runjournal.start(capture=CaptureOptions(git=False, packages=False)) as run:
        pass
    assert "packages" not in environment_of(run)


# -- hardware ----------------------------------------------------------------------


def test_no_gpu_tooling_means_no_gpus_and_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    """Without pynvml and nvidia-smi, gpus is [] and cuda null, with no capture error."""
    monkeypatch.setattr(_hardware.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with runjournal.start(capture=NO_GIT) as run:
        pass
    env = environment_of(run)
    assert (env["gpus"], env["cuda"], env["capture_errors"]) == ([], None, [])


NVIDIA_SMI = """\
if [ "$1" = "" ]; then
  echo "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |"
  exit 0
fi
echo "0, NVIDIA A100-SXM4-80GB, 81920, GPU-5f1c, 550.54.15"
echo "1, NVIDIA A100-SXM4-80GB, 81920, GPU-77aa, 550.54.15"
"""


@pytest.fixture
def no_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_hardware.importlib.util, "find_spec", lambda name: None)


def test_gpus_are_read_from_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None, no_pynvml: None
) -> None:
    """nvidia-smi's CSV gives each GPU; its banner gives the CUDA version."""
    executable(tmp_path / "nvidia-smi", NVIDIA_SMI)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found, cuda = _hardware.gpus(timeout=5.0)
    assert found == [
        {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory_total_bytes": 85899345920,
         "uuid": "GPU-5f1c"},
        {"index": 1, "name": "NVIDIA A100-SXM4-80GB", "memory_total_bytes": 85899345920,
         "uuid": "GPU-77aa"},
    ]  # fmt: skip
    assert cuda == {"driver_version": "550.54.15", "cuda_version": "12.4"}


def test_nvidia_smi_without_a_device_or_driver_is_no_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None, no_pynvml: None
) -> None:
    """A login node's nvidia-smi that finds no driver is an expected absence, not an error."""
    executable(
        tmp_path / "nvidia-smi",
        'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."\n'
        "exit 9\n",
    )
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with runjournal.start(capture=NO_GIT) as run:
        pass
    env = environment_of(run)
    assert (env["gpus"], env["cuda"], env["capture_errors"]) == ([], None, [])


def test_a_failing_nvidia_smi_is_a_capture_error_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None, no_pynvml: None
) -> None:
    """An unexpected nvidia-smi failure: gpus absent, named in capture_errors, one warning."""
    executable(tmp_path / "nvidia-smi", 'echo "Unknown Error" >&2\nexit 255\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.warns(RunjournalWarning, match="gpus"):
        run = runjournal.start(capture=NO_GIT)
    run.end()
    env = environment_of(run)
    assert "gpus" not in env and "cuda" not in env
    assert [error["part"] for error in env["capture_errors"]] == ["gpus"]
    assert "Unknown Error" in env["capture_errors"][0]["message"]


def test_gpus_are_read_from_pynvml_when_it_is_installed(
    monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    """A pynvml module (faked here) is preferred to nvidia-smi; nothing else is imported."""
    nvml = types.ModuleType("pynvml")
    nvml.__spec__ = importlib.machinery.ModuleSpec("pynvml", None)
    memory = types.SimpleNamespace(total=42 * 2**30)
    nvml.NVMLError = RuntimeError  # type: ignore[attr-defined]
    calls: list[str] = []
    for name, function in {
        "nvmlInit": lambda: calls.append("init"),
        "nvmlShutdown": lambda: calls.append("shutdown"),
        "nvmlDeviceGetCount": lambda: 1,
        "nvmlDeviceGetHandleByIndex": lambda index: index,
        "nvmlDeviceGetName": lambda handle: b"NVIDIA H100",
        "nvmlDeviceGetMemoryInfo": lambda handle: memory,
        "nvmlDeviceGetUUID": lambda handle: "GPU-h100",
        "nvmlSystemGetCudaDriverVersion": lambda: 12040,
        "nvmlSystemGetDriverVersion": lambda: "550.54.15",
    }.items():
        setattr(nvml, name, function)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    found, cuda = _hardware.gpus(timeout=5.0)
    assert found == [
        {"index": 0, "name": "NVIDIA H100", "memory_total_bytes": 42 * 2**30, "uuid": "GPU-h100"}
    ]
    assert cuda == {"driver_version": "550.54.15", "cuda_version": "12.4"}
    assert calls == ["init", "shutdown"]


# -- packages ----------------------------------------------------------------------


def _fake_distributions(root: Path, count: int) -> None:
    for index in range(count):
        info = root / f"fakepkg_{index:03d}-1.{index}.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: fakepkg-{index:03d}\nVersion: 1.{index}.0\n\nText\n"
        )


def test_packages_come_from_metadata_and_a_broken_entry_is_only_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    """300 distributions are listed; a broken one is skipped with a note, no error, no warning."""
    site = tmp_path / "site"
    _fake_distributions(site, 300)
    (site / "broken-0.1.dist-info").mkdir()  # no METADATA at all
    (site / "garbled-0.2.dist-info").mkdir()
    (site / "garbled-0.2.dist-info" / "METADATA").write_bytes(b"Name: \xff\xfe\n")
    monkeypatch.syspath_prepend(str(site))
    with runjournal.start(capture=NO_GIT) as run:
        pass
    env = environment_of(run)
    packages = env["packages"]
    assert packages["fakepkg-000"] == "1.0.0" and packages["fakepkg-299"] == "1.299.0"
    assert list(packages) == sorted(packages, key=str.lower)
    assert env["capture_errors"] == []
    notes = env["capture_notes"]
    assert {note["part"] for note in notes} == {"packages"} and len(notes) == 2
    assert any("broken-0.1.dist-info" in note["message"] for note in notes)


def test_packages_are_read_once_per_process(
    monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    """start() may run hundreds of times: the installed distributions are listed only once."""
    scans = []
    real = _packages.distributions  # importlib.metadata.distributions(), or the same listing

    def counting() -> Any:
        scans.append(1)
        return real()

    monkeypatch.setattr(_packages, "distributions", counting)
    for _ in range(3):
        with runjournal.start(capture=NO_GIT):
            pass
    assert len(scans) == 1


# -- python environment, scheduler, environment variables -------------------------


def test_the_python_environment_kind_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A venv, a conda environment (conda-meta) and a system Python are told apart."""
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    assert python_env() == {"kind": "venv", "name": "venv", "prefix": str(tmp_path / "venv")}
    conda = tmp_path / "envs" / "torch"
    (conda / "conda-meta").mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(conda))
    monkeypatch.setattr(sys, "base_prefix", str(conda))
    monkeypatch.setenv("CONDA_PREFIX", str(conda))
    monkeypatch.setenv("CONDA_DEFAULT_ENV", "torch-2")
    assert python_env() == {"kind": "conda", "name": "torch-2", "prefix": str(conda)}
    monkeypatch.setattr(sys, "prefix", "/usr")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    assert python_env()["kind"] == "system"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"SLURM_JOB_ID": "4242", "SLURM_ARRAY_JOB_ID": "4240", "SLURM_ARRAY_TASK_ID": "2",
             "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_NTASKS": "8", "SLURM_PROCID": "0",
             "SLURM_RESTART_COUNT": "1"},
            {"kind": "slurm", "job_id": "4242", "array_job_id": "4240", "array_task_id": "2",
             "nodelist": "node[1-2]", "ntasks": "8", "procid": "0", "restart_count": "1"},
        ),
        ({"PBS_JOBID": "77.pbs", "PBS_ARRAYID": "3"},
         {"kind": "pbs", "job_id": "77.pbs", "array_task_id": "3"}),
        ({"LSB_JOBID": "9", "LSB_JOBINDEX": "4"},
         {"kind": "lsf", "job_id": "9", "array_task_id": "4"}),
        ({"JOB_ID": "5", "SGE_TASK_ID": "6"}, {"kind": "sge", "job_id": "5", "array_task_id": "6"}),
        ({"JOB_ID": "5"}, None),
        ({}, None),
    ],
)  # fmt: skip
def test_scheduler_ids_are_recorded(environ: dict[str, str], expected: Any) -> None:
    """SLURM, PBS, LSF and SGE job and array ids; nothing outside a job."""
    assert scheduler(environ) == expected


def test_environment_variables_are_kept_by_allow_list_and_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Allowed names are kept, secret ones as <redacted>; others never; the list extends."""
    monkeypatch.setenv("RUNJOURNAL_CAPTURE_ENV", "LAB_SITE")
    environ = {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "SLURM_JOB_ID": "4242",
        "HF_TOKEN": "hf_abcdefABCDEF1234567890abcdefABCD",
        "HF_HOME": "/scratch/hf",
        "HF_ENDPOINT": "https://ada:pw@mirror.example.org",
        "WANDB_API_KEY": "0123456789abcdef",
        "TOKENIZERS_PARALLELISM": "false",
        "MYLAB_QUEUE": "gpu",
        "LAB_SITE": "north",
        "LAB_SITE_X": "not exact",
        "HOME": "/home/ada",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "LANGUAGE": "en",
    }
    allow = (*runjournal.capture.environment.ENV_ALLOW, "MYLAB_", *CaptureOptions().allowed_env())
    assert environment_variables(allow, environ=environ) == {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "HF_ENDPOINT": "https://<redacted>@mirror.example.org",
        "HF_HOME": "/scratch/hf",
        "HF_TOKEN": "<redacted>",
        "LAB_SITE": "north",
        "MYLAB_QUEUE": "gpu",
        "SLURM_JOB_ID": "4242",
        "TOKENIZERS_PARALLELISM": "false",
        "WANDB_API_KEY": "<redacted>",
    }


def test_env_allow_option_reaches_environment_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """capture={"env_allow": [...]} adds prefixes for the run's environment.json."""
    monkeypatch.setenv("MYLAB_PARTITION", "a100")
    monkeypatch.setenv("MYLAB_PASSWORD", "hunter2")
    with runjournal.start(capture={**NO_GIT, "env_allow": ["MYLAB_"]}) as run:
        pass
    env = environment_of(run)["env"]
    assert env["MYLAB_PARTITION"] == "a100" and env["MYLAB_PASSWORD"] == "<redacted>"


# -- command line and notebooks ------------------------------------------------------


def test_the_command_line_is_recorded_with_secret_options_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """argv is kept as given except the values of secret options."""
    monkeypatch.setattr(sys, "argv", ["train.py", "--lr", "0.1", "--api-key=XYZ123"])
    with runjournal.start(capture=NO_GIT) as run:
        pass
    assert environment_of(run)["command"]["argv"] == [
        "train.py",
        "--lr",
        "0.1",
        "--api-key=<redacted>",
    ]


def test_a_module_run_with_dash_m_is_recorded_as_the_module(tmp_path: Path) -> None:
    """`python -m pkg.train` records module "pkg.train" and no script."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(
        "import runjournal\n"
        "with runjournal.start(capture={'git': False, 'packages': False}) as run:\n"
        "    print(run.dir)\n"
    )
    env = {**os.environ, "RUNJOURNAL_STORE": str(tmp_path / "store"), "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pkg.train", "--epochs", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    command = read_json(Path(done.stdout.strip()) / "environment.json")["command"]
    assert (command["module"], command["script"]) == ("pkg.train", None)
    assert command["argv"][1:] == ["--epochs", "3"]


class ZMQInteractiveShell:
    """Stands in for ipykernel's shell: the class name is what the capture looks at."""

    def __init__(self, user_ns: dict[str, Any]) -> None:
        self.user_ns = user_ns


def test_inside_jupyter_the_notebook_and_its_cells_are_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A (simulated) Jupyter kernel: kind, the notebook path and the executed cells, redacted."""
    shell = ZMQInteractiveShell(
        {
            "In": ["", "import torch", "api_key = 'sk-abc'", "   ", "train(lr=0.1)"],
            "__vsc_ipynb_file__": "/home/ada/proj/explore.ipynb",
        }
    )
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    with runjournal.start(capture=NO_GIT) as run:
        pass
    assert environment_of(run)["notebook"] == {
        "kind": "jupyter",
        "path": "/home/ada/proj/explore.ipynb",
        "cells": ["import torch", "api_key = '<redacted>'", "train(lr=0.1)"],
    }


def test_in_a_plain_ipython_session_the_path_may_come_from_jupyter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """IPython loaded but no shell running is no notebook; JPY_SESSION_NAME gives a path."""
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert capture_environment(CaptureOptions(packages=False, gpus=False))["notebook"] is None
    shell = types.new_class("TerminalInteractiveShell")()
    shell.user_ns = {"In": ["", "1 + 1"]}
    ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/ada/nb.ipynb")
    notebook = capture_environment(CaptureOptions(packages=False, gpus=False))["notebook"]
    assert notebook == {"kind": "ipython", "path": "/home/ada/nb.ipynb", "cells": ["1 + 1"]}


# -- failures ------------------------------------------------------------------------


def test_a_part_that_raises_becomes_a_capture_error_and_the_run_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crashing part is left out, named in capture_errors, an error event and one warning."""

    def broken() -> dict[str, Any]:
        raise PermissionError("cannot read /proc/meminfo")

    monkeypatch.setattr(_hardware, "memory", broken)
    with pytest.warns(RunjournalWarning, match="memory") as warned:
        run = runjournal.start(capture=NO_GIT, strict=True)
    run.log({"loss": 0.5})
    run.end()
    assert len(warned) == 1
    env = environment_of(run)
    assert "memory" not in env and "cpu" in env
    assert env["capture_errors"] == [
        {"part": "memory", "message": "PermissionError: cannot read /proc/meminfo"}
    ]
    assert run.dir is not None
    errors = [event for event in events(run.dir) if event["event"] == "error"]
    assert [(e["cause"], e["key"], e["count"]) for e in errors] == [("capture_error", "memory", 1)]
    record = runjournal.Store().run(run.id)
    assert record.status == "completed" and record.metrics == {"loss": 0.5}


def test_a_part_that_hangs_is_given_up_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A part still running at the deadline is a timed-out capture error; start() does not wait."""

    def hang() -> tuple[dict[str, str], list[str]]:
        time.sleep(3)
        return {}, []

    monkeypatch.setattr(_packages, "installed", hang)
    began = time.monotonic()
    with pytest.warns(RunjournalWarning, match="timed out"):
        run = runjournal.start(capture={**NO_GIT, "timeout": 0.3})
    assert time.monotonic() - began < 2.0
    run.end()
    errors = environment_of(run)["capture_errors"]
    assert [error["part"] for error in errors] == ["packages"]
    assert errors[0]["message"].startswith("timed out after")


def test_a_resume_captures_its_own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each resume writes environment.<seg>.json; the first segment's file is untouched."""
    with runjournal.start(run_id="requeued", capture=NO_GIT) as run:
        pass
    first = environment_of(run)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    with runjournal.start(run_id="requeued", resume=True, capture=NO_GIT):
        pass
    assert environment_of(run) == first
    second = environment_of(run, "environment.1.json")
    assert second["seg"] == 1 and second["scheduler"] == {"kind": "slurm", "job_id": "77"}


# -- secrets, end to end -------------------------------------------------------------

PLANTED = {
    "HF_TOKEN": "hf_PlAnTeDhFtOkEn1234567890abcdefGH",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIK7MDENGbPxRfiCYPLANTED1",
    "WANDB_API_KEY": "planted0wandb0key0abcdef0123456789",
    "MLFLOW_TRACKING_PASSWORD": "planted-mlflow-password-77",
    "HF_ENDPOINT": "https://mirror-user:plantedUrlPassw0rd@hf-mirror.example.org",
}
REMOTE_TOKEN = "s3cr3tT0k3nPLANTED"
PARAM_SECRET = "planted-param-api-key-99"
TAG_SECRET = "planted-tag-token-42"
ARGV_SECRETS = ("planted-argv-api-key-11", "planted-argv-token-22")
CODE_TOKEN = "ghp_" + "PlAnTeD0CoDe" * 3


def test_planted_secrets_appear_in_no_byte_of_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secrets in env vars, a remote URL, params, tags, argv and code reach no byte of the store."""
    repo = tmp_path / "proj"
    repo.mkdir()
    identity = ["-c", "user.name=Ada", "-c", "user.email=a@example.com"]
    for args in (
        ["init", "-q"],
        ["remote", "add", "origin", f"https://ada:{REMOTE_TOKEN}@example.org/proj.git"],
    ):
        subprocess.run(["git", *identity, *args], cwd=repo, check=True)
    (repo / "train.py").write_text(f"TOKEN = '{CODE_TOKEN}'\n")
    subprocess.run(["git", "add", "train.py"], cwd=repo, check=True)
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(
        sys,
        "argv",
        ["train.py", f"--api-key={ARGV_SECRETS[0]}", "--token", ARGV_SECRETS[1], "--lr", "0.1"],
    )
    store = tmp_path / "store"
    params = {"api_key": PARAM_SECRET, "max_tokens": 512, "tokenizer": "bpe", "key_size": 64}
    with runjournal.start(
        store=store,
        params=params,
        tags={"token": TAG_SECRET, "author": "ada"},
        capture={"git_dir": str(repo)},
    ) as run:
        run.log_params({"db": {"password": PARAM_SECRET}})
        run.log({"loss": 0.1})
    secrets = [
        *PLANTED.values(),
        REMOTE_TOKEN,
        PARAM_SECRET,
        TAG_SECRET,
        *ARGV_SECRETS,
        CODE_TOKEN,
    ]
    files = [path for path in store.rglob("*") if path.is_file()]
    assert {"environment.json", "git.json", "git.patch", "params.jsonl"} <= {
        path.name for path in files
    }
    for path in files:
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, f"{secret!r} leaked into {path.name}"
    record = runjournal.Store(store).run(run.id)
    assert {k: record.params[k] for k in ("max_tokens", "tokenizer", "key_size")} == {
        "max_tokens": 512,
        "tokenizer": "bpe",
        "key_size": 64,
    }
    assert record.tags["author"] == "ada"
    assert run.dir is not None
    env = read_json(run.dir / "environment.json")["env"]
    assert env["HF_TOKEN"] == "<redacted>" and "AWS_SECRET_ACCESS_KEY" not in env


def test_import_runjournal_loads_no_capture_module() -> None:
    """The write path stays light: capture, psutil and subprocess-heavy code load at start()."""
    code = (
        "import sys, runjournal;"
        "print([m for m in sys.modules if m.startswith('runjournal.capture') or m == 'psutil'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_capture_never_imports_a_framework(tmp_path: Path) -> None:
    """With torch, tensorflow and jax importable, a full capture imports none of them."""
    for name in ("torch", "tensorflow", "jax"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise SystemExit('{name} was imported')\n")
    code = (
        "import sys, runjournal\n"
        "with runjournal.start(store=sys.argv[1]) as run:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "store")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


def test_capture_works_without_shutil_which_finding_anything(
    monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    """An empty PATH (a stripped container): every part that needs a tool is absent, no error."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(_hardware.importlib.util, "find_spec", lambda name: None)
    with runjournal.start() as run:
        pass
    assert run.dir is not None
    assert environment_of(run)["capture_errors"] == []
    assert read_json(run.dir / "git.json")["status"] == "no_git"
