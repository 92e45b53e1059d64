"""What ran, where: the content of ``environment.json``.

Parts (each can be turned off, see :class:`~runjournal.capture.CaptureOptions`):
``command``, ``python``, ``platform``, ``host``, ``cpu``, ``memory``, ``gpus``
(with ``cuda``), ``packages``, ``python_env``, ``scheduler``, ``env`` and
``notebook``. The slow ones (hardware, packages) run in threads under the
capture's deadline while the cheap ones run in the calling thread; a slow
part already read once in this process (they are cached: the machine and the
installed packages do not change while it lives) is cheap, and runs in the
calling thread too, so that later ``start()`` calls start no thread for it. A part
that raises or times out is left out and named in ``capture_errors``;
something absent by nature (no GPU, no scheduler, not a notebook) is simply
``[]`` or null.

Environment variables are kept by an allow-list of names and prefixes
(:data:`ENV_ALLOW`, extended by ``capture={"env_allow": [...]}`` or
``RUNJOURNAL_CAPTURE_ENV``), and every value kept passes the redaction: a
secret-named variable such as ``HF_TOKEN`` is kept as ``"<redacted>"``, so one
can still see that it was set.

Example:
    >>> from runjournal.capture import capture_environment
    >>> snapshot = capture_environment()
    >>> snapshot["python"]["implementation"], snapshot["capture_errors"]
    ('CPython', [])
"""

from __future__ import annotations

import functools
import os
import platform as _platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from runjournal import _process
from runjournal.capture import _hardware, _notebook, _packages
from runjournal.capture._options import PARTS, CaptureOptions
from runjournal.capture._parts import run_parts
from runjournal.capture._redact import (
    REDACTED,
    is_secret_name,
    normalize_words,
    redact_argv,
    redact_value,
)
from runjournal.format import FORMAT_VERSION

__all__ = [
    "ENV_ALLOW",
    "SCHEDULERS",
    "capture_environment",
    "environment_parts",
    "order_errors",
    "snapshot",
]

ENV_ALLOW = (
    "ACCELERATE_",
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_",
    "CUDNN_",
    "HF_",
    "HIP_VISIBLE_DEVICES",
    "JAX_",
    "KMP_",
    "LANG",
    "LC_",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "LSB_",
    "MASTER_ADDR",
    "MASTER_PORT",
    "MKL_",
    "MLFLOW_",
    "NCCL_",
    "NODE_RANK",
    "NUMEXPR_",
    "NVIDIA_",
    "OMPI_COMM_WORLD_",
    "OMP_",
    "OPENBLAS_",
    "PBS_",
    "PMI_RANK",
    "PMI_SIZE",
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    "PYTHONPATH",
    "PYTORCH_",
    "RANK",
    "ROCR_VISIBLE_DEVICES",
    "RUNJOURNAL_",
    "SGE_",
    "SLURM_",
    "TF_",
    "TOKENIZERS_PARALLELISM",
    "TORCHELASTIC_",
    "TORCH_",
    "TRANSFORMERS_",
    "TZ",
    "VIRTUAL_ENV",
    "WANDB_",
    "WORLD_SIZE",
    "XLA_FLAGS",
)
"""Environment variables kept: an entry ending in ``_`` is a prefix, others exact names."""

SCHEDULERS: dict[str, tuple[str, dict[str, str]]] = {
    "slurm": (
        "SLURM_JOB_ID",
        {
            "job_id": "SLURM_JOB_ID",
            "array_job_id": "SLURM_ARRAY_JOB_ID",
            "array_task_id": "SLURM_ARRAY_TASK_ID",
            "job_name": "SLURM_JOB_NAME",
            "partition": "SLURM_JOB_PARTITION",
            "nodelist": "SLURM_JOB_NODELIST",
            "ntasks": "SLURM_NTASKS",
            "procid": "SLURM_PROCID",
            "localid": "SLURM_LOCALID",
            "restart_count": "SLURM_RESTART_COUNT",
        },
    ),
    "pbs": (
        "PBS_JOBID",
        {
            "job_id": "PBS_JOBID",
            "array_task_id": "PBS_ARRAYID",
            "array_index": "PBS_ARRAY_INDEX",
            "job_name": "PBS_JOBNAME",
            "queue": "PBS_QUEUE",
        },
    ),
    "lsf": (
        "LSB_JOBID",
        {"job_id": "LSB_JOBID", "array_task_id": "LSB_JOBINDEX", "job_name": "LSB_JOBNAME"},
    ),
    "sge": (
        "SGE_TASK_ID",
        {"job_id": "JOB_ID", "array_task_id": "SGE_TASK_ID", "job_name": "JOB_NAME"},
    ),
}
"""Per scheduler: the variable that says it runs the process, and field -> variable."""


