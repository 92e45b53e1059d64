"""The process identity a run records, and the liveness a reader infers from it.

Writer and reader must compute a process's start time the same way, and the
same way runs recorded with psutil did: the /proc reading is compared with
psutil bit for bit, and the psutil fallback with the /proc reading.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import runjournal
from runjournal import _process
from runjournal._process import ProcessIdentity, is_alive, start_time

linux = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A sleeping child whose command name has spaces and parentheses, as /proc shows it."""
    code = (
        "import pathlib, sys, time\n"
        "if pathlib.Path('/proc/self/comm').exists():\n"
        "    pathlib.Path('/proc/self/comm').write_text('a) (b c) d')\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(30)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    yield process
    process.kill()
    process.wait()


@linux
def test_start_times_are_psutils_bit_for_bit(child: subprocess.Popen[bytes]) -> None:
    """Self, parent, pid 1 and a child with ') (' in its name: exactly create_time()."""
    assert Path(f"/proc/{child.pid}/comm").read_text().strip() == "a) (b c) d"
    for pid in (os.getpid(), os.getppid(), 1, child.pid):
        assert start_time(pid) == psutil.Process(pid).create_time()


def test_no_such_process_has_no_start_time() -> None:
    """An unused pid, 0 and negative pids: None (psutil: NoSuchProcess, or a ValueError)."""
    unused = max(psutil.pids()) + 10_000
    assert start_time(unused) is None
    assert start_time(0) is None and start_time(-5) is None


def test_the_psutil_fallback_gives_the_same_values(
    monkeypatch: pytest.MonkeyPatch, child: subprocess.Popen[bytes]
) -> None:
    """Without /proc (another OS) psutil answers, with values equal to the /proc ones."""
    from_proc = {pid: start_time(pid) for pid in (os.getpid(), child.pid)}
    monkeypatch.setattr(_process, "_procfs", lambda: False)
    assert {pid: start_time(pid) for pid in from_proc} == from_proc


@linux
def test_an_unreadable_stat_line_falls_back_to_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    """A /proc answer that does not parse is not a verdict: psutil decides."""
    monkeypatch.setattr(_process, "_boot_time", lambda: float("nan") + int("x"))
    assert start_time(os.getpid()) == psutil.Process(os.getpid()).create_time()


def test_liveness_compares_the_recorded_start_time() -> None:
    """Alive with the right start time or none recorded; a reused pid (another time) is dead."""
    me = _process.current()
    assert me == ProcessIdentity(_process.hostname(), os.getpid(), start_time(os.getpid()))
    assert is_alive(me) is True
    assert is_alive(me._replace(start_time=None)) is True
    assert is_alive(me._replace(start_time=(me.start_time or 0) - 3600)) is False
    assert is_alive(me._replace(pid=max(psutil.pids()) + 10_000)) is False
    assert is_alive(me._replace(host="elsewhere.example")) is None


def test_a_run_records_what_psutil_and_the_reader_compute(tmp_path: Path) -> None:
    """The start event's pid_start is psutil's create_time; the reader sees the run running."""
    run = runjournal.start(store=tmp_path / "store", capture=False, system_metrics=False)
    try:
        assert run.dir is not None
        assert runjournal.Store(tmp_path / "store").run(run.id).status == "running"
        event = (run.dir / "run.jsonl").read_text().splitlines()[0]
        assert f'"pid_start":{psutil.Process().create_time()!r}' in event.replace(" ", "")
    finally:
        run.end()


def test_a_dead_writer_is_crashed_for_the_reader(tmp_path: Path) -> None:
    """A process that started a run and was killed: the reader says crashed (pid gone)."""
    code = (
        "import os, runjournal\n"
        "run = runjournal.start(store=os.environ['STORE'], capture=False, system_metrics=False)\n"
        "print(run.id, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    env = {**os.environ, "STORE": str(tmp_path / "store")}
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
    run_id = done.stdout.decode().split()[0]  # the process is gone (killed and reaped)
    assert runjournal.Store(tmp_path / "store").run(run_id).status == "crashed"
