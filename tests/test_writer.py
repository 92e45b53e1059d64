"""The buffered append-only writer: torn lines, failed writes, memory caps, vanished files, fsync.

Mirrors ``_writer.py``. Unit tests drive :class:`AppendFile` directly; the rest
go through a real :class:`runjournal.Run`, with real failures where they can be
made (a file-size limit in a child process, a deleted file or directory) and
monkeypatched system calls only to count them or to slow a write down.
"""

from __future__ import annotations

import os
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import runjournal
from _children import (
    assert_exact_values,
    child_env,
    events,
    load_record,
    metric_steps,
    read_jsonl,
    run_child,
)
from runjournal import _writer
from runjournal._writer import AppendFile
from runjournal.errors import RunjournalWarning

WAIT = 30.0
"""Seconds a test waits for a condition before it fails."""


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The store of the test's runs."""
    return tmp_path / "store"


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default (non-strict) mode, as a training script gets it."""
    monkeypatch.delenv("RUNJOURNAL_STRICT", raising=False)


def _runjournal_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RunjournalWarning)]


# -- the torn-line guard ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "expected_prefix"),
    [
        pytest.param(b"", b"", id="empty-file"),
        pytest.param(b'{"a": 1}\n', b'{"a": 1}\n', id="whole-lines"),
        pytest.param(
            b'{"a": 1}\n{"b": 2, "c"',
            b'{"a": 1}\n{"b": 2, "c"\n',
            id="torn-last-line",
        ),
    ],
)
def test_append_file_starts_a_fresh_line_after_a_torn_one(
    tmp_path: Path, before: bytes, expected_prefix: bytes
) -> None:
    """Opening a file whose last byte is not a newline writes a newline before the first line."""
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(before)
    file = AppendFile(path, fsync=False)
    assert file.write(b'{"d": 4}\n') is None
    assert file.write(b'{"e": 5}\n') is None
    file.close()
    assert path.read_bytes() == expected_prefix + b'{"d": 4}\n{"e": 5}\n'


# -- failed writes: a real file-size limit in a child -----------------------------------------

FILE_SIZE_LIMIT = """
import errno, resource
from runjournal.errors import RunjournalWarning, StoreWriteError
# Python ignores SIGXFSZ, so a write past RLIMIT_FSIZE fails with EFBIG instead of killing us.
assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
LIMIT = 16384
run = runjournal.start(flush_interval=3600, heartbeat_interval=3600)
print("run", run.id, flush=True)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, hard))
first_error = None
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for step in range(600):
        run.log(metric_values(step))
        if step % 25 == 24:
            try:
                run.flush()
            except StoreWriteError as error:
                first_error = first_error or error
    print("loop done", flush=True)
for warning in caught:
    if issubclass(warning.category, RunjournalWarning):
        print("warning", warning.message, flush=True)
if first_error is not None:
    print("error", first_error, flush=True)
    print("cause errno", errno.errorcode[first_error.__cause__.errno], flush=True)
