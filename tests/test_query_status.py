"""Status of a run: recorded by an end event, or inferred from its process or heartbeats."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from _runfiles import OTHER_HOST, T0, StoreFiles
from runjournal._process import hostname
from runjournal.format import Status
from runjournal.query import Store
from runjournal.query._status import infer_status


@pytest.fixture
def files(tmp_path: Path) -> StoreFiles:
    return StoreFiles(tmp_path / "store")


def status_of(files: StoreFiles, run_id: str) -> str:
    return Store(files.root).run(run_id).status


def dead_pid() -> int:
    """The pid of a child process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("status", sorted(Status.RECORDED))
def test_an_end_event_gives_its_recorded_status(files: StoreFiles, status: str) -> None:
    """The status of an ended run is the one its end event records."""
    files.run("r1").start().end(status)
    assert status_of(files, "r1") == status


def test_live_process_on_this_host_is_running(files: StoreFiles) -> None:
    """A run whose recorded pid and process start time match a live process here is running."""
    files.run("r1").start_here(deadline=T0)  # a passed deadline does not matter on this host
    assert status_of(files, "r1") == Status.RUNNING


def test_dead_process_on_this_host_is_crashed(files: StoreFiles) -> None:
    """A run without an end whose process is gone from this host has crashed."""
    files.run("r1").start(host=hostname(), pid=dead_pid(), deadline=time.time() + 3600)
    assert status_of(files, "r1") == Status.CRASHED


def test_reused_pid_with_another_start_time_is_crashed(files: StoreFiles) -> None:
    """A live pid whose start time differs from the recorded one is another process."""
    started = psutil.Process(os.getpid()).create_time()
    files.run("r1").start(host=hostname(), pid=os.getpid(), pid_start=started - 1000)
    assert status_of(files, "r1") == Status.CRASHED


def test_live_pid_without_recorded_start_time_is_running(files: StoreFiles) -> None:
    """Without a recorded process start time, a live pid is taken as the writer."""
    files.run("r1").start(host=hostname(), pid=os.getpid(), pid_start=None)
    assert status_of(files, "r1") == Status.RUNNING


def test_impossible_pid_on_this_host_is_crashed(files: StoreFiles) -> None:
    """A pid no process can have (negative, huge) means the writer is not alive here."""
    files.run("r1").start(host=hostname(), pid=-5)
    files.run("r2").start(host=hostname(), pid=2**40)
    assert (status_of(files, "r1"), status_of(files, "r2")) == (Status.CRASHED, Status.CRASHED)


def test_other_host_before_its_deadline_is_running(files: StoreFiles) -> None:
    """On another host, a run is running until its last deadline has passed."""
    files.run("r1").start(host=OTHER_HOST, time=time.time(), deadline=time.time() + 3600)
    assert status_of(files, "r1") == Status.RUNNING


def test_other_host_after_its_deadline_is_stale(files: StoreFiles) -> None:
    """On another host, a run whose last deadline has passed without an end is stale."""
    files.run("r1").start(host=OTHER_HOST, time=T0, deadline=T0 + 150)
    assert status_of(files, "r1") == Status.STALE


def test_a_heartbeat_moves_the_deadline(files: StoreFiles) -> None:
    """The last heartbeat's deadline counts, not the start event's."""
    now = time.time()
    run = files.run("r1").start(host=OTHER_HOST, time=now - 7200, deadline=now - 7000)
    assert status_of(files, "r1") == Status.STALE
    run.event("heartbeat", time=now - 10, deadline=now + 140)
    assert status_of(files, "r1") == Status.RUNNING


def test_a_resume_after_an_end_makes_the_run_live_again(files: StoreFiles) -> None:
    """The last lifecycle event decides: a resume after an end is not ended."""
    run = files.run("r1").start().end("killed")
    run.resume(1, host=OTHER_HOST, time=time.time(), deadline=time.time() + 3600)
    record = Store(files.root).run("r1")
    assert (record.status, record.end_time, record.duration, record.segments) == (
        Status.RUNNING,
        None,
        None,
        2,
    )


def test_a_resumed_run_that_ends_measures_from_its_first_start(files: StoreFiles) -> None:
    """duration runs from the first start to the last end, across segments."""
    run = files.run("r1").start(time=T0).end("killed", time=T0 + 100)
    run.resume(1, time=T0 + 1000).end("completed", time=T0 + 1500, seg=1)
    record = Store(files.root).run("r1")
    assert (record.status, record.duration, record.segments) == ("completed", 1500.0, 2)


def test_the_latest_process_decides_liveness(files: StoreFiles) -> None:
    """After a resume, the resuming process's host and pid are checked, not the first one's."""
    run = files.run("r1").start(host=hostname(), pid=dead_pid())
    run.resume(1, host=hostname(), pid=os.getpid(), pid_start=None)
    record = Store(files.root).run("r1")
    assert (record.status, record.pid) == (Status.RUNNING, os.getpid())


def test_no_lifecycle_event_is_unknown() -> None:
    """Without a start, resume or end event the status is unknown."""
    assert infer_status(None, None, time.time()) == "unknown"


def test_start_without_host_falls_back_to_the_deadline() -> None:
    """An event without a host can only be judged by its deadline."""
    assert infer_status({"event": "start"}, 10.0, 5.0) == Status.RUNNING
    assert infer_status({"event": "start"}, None, 5.0) == Status.STALE
