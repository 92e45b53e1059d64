"""The name of every environment variable runjournal reads, in one place."""

from __future__ import annotations

import os

STORE = "RUNJOURNAL_STORE"
"""Path of the store, overriding the search for ``.runjournal``."""

EXPERIMENT = "RUNJOURNAL_EXPERIMENT"
"""Default experiment name for ``start()``."""

RUN_ID = "RUNJOURNAL_RUN_ID"
"""Run id for ``start()``; with it, a requeued job can resume its run."""

MODE = "RUNJOURNAL_MODE"
"""``online`` (default) or ``disabled`` (every call works and writes nothing)."""

STRICT = "RUNJOURNAL_STRICT"
"""``1`` makes logging problems raise at once instead of warning."""

FLUSH_INTERVAL = "RUNJOURNAL_FLUSH_INTERVAL"
"""Seconds between background flushes (default 1)."""

HEARTBEAT_INTERVAL = "RUNJOURNAL_HEARTBEAT_INTERVAL"
"""Seconds between heartbeat events of a live run (default 60)."""

UMASK = "RUNJOURNAL_UMASK"
"""An octal umask (``002``) for what a store creates, instead of the process umask."""

CAPTURE = "RUNJOURNAL_CAPTURE"
"""``0`` turns the capture of environment and git off where ``start(capture=...)`` is not given."""

CAPTURE_ENV = "RUNJOURNAL_CAPTURE_ENV"
"""More environment variables to capture, comma-separated: ``MYLAB_`` (a prefix), ``MY_VAR``."""

SECRET_WORDS = "RUNJOURNAL_SECRET_WORDS"
"""More words that make a name secret (redacted), comma-separated: ``pin,otp``."""

SYSTEM_METRICS = "RUNJOURNAL_SYSTEM_METRICS"
"""``0`` turns the system sampler off, a number sets its interval in seconds (default 10)."""

RANK_TIMEOUT = "RUNJOURNAL_RANK_TIMEOUT"
"""Seconds a rank above 0 waits for rank 0 to create the run (default 300)."""

RANK = "RANK"
LOCAL_RANK = "LOCAL_RANK"
WORLD_SIZE = "WORLD_SIZE"
LOCAL_WORLD_SIZE = "LOCAL_WORLD_SIZE"
TORCHELASTIC_RUN_ID = "TORCHELASTIC_RUN_ID"
"""torchrun / torch.distributed: a process's rank, world size, and the job's rendezvous id."""

SLURM_PROCID = "SLURM_PROCID"
SLURM_NTASKS = "SLURM_NTASKS"
SLURM_LOCALID = "SLURM_LOCALID"
SLURM_JOB_ID = "SLURM_JOB_ID"
SLURM_STEP_ID = "SLURM_STEP_ID"
"""SLURM multi-task jobs (``srun --ntasks``): a task's rank, the task count, the job and step."""

OMPI_COMM_WORLD_RANK = "OMPI_COMM_WORLD_RANK"
OMPI_COMM_WORLD_SIZE = "OMPI_COMM_WORLD_SIZE"
OMPI_COMM_WORLD_LOCAL_RANK = "OMPI_COMM_WORLD_LOCAL_RANK"
OMPI_COMM_WORLD_LOCAL_SIZE = "OMPI_COMM_WORLD_LOCAL_SIZE"
MPI_JOB_IDS = ("PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid")
"""Open MPI (``mpirun``): a process's rank and world size, and ids of the MPI job."""

QUERY_WORKERS = "RUNJOURNAL_QUERY_WORKERS"
"""Processes a query may use to read many runs at once (default: the CPUs, at most 8; 0 or 1:
none). Only a query that reads hundreds of runs with the query cache on starts them."""

SCHEDULER_JOB_IDS = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID")
"""Job ids of batch schedulers, recorded so a stale run can be checked by hand."""

_TRUE = frozenset({"1", "true", "yes", "on"})
BOOLEAN_WORDS = _TRUE | {"0", "false", "no", "off"}
"""The values :func:`flag` understands, true or false."""


def flag(name: str) -> bool:
    """Whether the variable ``name`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def text(name: str) -> str | None:
    """The variable's value, or None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def scheduler_job_id() -> str | None:
    """The batch scheduler's job id of this process, if it runs under one."""
    for name in SCHEDULER_JOB_IDS:
        if value := text(name):
            return value
    return None


def words(name: str) -> tuple[str, ...]:
    """The comma-separated items of the variable ``name`` (blank ones dropped)."""
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())