def capture_environment(options: CaptureOptions | None = None) -> dict[str, Any]:
    """Capture the environment now, as ``environment.json`` holds it (without ``seg``).

    Never raises: a part that fails is named in ``capture_errors``.

    Example:
        >>> from runjournal.capture import CaptureOptions
        >>> snapshot = capture_environment(CaptureOptions(packages=False, gpus=False))
        >>> "packages" in snapshot, snapshot["host"]["hostname"] != ""
        (False, True)
    """
    options = options or CaptureOptions()
    started = time.monotonic()
    threaded, inline = environment_parts(options)
    values, errors = run_parts(threaded, timeout=options.timeout, inline=inline)
    return snapshot(values, order_errors(errors), started)


def environment_parts(
    options: CaptureOptions,
) -> tuple[dict[str, Callable[[], Any]], dict[str, Callable[[], Any]]]:
    """The enabled parts: (slow ones, to run in threads; cheap ones, to run inline).

    A slow part that this process has read already is cheap (cached), and
    goes with the inline ones.

    Example:
        >>> _hardware.clear_caches(); _packages.clear_cache()
        >>> threaded, inline = environment_parts(CaptureOptions(git=False, env=False))
        >>> sorted(threaded), "env" in inline
        (['cpu', 'gpus', 'memory', 'packages'], False)
        >>> _ = capture_environment()
        >>> threaded, inline = environment_parts(CaptureOptions(git=False, env=False))
        >>> sorted(threaded), "packages" in inline
        ([], True)
    """
    words = normalize_words(options.all_secret_words())
    allow = ENV_ALLOW + options.allowed_env()
    gpus = _hardware.gpus
    slow: dict[str, tuple[Callable[[], Any], bool]] = {
        "cpu": (_hardware.cpu, _read_once(_hardware.cpu)),
        "memory": (_hardware.memory, _read_once(_hardware.memory)),
        "gpus": (lambda: gpus(options.timeout), _read_once(gpus)),
        "packages": (_packages.installed, _read_once(_packages.installed)),
    }
    threaded = {name: part for name, (part, cached) in slow.items() if not cached}
    inline: dict[str, Callable[[], Any]] = {
        "command": lambda: command(words),
        "python": python,
        "platform": platform,
        "host": host,
        "python_env": python_env,
        "scheduler": scheduler,
        "env": lambda: environment_variables(allow, words),
        "notebook": lambda: _notebook.notebook(words),
        **{name: part for name, (part, cached) in slow.items() if cached},
    }
    return (
        {name: part for name, part in threaded.items() if options.enabled(name)},
        {name: part for name, part in inline.items() if options.enabled(name)},
    )


