"""The system sampler: a daemon thread that samples CPU, memory, I/O and GPUs into ``system.jsonl``.

Every ``interval`` seconds (10 by default) it reads the process's and the
machine's figures with psutil and *queues* one line through the run's writer;
the writer's flusher thread writes it, so this thread never touches a file.
A series psutil refuses (``AccessDenied``, a figure the platform lacks) is left
out of that sample; any other failure skips the sample. The thread never
raises into the training loop and stops when the run ends.

NVIDIA GPUs are read with pynvml when it is importable and finds a driver,
else with ``nvidia-smi --query-gpu`` (at most every 30 s, with a timeout);
on a machine with neither, GPU series are simply absent.

Example:
    >>> lines = []
    >>> sampler = SystemSampler(lambda line: lines.append(line), seg=0, interval=60.0)
    >>> sorted(sampler.sample())[:3]
    ['proc/cpu_percent', 'proc/open_files', 'proc/rss_bytes']
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from runjournal.format import dumps_line

__all__ = ["DEFAULT_INTERVAL", "SYSTEM", "SystemSampler"]

SYSTEM = "system.jsonl"
"""The file of system samples in a run directory."""

DEFAULT_INTERVAL = 10.0
"""Seconds between two samples unless asked otherwise."""

_SMI_INTERVAL = 30.0
_SMI_TIMEOUT = 5.0
_SMI_QUERY = (
    "--query-gpu=index,utilization.gpu,memory.used,temperature.gpu,power.draw",
    "--format=csv,noheader,nounits",
)
_MIB = 1024 * 1024
_JOIN_TIMEOUT = 2 * _SMI_TIMEOUT

Sample = dict[str, float | int]

_IMPORTING = threading.Lock()
"""Held while a sampler thread imports a module (psutil, pynvml); a fork waits for it.