print("size at limit", os.path.getsize(run.dir / "metrics.jsonl") <= LIMIT, flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space is back
run.flush()
run.end()
"""


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_failed_writes_keep_the_lines_and_retry_them_in_order(store: Path, strict: bool) -> None:
    """Writes refused with EFBIG: the loop goes on, one warning (or one error), no line lost."""
    child = run_child(FILE_SIZE_LIMIT, child_env(store, strict=strict))
    assert child.proc.returncode == 0, child.stderr
    assert "loop done" in child.stdout_lines
    assert "size at limit True" in child.stdout_lines  # the limit really refused writes
    run_id = child.stdout_lines[0].split()[1]
    warned = [line for line in child.stdout_lines if line.startswith("warning ")]
    errors = [line for line in child.stdout_lines if line.startswith("error ")]
    if strict:
        assert warned == []
        assert len(errors) == 1 and "metrics.jsonl" in errors[0], child.stdout_lines
        assert "cause errno EFBIG" in child.stdout_lines
    else:
        assert errors == []
        assert len(warned) == 1 and "metrics.jsonl" in warned[0], warned

    run_dir = store / "runs" / run_id
    assert metric_steps(run_dir) == list(range(600))  # in order, none lost, none twice
    assert_exact_values(load_record(store, run_id).history(), range(600))
    if not strict:
        failed = [e for e in events(run_dir, "error") if e["cause"] == "write_failed"]
        assert failed and {e["key"] for e in failed} == {"metrics.jsonl"}
        assert failed[0]["count"] == 1 and max(e["count"] for e in failed) > 1
    assert events(run_dir)[-1]["status"] == "completed"


# -- the memory caps ------------------------------------------------------------------------


def test_append_file_drops_lines_past_its_cap_and_counts_them(tmp_path: Path) -> None:
    """Unwritten bytes past max_unwritten are dropped whole and counted; the rest land in order."""
    directory = tmp_path / "not-yet"
    file = AppendFile(directory / "metrics.jsonl", fsync=False, max_unwritten=100)
    kept = b"".join(b'{"k": %d}\n' % i for i in range(5))  # 45 bytes: fits the cap
    problem = file.write(kept)
    assert problem is not None and isinstance(problem.error, FileNotFoundError)
    assert problem.dropped_lines == 0 and file.unwritten_bytes == len(kept)

    too_many = b"".join(b'{"d": %d}\n' % i for i in range(10))  # 90 more: over the cap
    problem = file.write(too_many)
    assert problem is not None and problem.dropped_lines == 10
    assert file.unwritten_bytes == len(kept)

    directory.mkdir()
    assert file.write(b'{"z": 0}\n') is None
    file.close()
    assert (directory / "metrics.jsonl").read_bytes() == kept + b'{"z": 0}\n'


@pytest.fixture
def tiny_buffer_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    """Runs get a metric buffer that wakes the flusher at 1 KiB and drops lines past 8 KiB."""
    defaults = _writer.RunWriter.__init__.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "flush_bytes", 1024)
    monkeypatch.setitem(defaults, "max_buffered", 8192)
    return 8192


class StalledWrites:
    """Background metric writes that block until released: a stuck disk, or a slow NFS server.

    Attributes:
        blocked: Set by the flusher thread once one of its writes is stuck.
        release: Set by the test to let the stuck write (and all later ones) go on.
    """

    def __init__(self) -> None:
        self.blocked = threading.Event()
        self.release = threading.Event()


@pytest.fixture
def stalled_background_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[StalledWrites]:
    """The flusher thread's writes of metrics.jsonl block until the test releases them."""
    stalled = StalledWrites()
    real_write_all = AppendFile._write_all

    def stuck(self: AppendFile, chunk: bytes | bytearray) -> None:
        background = threading.current_thread() is not threading.main_thread()
        if background and chunk and self.path.name == "metrics.jsonl":
            stalled.blocked.set()
            stalled.release.wait(WAIT)
        real_write_all(self, chunk)

    monkeypatch.setattr(AppendFile, "_write_all", stuck)
    yield stalled
    stalled.release.set()


def test_lines_past_the_buffer_cap_are_dropped_and_counted_never_silently(
    store: Path, tiny_buffer_cap: int, stalled_background_writes: StalledWrites
) -> None:
    """While the disk is stuck, lines past the cap are dropped; the dropped count is recorded."""
    run = runjournal.start(store=store, strict=False, flush_interval=3600, heartbeat_interval=3600)
    logged = 0
    while not stalled_background_writes.blocked.is_set():
        run.log({"x": logged})
        logged += 1
        assert logged < 1_000_000, "the flusher never started a write"
    for _ in range(10_000):
        run.log({"x": logged})
        logged += 1
    stalled_background_writes.release.set()
    with pytest.warns(RunjournalWarning, match="dropped") as caught:
        run.end()
    assert len(_runjournal_warnings(list(caught))) == 1

    assert run.dir is not None
    written = read_jsonl(run.dir / "metrics.jsonl")
    steps = [line["step"] for line in written]
    assert steps == sorted(set(steps)) and all(line["m"] == {"x": line["step"]} for line in written)
    dropped = [e for e in events(run.dir, "error") if e["cause"] == "dropped"]
    assert dropped, "lines were dropped without an error event"
    total_dropped = max(e["count"] for e in dropped)
    assert total_dropped > 0
    assert len(written) + total_dropped == logged


# -- files that vanish under a live run --------------------------------------------------------


def test_a_deleted_metrics_file_is_recreated_not_written_into_the_unlinked_inode(
    store: Path,
) -> None:
    """After metrics.jsonl is unlinked mid-run, later lines go to a new metrics.jsonl."""
    run = runjournal.start(store=store, flush_interval=3600)
    assert run.dir is not None
    metrics = run.dir / "metrics.jsonl"
    for step in range(10):
        run.log({"x": step})
    run.flush()
    size_before = metrics.stat().st_size
    old_inode = os.open(metrics, os.O_RDONLY)
    try:
        metrics.unlink()
        for step in range(10, 20):
            run.log({"x": step})
        run.flush()
        assert os.fstat(old_inode).st_size == size_before  # nothing went into the lost inode
    finally:
        os.close(old_inode)
    run.end()
    assert metric_steps(run.dir) == list(range(10, 20))
    assert events(run.dir)[-1]["status"] == "completed"


def _delete_run_dir_and_keep_training(run: runjournal.Run) -> list[str]:
    """Remove the run's directory, then log and flush 1,000 lines; return the warnings."""
    assert run.dir is not None
    shutil.rmtree(run.dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1000):
            run.log({"loss": 1 / (step + 1)})
            if step % 100 == 99:
                run.flush()
    return _runjournal_warnings(caught)


def test_a_deleted_run_directory_never_stops_the_training_loop(store: Path, lenient: None) -> None:
    """With its directory gone the loop runs on, with a warning naming the file; end() is quiet."""
    run = runjournal.start(store=store, flush_interval=3600, heartbeat_interval=3600)
    run.log({"loss": 1.0})
    run.flush()
    loop_warnings = _delete_run_dir_and_keep_training(run)
    assert loop_warnings and "metrics.jsonl" in loop_warnings[0]
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        run.end()
    assert run.ended
    assert run.dir is not None and not run.dir.exists()  # nothing recreated a partial run


def test_a_deleted_run_directory_warns_once_whatever_files_are_written(
    store: Path, lenient: None
) -> None:
    """A vanished directory is one cause: one warning in all, whatever files are written after."""
    run = runjournal.start(store=store, flush_interval=3600, heartbeat_interval=3600)
    run.flush()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop_warnings = _delete_run_dir_and_keep_training(run)
        run.log_params({"lr": 0.1})
        run.tag(stage="finetune")
        run.note("directory is gone")
        run.end()
    assert len(loop_warnings + _runjournal_warnings(caught)) == 1


# -- durability and system calls ----------------------------------------------------------------


@pytest.fixture
def counted_syscalls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Count the writer's system calls (write, open, fstat, pread, fsync), calling through."""
    calls: dict[str, list[Any]] = {}
    for name in ("write", "open", "fstat", "pread", "fsync"):
        real = getattr(_writer.os, name)
        calls[name] = []
        monkeypatch.setattr(_writer.os, name, _counting(real, calls[name]))
    return calls


def _counting(real: Callable[..., Any], record: list[Any]) -> Callable[..., Any]:
    def call(first: Any, *args: Any, **kwargs: Any) -> Any:
        record.append(_target(first))
        return real(first, *args, **kwargs)

    return call


def _target(first: Any) -> str:
    """The file a system call is about: a path, or what an fd points to."""
    if isinstance(first, int):
        try:
            return os.readlink(f"/proc/self/fd/{first}")
        except OSError:
            return f"fd {first}"
    return os.fspath(first)


def test_the_hot_path_makes_no_system_call_until_flush(
    store: Path, counted_syscalls: dict[str, list[Any]]
) -> None:
    """1,000 run.log calls make no write (nor open, stat, fsync); flush() then writes them all."""
    run = runjournal.start(store=store, flush_interval=3600, heartbeat_interval=3600)
    for calls in counted_syscalls.values():
        calls.clear()
    for step in range(1000):
        run.log({"loss": 1 / (step + 1), "lr": 0.001})
    assert {name: len(calls) for name, calls in counted_syscalls.items()} == dict.fromkeys(
        counted_syscalls, 0
    )
    run.flush()
    assert run.dir is not None
    assert any(path.endswith("metrics.jsonl") for path in counted_syscalls["write"])
    assert metric_steps(run.dir) == list(range(1000))
    run.end()


@pytest.mark.parametrize(("durability", "fsyncs"), [("fsync", True), ("buffered", False)])
def test_fsync_durability_syncs_every_flush_and_otherwise_behaves_like_buffered(
    store: Path, counted_syscalls: dict[str, list[Any]], durability: Any, fsyncs: bool
) -> None:
    """durability='fsync' calls os.fsync on the files it flushes; 'buffered' never does."""
    run = runjournal.start(
        store=store, flush_interval=3600, heartbeat_interval=3600, durability=durability
    )
    assert run.dir is not None
    counted_syscalls["fsync"].clear()
    for step in range(50):
        run.log({"loss": 1 / (step + 1)})
    assert counted_syscalls["fsync"] == []
    run.flush()
    synced = set(counted_syscalls["fsync"])
    assert (str(run.dir / "metrics.jsonl") in synced) is fsyncs
    run.end()
    assert (str(run.dir / "run.jsonl") in set(counted_syscalls["fsync"])) is fsyncs
    if not fsyncs:
        assert counted_syscalls["fsync"] == []
    assert metric_steps(run.dir) == list(range(50))
    assert events(run.dir)[-1]["status"] == "completed"


# -- a slow flush never blocks the training loop --------------------------------------------------


def test_logging_goes_on_while_a_slow_background_flush_is_in_progress(
    store: Path, stalled_background_writes: StalledWrites
) -> None:
    """While the flusher thread is stuck in a write, the main thread logs 10,000 lines; all land."""
    run = runjournal.start(store=store, flush_interval=0.01, heartbeat_interval=3600)
    run.log({"x": 0})
    assert stalled_background_writes.blocked.wait(WAIT), "the flusher never started a write"
    for step in range(1, 10_001):
        run.log({"x": step})
    # The background write is still stuck (only this thread can release it), so none of
    # these 10,000 calls waited for it.
    stalled_background_writes.release.set()
    run.end()
    assert run.dir is not None
    assert metric_steps(run.dir) == list(range(10_001))
