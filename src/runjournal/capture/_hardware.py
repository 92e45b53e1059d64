"""The machine: CPU, memory and NVIDIA GPUs, read without importing any framework.

GPUs come from ``pynvml`` when it is installed and finds a driver, else from
``nvidia-smi`` when it is on ``PATH``; with neither (or no driver, or no
device) the answer is ``[]`` and no CUDA, which is not an error. Nothing
here imports torch, TensorFlow or JAX, and nothing initialises CUDA.

What cannot change while a process lives (CPU model, core counts, total
memory, the GPUs) is read once per process and cached, since ``start()``
may run hundreds of times in one process. On Linux the core count and the
memory are read from ``/sys`` and ``/proc`` exactly as psutil reads them, so
that capture does not import psutil (about 10 ms) at the first ``start()``.

Example:
    >>> from runjournal.capture._hardware import cpu
    >>> cpu()["logical_cores"] >= 1
    True
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["clear_caches", "cpu", "gpus", "is_cached", "memory", "physical_cores"]

_LINUX = sys.platform.startswith("linux")
_CPUINFO = "/proc/cpuinfo"
_SYS_CPU = Path("/sys/devices/system/cpu")
_CPUINFO_HEAD = 1 << 16
_NVIDIA_SMI_QUERY = (
    "--query-gpu=index,name,memory.total,uuid,driver_version",
    "--format=csv,noheader,nounits",
)
_CUDA_VERSION = re.compile(rb"CUDA Version:\s*([0-9][0-9.]*)")
_NO_GPU_MESSAGES = (
    "no devices were found",
    "couldn't communicate with the nvidia driver",
    "driver/library version mismatch",
)
"""nvidia-smi answers that mean "no usable GPU here" (a login node with the tools)."""
_MIB = 1024 * 1024

Gpus = tuple[list[dict[str, Any]], dict[str, Any] | None]
_gpu_cache: Gpus | None = None


def clear_caches() -> None:
    """Forget what was read once per process (for tests that change the machine).

    Example:
        >>> clear_caches()
    """
    global _gpu_cache
    _gpu_cache = None
    _cpu_static.cache_clear()
    memory.cache_clear()


def is_cached(part: object) -> bool:
    """Whether ``part`` (:func:`cpu`, :func:`memory` or :func:`gpus`) was read in this process.

    Then calling it costs next to nothing. Anything else (a replaced function) is False.

    Example:
        >>> _ = memory()
        >>> is_cached(memory), is_cached(print)
        (True, False)
    """
    check = _ONCE.get(part)
    return check is not None and check()


def cpu() -> dict[str, Any]:
    """CPU model, logical and physical cores, and how many cores this process may use.

    Example:
        >>> sorted(cpu())
        ['affinity', 'logical_cores', 'model', 'physical_cores']
    """
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {**_cpu_static(), "affinity": len(affinity) if affinity is not None else None}


@functools.cache
def _cpu_static() -> dict[str, Any]:
    return {
        "model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
    }


def physical_cores() -> int | None:
    """``psutil.cpu_count(logical=False)``; on Linux read as psutil reads it, without importing it.

    Cores are the distinct ``topology/core_cpus_list`` (or, on older kernels,
    ``thread_siblings_list``) of the CPUs in ``/sys``, else the ``cpu cores``
    of each ``physical id`` in ``/proc/cpuinfo``; psutil (about 10 ms to
    import) answers elsewhere or when neither can be read.

    Example:
        >>> import psutil
        >>> physical_cores() == psutil.cpu_count(logical=False)
        True
    """
    if _LINUX:
        try:
            found = _linux_physical_cores()
        except (OSError, ValueError):
            found = None
        if found is not None:
            return found if found >= 1 else None
    import psutil  # not at import time: `import runjournal` stays light

    return psutil.cpu_count(logical=False)


def _linux_physical_cores() -> int | None:
    siblings = set()
    for name in ("core_cpus_list", "thread_siblings_list"):
        paths = list(_SYS_CPU.glob(f"cpu[0-9]*/topology/{name}"))
        for path in paths:
            with open(path, "rb") as file:  # noqa: PTH123 - one small read
                siblings.add(file.read().strip())
        if paths:
            break
    if siblings:
        return len(siblings)
    cores: dict[int, int] = {}
    section: dict[bytes, int] = {}
    with open(_CPUINFO, "rb") as file:  # noqa: PTH123 - read like psutil does
        for raw in file:
            line = raw.strip().lower()
            if not line:
                if b"physical id" in section and b"cpu cores" in section:
                    cores[section[b"physical id"]] = section[b"cpu cores"]
                section = {}
            elif line.startswith((b"physical id", b"cpu cores")):
                key, value = line.split(b"\t:", 1)
                section[key] = int(value)
    return sum(cores.values()) or None


def _cpu_model() -> str | None:
    try:
        with open(_CPUINFO, "rb") as file:  # noqa: PTH123 - one bounded read
            head = file.read(_CPUINFO_HEAD)
    except OSError:
        return platform.processor() or None  # macOS, Windows, or no /proc
    for line in head.decode("utf-8", "replace").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or None


@functools.cache
def memory() -> dict[str, Any]:
    """Total RAM of the machine, in bytes (``psutil.virtual_memory().total``).

    On Linux, ``MemTotal`` of ``/proc/meminfo`` times 1024, as psutil reads
    it, without importing psutil; psutil answers elsewhere.

    Example:
        >>> import psutil
        >>> memory()["total_bytes"] == psutil.virtual_memory().total
        True
    """
    if _LINUX:
        try:
            with open("/proc/meminfo", "rb") as file:  # noqa: PTH123 - one small read
                for line in file:
                    fields = line.split()
                    if fields and fields[0] == b"MemTotal:":
                        return {"total_bytes": int(fields[1]) * 1024}
        except (OSError, ValueError, IndexError):
            pass
    import psutil

    return {"total_bytes": int(psutil.virtual_memory().total)}


def gpus(timeout: float) -> Gpus:
    """The NVIDIA GPUs and the driver's versions: ``([], None)`` when there are none.

    Raises:
        TimeoutError: ``nvidia-smi`` did not answer within ``timeout`` seconds.
        RuntimeError: ``nvidia-smi`` failed for a reason other than "no GPU".

    Example:
        >>> found, cuda = gpus(timeout=5.0)
        >>> isinstance(found, list)
        True
    """
    global _gpu_cache
    if _gpu_cache is None:
        _gpu_cache = _from_pynvml() or _from_nvidia_smi(timeout)
    return [dict(gpu) for gpu in _gpu_cache[0]], _gpu_cache[1]


def _from_pynvml() -> Gpus | None:
    """The GPUs as NVML reports them; None when pynvml is missing or finds no driver."""
    if importlib.util.find_spec("pynvml") is None:
        return None
    nvml: Any = importlib.import_module("pynvml")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError:
        return None  # no driver: let nvidia-smi (if any) have its say
    try:
        found = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            found.append(
                {
                    "index": index,
                    "name": _str(nvml.nvmlDeviceGetName(handle)),
                    "memory_total_bytes": int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
                    "uuid": _str(nvml.nvmlDeviceGetUUID(handle)),
                }
            )
        version = int(nvml.nvmlSystemGetCudaDriverVersion())
        cuda = {
            "driver_version": _str(nvml.nvmlSystemGetDriverVersion()),
            "cuda_version": f"{version // 1000}.{version % 1000 // 10}",
        }
        return found, cuda if found else None
    finally:
        nvml.nvmlShutdown()


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _from_nvidia_smi(timeout: float) -> Gpus:
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return [], None
    deadline = time.monotonic() + timeout
    query = _start([executable, *_NVIDIA_SMI_QUERY])
    header = _start([executable])  # its banner is where the CUDA version is printed
    try:
        table, problem, code = _finish(query, deadline)
        banner, _, _ = _finish(header, deadline)
    finally:
        for process in (query, header):
            if process.poll() is None:
                process.kill()
                process.wait()
    if code != 0:
        message = (problem or table).decode("utf-8", "replace").strip()
        if any(text in message.lower() for text in _NO_GPU_MESSAGES):
            return [], None
        raise RuntimeError(f"nvidia-smi exited with {code}: {message.splitlines()[:1]}")
    found, driver = _parse_table(table.decode("utf-8", "replace"))
    if not found:
        return [], None
    match = _CUDA_VERSION.search(banner)
    return found, {"driver_version": driver, "cuda_version": match[1].decode() if match else None}


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _finish(process: subprocess.Popen[bytes], deadline: float) -> tuple[bytes, bytes, int]:
    try:
        out, err = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise TimeoutError("nvidia-smi did not answer in time") from None
    return out, err, process.returncode


def _parse_table(table: str) -> tuple[list[dict[str, Any]], str | None]:
    """Rows of ``index, name, memory.total (MiB), uuid, driver_version``."""
    found: list[dict[str, Any]] = []
    driver = None
    for line in table.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 5 or not fields[0].isdigit():
            continue
        memory_mib = fields[-3]
        found.append(
            {
                "index": int(fields[0]),
                "name": ", ".join(fields[1:-3]),  # a name could hold a comma
                "memory_total_bytes": int(memory_mib) * _MIB if memory_mib.isdigit() else None,
                "uuid": fields[-2],
            }
        )
        driver = driver or fields[-1]
    return found, driver


def _filled(cached: Any) -> Callable[[], bool]:
    return lambda: bool(cached.cache_info().currsize)


_ONCE: dict[object, Callable[[], bool]] = {
    cpu: _filled(_cpu_static),
    memory: _filled(memory),
    gpus: lambda: _gpu_cache is not None,
}
"""Our own slow parts (the functions themselves, even if a test replaces the module's names)."""