A module being imported holds its import lock. A child forked meanwhile
inherits that lock, held by a thread it does not have, and hangs at its first
import of the module: psutil, in a DataLoader worker forked right after
``start()``, would be the usual victim.
"""
_FORK_WAIT = 10.0
_held_for_fork = False


def _before_fork() -> None:
    global _held_for_fork
    _held_for_fork = _IMPORTING.acquire(timeout=_FORK_WAIT)


def _after_fork() -> None:
    global _held_for_fork
    if _held_for_fork:
        _held_for_fork = False
        _IMPORTING.release()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork
    )


class SystemSampler:
    """Samples system figures on a daemon thread and hands each line to ``queue``.

    Args:
        queue: Takes one encoded ``system.jsonl`` line (the writer's ``queue``).
        seg: The run's segment, written in every line.
        interval: Seconds between samples.
    """

    def __init__(self, queue: Callable[[bytes], None], *, seg: int, interval: float) -> None:
        self._queue = queue
        self._seg = seg
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: Any = None
        self._last: tuple[float, dict[str, int]] | None = None
        self._gpu = _GpuReader(max(interval, _SMI_INTERVAL))
        self.samples = 0
        self.cpu_seconds = 0.0  # CPU time this thread spent sampling (for the benchmark)

    def start(self) -> None:
        """Start the daemon thread; its first sample comes one interval later."""
        self._thread = threading.Thread(target=self._loop, name="runjournal-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait (briefly) for it; no sample is queued after this returns."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT)

    def _loop(self) -> None:
        try:
            self._prime()
        except Exception:  # psutil missing or broken: no samples, the run goes on
            return
        while not self._stop.wait(self.interval):
            began = time.thread_time()
            try:
                values = self.sample()
                if values and not self._stop.is_set():
                    record = {"time": time.time(), "seg": self._seg, "s": values}
                    self._queue(dumps_line(record))
                    self.samples += 1
            except Exception:  # never let one bad sample end the sampling
                pass
            self.cpu_seconds += time.thread_time() - began

    def _prime(self) -> None:
        """Take the baselines that CPU percentages and rates are measured from."""
        with _IMPORTING:
            import psutil

        self._process = psutil.Process()
        self._process.cpu_percent(None)
        psutil.cpu_percent(None)
        self._last = (time.monotonic(), _counters())

    def sample(self) -> Sample:
        """One sample: series name to value, leaving out what could not be read."""
        if self._process is None:
            self._prime()
        values: Sample = {}
        _read_process(self._process, values)
        _read_system(values)
        self._read_rates(values)
        values.update(self._gpu.read())
        return values

    def _read_rates(self, values: Sample) -> None:
        now, counters = time.monotonic(), _counters()
        if self._last is not None:
            then, before = self._last
            elapsed = now - then
            if elapsed > 0:
                for name, count in counters.items():
                    if name in before and count >= before[name]:
                        values[name] = (count - before[name]) / elapsed
        self._last = (now, counters)


def _read_process(process: Any, values: Sample) -> None:
    readers: dict[str, Callable[[], float | int]] = {
        "proc/cpu_percent": lambda: float(process.cpu_percent(None)),
        "proc/rss_bytes": lambda: int(process.memory_info().rss),
        "proc/threads": lambda: int(process.num_threads()),
        "proc/open_files": lambda: _open_files(process),
    }
    _read_each(readers, values)


def _open_files(process: Any) -> int:
    """Open file descriptors (POSIX) or handles (Windows): cheaper than listing files."""
    if hasattr(process, "num_fds"):
        return int(process.num_fds())
    return int(process.num_handles())


def _read_system(values: Sample) -> None:
    import psutil

    readers: dict[str, Callable[[], float | int]] = {
        "sys/cpu_percent": lambda: float(psutil.cpu_percent(None)),
        "sys/mem_used_bytes": lambda: int(psutil.virtual_memory().used),
        "sys/mem_percent": lambda: float(psutil.virtual_memory().percent),
        "sys/swap_used_bytes": lambda: int(psutil.swap_memory().used),
    }
    _read_each(readers, values)


def _read_each(readers: dict[str, Callable[[], float | int]], values: Sample) -> None:
    """Read every series; one that fails (``AccessDenied``, unsupported) is left out."""
    for name, read in readers.items():
        try:
            values[name] = read()
        except Exception:
            continue


def _counters() -> dict[str, int]:
    """Cumulative disk and network byte counters, named after the rate series they give."""
    import psutil

    counters: dict[str, int] = {}
    try:
        disk = psutil.disk_io_counters()
        if disk is not None:
            counters["sys/disk_read_bytes_per_s"] = int(disk.read_bytes)
            counters["sys/disk_write_bytes_per_s"] = int(disk.write_bytes)
    except Exception:
        pass
    try:
        net = psutil.net_io_counters()
        if net is not None:
            counters["sys/net_sent_bytes_per_s"] = int(net.bytes_sent)
            counters["sys/net_recv_bytes_per_s"] = int(net.bytes_recv)
    except Exception:
        pass
    return counters


class _GpuReader:
    """Per-GPU utilisation, memory, temperature and power: pynvml, else nvidia-smi."""

    def __init__(self, smi_interval: float) -> None:
        self._nvml: Any = None
        self._source: str | None = None  # "nvml", "smi", or "" (none), decided on first read
        self._smi: str | None = None
        self._smi_interval = smi_interval
        self._smi_next = 0.0
        self._smi_last: Sample = {}

    def read(self) -> Sample:
        if self._source is None:
            self._source = self._choose()
        if self._source == "nvml":
            return self._read_nvml()
        if self._source == "smi":
            return self._read_smi()
        return {}

    def _choose(self) -> str:
        try:
            with _IMPORTING:
                import pynvml  # type: ignore[import-not-found]

            pynvml.nvmlInit()
            self._nvml = pynvml
            return "nvml"
        except Exception:  # not installed, or no driver
            pass
        self._smi = shutil.which("nvidia-smi")
        return "smi" if self._smi else ""

    def _read_nvml(self) -> Sample:
        nvml = self._nvml
        values: Sample = {}
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception:
            return values
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
            except Exception:
                continue
            _read_each(_nvml_readers(nvml, handle, f"gpu{index}/"), values)
        return values

    def _read_smi(self) -> Sample:
        """nvidia-smi is a process per call: asked at most every ``smi_interval`` seconds."""
        now = time.monotonic()
        if now < self._smi_next or self._smi is None:
            return {}
        self._smi_next = now + self._smi_interval
        try:
            out = subprocess.run(
                [self._smi, *_SMI_QUERY],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_SMI_TIMEOUT,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return {}
        return parse_smi(out.decode("utf-8", "replace"))


def _nvml_readers(nvml: Any, handle: Any, prefix: str) -> dict[str, Callable[[], float | int]]:
    return {
        f"{prefix}util_percent": lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
        f"{prefix}mem_used_bytes": lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).used),
        f"{prefix}temp_c": lambda: float(nvml.nvmlDeviceGetTemperature(handle, 0)),
        f"{prefix}power_w": lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
    }


def parse_smi(table: str) -> Sample:
    """Series from ``nvidia-smi --query-gpu`` rows; a field it cannot give (``[N/A]``) is left out.

    Example:
        >>> values = parse_smi("0, 87, 10240, 71, 250.5")
        >>> values["gpu0/mem_used_bytes"], values["gpu0/power_w"]
        (10737418240, 250.5)
    """
    values: Sample = {}
    for line in table.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 5 or not fields[0].isdigit():
            continue
        prefix = f"gpu{fields[0]}/"
        for name, text, scale in (
            ("util_percent", fields[1], None),
            ("mem_used_bytes", fields[2], _MIB),
            ("temp_c", fields[3], None),
            ("power_w", fields[4], None),
        ):
            try:
                number = float(text)
            except ValueError:
                continue
            values[prefix + name] = int(number * scale) if scale else number
    return values
