"""The environment a run ran in, read from ``environment.json`` (``docs/format.md``).

The capture writes ``environment.json`` at ``start()`` and, at each resume,
``environment.<seg>.json``, since a resumed run may run on another machine.
A reader shows the latest segment's snapshot. Every part is optional: a part
turned off is absent, a part that failed is named in ``capture_errors``, and a
part whose content does not fit its model reads as None with a problem entry.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from runjournal.format import SkippedLine
from runjournal.query._tolerant import validate_tolerantly

__all__ = [
    "ENVIRONMENT",
    "CaptureError",
    "Command",
    "CpuInfo",
    "CudaInfo",
    "Environment",
    "GpuInfo",
    "HostInfo",
    "MemoryInfo",
    "NotebookInfo",
    "PlatformInfo",
    "PythonEnv",
    "PythonInfo",
    "SchedulerInfo",
    "parse_environment",
]

ENVIRONMENT = "environment.json"

# Tolerant models: unknown fields are ignored, everything may be missing, and a
# number where a string is expected (a job id written as 4242) reads as its text.
_LENIENT = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)


class Command(BaseModel):
    """How the run's process was started.

    Attributes:
        argv: ``sys.argv`` as given (secrets redacted).
        script: The script path as given, or None.
        module: The module of ``python -m``, or None.
        cwd: The working directory.
        executable: The Python executable.
        timezone: The local time zone as a UTC offset, e.g. ``UTC+01:00``.

    Example:
        >>> Command(argv=["train.py", "--lr", "0.1"], cwd="/home/ada/proj").argv[1:]
        ['--lr', '0.1']
    """

    model_config = _LENIENT

    argv: list[str] | None = None
    script: str | None = None
    module: str | None = None
    cwd: str | None = None
    executable: str | None = None
    timezone: str | None = None


class PythonInfo(BaseModel):
    """The interpreter: ``version`` (``3.11.7``) and ``implementation`` (``CPython``)."""

    model_config = _LENIENT

    version: str | None = None
    implementation: str | None = None


class PlatformInfo(BaseModel):
    """The operating system: ``system``, ``release``, ``machine``, ``libc``."""

    model_config = _LENIENT

    system: str | None = None
    release: str | None = None
    machine: str | None = None
    libc: str | None = None


class HostInfo(BaseModel):
    """The machine's ``hostname`` and the ``user`` the process ran as."""

    model_config = _LENIENT

    hostname: str | None = None
    user: str | None = None


class CpuInfo(BaseModel):
    """The CPU ``model``, ``logical_cores``, ``physical_cores`` and the process's ``affinity``."""

    model_config = _LENIENT

    model: str | None = None
    logical_cores: int | None = None
    physical_cores: int | None = None
    affinity: int | None = None


class MemoryInfo(BaseModel):
    """The machine's total RAM, ``total_bytes``."""

    model_config = _LENIENT

    total_bytes: int | None = None


class GpuInfo(BaseModel):
    """One GPU: ``index``, ``name``, ``memory_total_bytes``, ``uuid``."""

    model_config = _LENIENT

    index: int | None = None
    name: str | None = None
    memory_total_bytes: int | None = None
    uuid: str | None = None


class CudaInfo(BaseModel):
    """The NVIDIA ``driver_version`` and ``cuda_version``."""

    model_config = _LENIENT

    driver_version: str | None = None
    cuda_version: str | None = None


class PythonEnv(BaseModel):
    """The active virtualenv or conda environment: ``kind``, ``name``, ``prefix``."""

    model_config = _LENIENT

    kind: str | None = None
    name: str | None = None
    prefix: str | None = None


class SchedulerInfo(BaseModel):
    """The batch scheduler's ids; fields of other schedulers are kept as extra fields."""

    model_config = ConfigDict(frozen=True, extra="allow", coerce_numbers_to_str=True)

    kind: str | None = None
    job_id: str | None = None
    array_task_id: str | None = None
    nodelist: str | None = None
    ntasks: str | None = None


class NotebookInfo(BaseModel):
    """A Jupyter/IPython session: its ``kind``, the notebook ``path``, the executed ``cells``."""

    model_config = _LENIENT

    kind: str | None = None
    path: str | None = None
    cells: list[str] | None = None


class CaptureError(BaseModel):
    """A capture part that failed or timed out (or a note of one): ``part`` and ``message``."""

    model_config = _LENIENT

    part: str | None = None
    message: str | None = None


class Environment(BaseModel):
    """What ran, where: the content of ``environment.json`` (or ``environment.<seg>.json``).

    Every part is None when it was not captured (turned off, failed, or
    unreadable); ``capture_errors`` says why for the parts that failed.

    Attributes:
        seg: The segment whose start or resume captured it.
        captured_at: When it was captured, epoch seconds.
        command: How the process was started.
        python: The interpreter.
        platform: The operating system.
        host: Host name and user.
        cpu: CPU model and cores.
        memory: Total RAM.
        gpus: The NVIDIA GPUs (``[]`` when there were none).
        cuda: Driver and CUDA versions.
        packages: Every installed distribution, name to version.
        python_env: The virtualenv or conda environment.
        scheduler: The batch scheduler's ids.
        env: Environment variables kept by the allow-list, redacted.
        notebook: The notebook, when the run started in one.
        capture_errors: The parts that failed.
        capture_notes: What parts skipped without failing (a broken
            distribution's metadata, say).
        capture_seconds: How long the capture took.

    Example:
        >>> env = Environment.model_validate(
        ...     {"python": {"version": "3.11.7"}, "packages": {"numpy": "2.4.6"}, "new": 1})
        >>> env.python.version, env.packages, env.cpu
        ('3.11.7', {'numpy': '2.4.6'}, None)
    """

    model_config = _LENIENT

    format: int | None = None
    seg: int | None = None
    captured_at: float | None = None
    command: Command | None = None
    python: PythonInfo | None = None
    platform: PlatformInfo | None = None
    host: HostInfo | None = None
    cpu: CpuInfo | None = None
    memory: MemoryInfo | None = None
    gpus: list[GpuInfo] | None = None
    cuda: CudaInfo | None = None
    packages: dict[str, str] | None = None
    python_env: PythonEnv | None = None
    scheduler: SchedulerInfo | None = None
    env: dict[str, str] | None = None
    notebook: NotebookInfo | None = None
    capture_errors: list[CaptureError] = []
    capture_notes: list[CaptureError] = []
    capture_seconds: float | None = None


def parse_environment(
    document: dict[str, Any], file_name: str
) -> tuple[Environment | None, list[SkippedLine]]:
    """The :class:`Environment` of a decoded file, with a problem for each part dropped.

    Example:
        >>> document = {"cpu": {"logical_cores": "many"}}
        >>> env, problems = parse_environment(document, "environment.json")
        >>> env.cpu, [str(problem) for problem in problems]
        (None, ["environment.json:0: field 'cpu' is not valid (int_parsing); ignored"])
    """
    environment, reasons = validate_tolerantly(Environment, document)
    return environment, [SkippedLine(file_name, 0, reason) for reason in reasons]