def order_errors(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    """Failed parts in one fixed order, whichever ran in a thread: the cheap parts, then the slow.

    Example:
        >>> order_errors([{"part": "git", "message": "x"}, {"part": "cpu", "message": "y"}])
        [{'part': 'cpu', 'message': 'y'}, {'part': 'git', 'message': 'x'}]
    """
    rank = {part: index for index, part in enumerate(_ERROR_ORDER)}
    return sorted(errors, key=lambda error: rank.get(error["part"], len(rank)))


_ERROR_ORDER = (
    *("command", "python", "platform", "host", "python_env", "scheduler", "env", "notebook"),
    *("cpu", "memory", "gpus", "packages", "git"),
)
"""The order of ``capture_errors``: the cheap parts, then the slow ones, as always recorded."""


def _read_once(part: Callable[..., Any]) -> bool:
    """Whether a slow part is one of ours and has been read in this process (so is instant)."""
    if part is _INSTALLED:
        return _packages.is_cached()
    return _hardware.is_cached(part)


_INSTALLED = _packages.installed
"""The package listing itself (a test may put another function in its place)."""


def snapshot(
    values: Mapping[str, Any], errors: list[dict[str, str]], started: float
) -> dict[str, Any]:
    """Assemble ``environment.json`` from the parts' values, in a stable field order.

    Example:
        >>> snapshot({"python": {"version": "3.11.7"}}, [], time.monotonic())["python"]
        {'version': '3.11.7'}
    """
    document: dict[str, Any] = {"format": FORMAT_VERSION, "captured_at": time.time()}
    notes: list[dict[str, str]] = []
    for part in PARTS:
        if part not in values or part == "git":
            continue
        value = values[part]
        if part == "gpus":
            document["gpus"], document["cuda"] = value
        elif part == "packages":
            document["packages"] = value[0]
            notes += [{"part": "packages", "message": note} for note in value[1]]
        else:
            document[part] = value
    document["capture_errors"] = list(errors)
    if notes:
        document["capture_notes"] = notes
    document["capture_seconds"] = round(time.monotonic() - started, 4)
    return document


def command(words: frozenset[str] = frozenset()) -> dict[str, Any]:
    """How this process was started: argv (redacted), script or module, cwd, executable, zone.

    Example:
        >>> sorted(command())
        ['argv', 'cwd', 'executable', 'module', 'script', 'timezone']
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    module = spec.name.removesuffix(".__main__") if spec is not None and spec.name else None
    file = getattr(main, "__file__", None) if module is None else None
    try:
        cwd: str | None = str(Path.cwd())
    except OSError:
        cwd = None  # the working directory was deleted under us
    return {
        "argv": redact_argv(sys.argv, words),
        "script": _relative(file, cwd) if isinstance(file, str) else None,
        "module": module,
        "cwd": cwd,
        "executable": sys.executable or None,
        "timezone": _utc_offset(),
    }


def _relative(path: str, cwd: str | None) -> str:
    """A script under the working directory as given relative to it (``train.py``)."""
    if cwd is None or not Path(path).is_absolute():
        return path
    try:
        relative = Path(path).relative_to(cwd)
    except ValueError:
        return path
    return relative.as_posix()


def _utc_offset() -> str:
    offset = time.localtime().tm_gmtoff
    sign = "+" if offset >= 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def python() -> dict[str, Any]:
    """The interpreter's version and implementation.

    Example:
        >>> python()["implementation"]
        'CPython'
    """
    return {
        "version": _platform.python_version(),
        "implementation": _platform.python_implementation(),
    }


def platform() -> dict[str, Any]:
    """The operating system, kernel release, machine and C library.

    Example:
        >>> sorted(platform())
        ['libc', 'machine', 'release', 'system']
    """
    uname = _platform.uname()
    return {
        "system": uname.system,
        "release": uname.release,
        "machine": uname.machine,
        "libc": _libc(),
    }


def _libc() -> str | None:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36", without reading a binary
    except (AttributeError, ValueError, OSError):
        pass
    name, version = _platform.libc_ver()
    return f"{name} {version}".strip() or None


def host() -> dict[str, Any]:
    """The host name and the user the process runs as (None when it has no name).

    Example:
        >>> sorted(host())
        ['hostname', 'user']
    """
    # What getpass.getuser() answers, without importing it; the account name of a uid
    # is looked up once per process (it loads the system's name service on first use).
    for name in _USER_VARIABLES:
        user = os.environ.get(name)
        if user:
            return {"hostname": _process.hostname(), "user": user}
    uid = os.getuid() if hasattr(os, "getuid") else None
    return {"hostname": _process.hostname(), "user": _account(uid)}


_USER_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")
"""Where ``getpass.getuser()`` looks first, in its order."""


@functools.lru_cache(maxsize=4)
def _account(uid: int | None) -> str | None:
    """The login name of ``uid``; None without one (a container's uid with no passwd entry)."""
    if uid is None:
        return None
    try:
        import pwd
    except ImportError:
        return None
    try:
        return pwd.getpwuid(uid)[0]
    except (KeyError, OSError):
        return None


def python_env() -> dict[str, Any]:
    """The active virtualenv or conda environment (``system`` when neither).

    Example:
        >>> python_env()["kind"] in ("venv", "conda", "system")
        True
    """
    prefix = sys.prefix
    if prefix != sys.base_prefix:
        return {"kind": "venv", "name": Path(prefix).name, "prefix": prefix}
    if Path(prefix, "conda-meta").is_dir():
        conda_prefix = os.environ.get("CONDA_PREFIX", "")
        same = bool(conda_prefix) and os.path.realpath(conda_prefix) == os.path.realpath(prefix)
        name = os.environ.get("CONDA_DEFAULT_ENV") if same else None
        return {"kind": "conda", "name": name or Path(prefix).name, "prefix": prefix}
    return {"kind": "system", "name": None, "prefix": prefix}


def scheduler(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The batch scheduler's ids (SLURM, PBS, LSF, SGE), or None outside a job.

    Example:
        >>> scheduler({"SLURM_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "7"})
        {'kind': 'slurm', 'job_id': '4242', 'array_task_id': '7'}
    """
    environ = os.environ if environ is None else environ
    for kind, (marker, fields) in SCHEDULERS.items():
        if environ.get(marker):
            found = {field: environ[name] for field, name in fields.items() if environ.get(name)}
            return {"kind": kind, **found}
    return None


def environment_variables(
    allow: Iterable[str] = ENV_ALLOW,
    words: frozenset[str] = frozenset(),
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The allowed environment variables, sorted, each value redacted if secret.

    Example:
        >>> environment_variables(environ={"HF_TOKEN": "hf_x", "HF_HOME": "/h", "HOME": "/me"})
        {'HF_HOME': '/h', 'HF_TOKEN': '<redacted>'}
    """
    environ = os.environ if environ is None else environ
    prefixes = tuple(entry.rstrip("*") for entry in allow if entry.endswith(("_", "*")))
    exact = frozenset(entry for entry in allow if not entry.endswith(("_", "*")))
    kept = {}
    for name in sorted(environ):
        if name in exact or name.startswith(prefixes):
            value = environ[name]
            kept[name] = REDACTED if is_secret_name(name, words) else redact_value(value)
    return kept
