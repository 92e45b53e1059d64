"""Which rank of a distributed job this process is, and the run id the whole job shares.

Launchers tell each process its rank through environment variables: torchrun
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), Open MPI's ``mpirun``
(``OMPI_COMM_WORLD_RANK``, ``OMPI_COMM_WORLD_SIZE``) and SLURM's ``srun``
(``SLURM_PROCID``, ``SLURM_NTASKS``), looked at in that order: torchrun
inside a SLURM job sets both, and its ranks are the ones that count. A job
of one process is not distributed. Nothing here talks to the network or to
the other ranks: every rank derives the same run id from the same variables.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import NamedTuple

from runjournal import _env, _process
from runjournal.errors import InvalidArgumentError, RunNotFoundError
from runjournal.format import RUN_EVENTS, Event, read_lines

__all__ = ["Ranks", "detect", "job_run_id", "wait_for_run"]

_DEFAULT_TIMEOUT = 300.0
_POLL_FIRST, _POLL_MAX = 0.05, 1.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LAUNCHERS = (
    ("torchrun", _env.RANK, _env.WORLD_SIZE, _env.LOCAL_RANK, _env.LOCAL_WORLD_SIZE),
    (
        "mpi",
        _env.OMPI_COMM_WORLD_RANK,
        _env.OMPI_COMM_WORLD_SIZE,
        _env.OMPI_COMM_WORLD_LOCAL_RANK,
        _env.OMPI_COMM_WORLD_LOCAL_SIZE,
    ),
    ("slurm", _env.SLURM_PROCID, _env.SLURM_NTASKS, _env.SLURM_LOCALID, None),
)


class Ranks(NamedTuple):
    """This process's place in a distributed job.

    Attributes:
        launcher: ``torchrun``, ``mpi`` or ``slurm``: whose variables said so.
        rank: The global rank, 0 to ``world_size - 1``.
        world_size: How many processes the job has (more than 1).
        one_node: Whether every rank runs on this node, as far as the launcher says.
    """

    launcher: str
    rank: int
    world_size: int
    one_node: bool

    @property
    def writer(self) -> str:
        """The writer name of this rank: ``rank<N>``."""
        return f"rank{self.rank}"


def detect() -> Ranks | None:
    """This process's rank, or None outside a distributed job of more than one process.

    Example:
        >>> import os
        >>> os.environ.update(RANK="1", WORLD_SIZE="4", LOCAL_WORLD_SIZE="4")
        >>> detect()
        Ranks(launcher='torchrun', rank=1, world_size=4, one_node=True)
        >>> for name in ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        ...     del os.environ[name]
    """
    for launcher, rank_name, size_name, _, local_size_name in _LAUNCHERS:
        rank, size = _integer(rank_name), _integer(size_name)
        if rank is None or size is None:
            continue
        if size <= 1:
            return None
        local_size = _integer(local_size_name) if local_size_name else None
        return Ranks(launcher, rank, size, local_size == size)
    return None


def _integer(name: str) -> int | None:
    text = _env.text(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def job_run_id(ranks: Ranks) -> str:
    """The run id every rank of this job derives alike, from the launcher's job id.

    In order: torchrun's rendezvous id (``TORCHELASTIC_RUN_ID``, unless it is
    the default ``none``), the MPI job id, SLURM's job and step ids, and, when
    every rank runs on this node, the launching process (its pid and start
    time, the same for all ranks it spawned).

    Raises:
        InvalidArgumentError: nothing identifies the job; pass ``run_id``.

    Example:
        >>> import os
        >>> os.environ["TORCHELASTIC_RUN_ID"] = "job/7"
        >>> job_run_id(Ranks("torchrun", 0, 2, True))
        'torchrun-job-7'
        >>> del os.environ["TORCHELASTIC_RUN_ID"]
    """
    for derived in (_torchrun_id(ranks), _mpi_id(ranks), _slurm_id(), _one_node_id(ranks)):
        if derived is not None:
            return _safe(derived)
    raise InvalidArgumentError(
        f"rank {ranks.rank} of {ranks.world_size} ({ranks.launcher}): nothing identifies the"
        " job, so the ranks cannot agree on a run id; pass start(run_id=...) or set"
        f" {_env.RUN_ID} to the same value in every rank (torchrun: --rdzv-id)",
        argument="run_id",
        value=None,
    )


def _torchrun_id(ranks: Ranks) -> str | None:
    rendezvous = _env.text(_env.TORCHELASTIC_RUN_ID)
    if ranks.launcher != "torchrun" or rendezvous in (None, "none"):
        return None
    return f"torchrun-{rendezvous}"


def _mpi_id(ranks: Ranks) -> str | None:
    if ranks.launcher != "mpi":
        return None
    for name in _env.MPI_JOB_IDS:
        if job := _env.text(name):
            return f"mpi-{job}"
    return None


def _slurm_id() -> str | None:
    job = _env.text(_env.SLURM_JOB_ID)
    if job is None:
        return None
    step = _env.text(_env.SLURM_STEP_ID)
    return f"slurm-{job}" + (f"-{step}" if step else "")


def _one_node_id(ranks: Ranks) -> str | None:
    if not ranks.one_node:
        return None
    import psutil  # only a job without any id pays for it

    parent = os.getppid()
    try:
        started = psutil.Process(parent).create_time()
    except (psutil.Error, OSError):
        return None
    return f"{ranks.launcher}-{_process.hostname().split('.')[0]}-{parent}-{int(started)}"


def _safe(text: str) -> str:
    """``text`` as a valid run id: unsafe characters as ``-``, at most 128 characters."""
    cleaned = _UNSAFE.sub("-", text).strip("-._")
    return cleaned[:128] or "job"


def rank_timeout() -> float:
    """Seconds a rank above 0 waits for the run (``RUNJOURNAL_RANK_TIMEOUT``, default 300)."""
    text = _env.text(_env.RANK_TIMEOUT)
    try:
        seconds = float(text) if text is not None else _DEFAULT_TIMEOUT
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise InvalidArgumentError(
            f"{_env.RANK_TIMEOUT}={text!r} is not valid; give a positive number of seconds",
            argument=_env.RANK_TIMEOUT,
            value=text,
        )
    return seconds


def wait_for_run(run_dir: Path, timeout: float) -> None:
    """Return once ``run_dir`` holds a started run; poll the file system, nothing else.

    Raises:
        RunNotFoundError: no start event appeared within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    pause = _POLL_FIRST
    while not _started(run_dir):
        if time.monotonic() >= deadline:
            raise RunNotFoundError(
                f"waited {timeout:g} s for rank 0 to start run {run_dir.name} in"
                f" {run_dir.parent.parent}; does rank 0 call start() with the same store?"
                f" ({_env.RANK_TIMEOUT} sets how long to wait)",
                ref=run_dir.name,
            )
        time.sleep(pause)
        pause = min(pause * 2, _POLL_MAX)


def _started(run_dir: Path) -> bool:
    events = read_lines(run_dir / RUN_EVENTS).records
    return any(event.get("event") in (Event.START, Event.RESUME) for event in events)
