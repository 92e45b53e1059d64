"""Resource faults: a full disk, a vanished or read-only store, no file descriptors, a slow disk.

The training loop must survive each one; the logger degrades and says so
(one warning per cause, ``error`` events with counts), keeps unwritten lines
up to its memory cap, drops and counts beyond it, and writes what it kept in
order once the resource is back. Real limits where the kernel gives them to an
unprivileged test (``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``, deleting the store), real
mounts where this machine allows them (a small tmpfs, a read-only bind mount;
skipped otherwise), and simulated system calls only where nothing real exists
(a slow network file system, and ``EACCES``, since these tests run as root).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import runjournal
from _children import Child, child_env, events, read_jsonl, run_child

CAP = 16384
"""The memory caps the children set (max_unwritten and max_buffered), so that they bite fast."""

SMALL_CAPS = f"""
from runjournal import _writer
CAP = {CAP}
_writer.AppendFile.__init__.__kwdefaults__["max_unwritten"] = {CAP}
_writer.RunWriter.__init__.__kwdefaults__["max_buffered"] = {CAP}
_writer.RunWriter.__init__.__kwdefaults__["flush_bytes"] = 4096
CHUNK = _writer._CHUNK_BYTES
"""

REPORT = """
def report(run, caught, logged):
    print("logged", logged, flush=True)
    for warning in caught:
        print("warning", str(warning.message).replace(chr(10), " "), flush=True)
    print("thread alive", run._writer._thread.is_alive(), flush=True)
"""


def _warnings(child: Child) -> list[str]:
    return [line[8:] for line in child.stdout_lines if line.startswith("warning ")]


def _number(child: Child, word: str) -> int:
    return next(int(line.split()[-1]) for line in child.stdout_lines if line.startswith(word))


def _steps_and_drops(run_dir: Path) -> tuple[list[int], int]:
    """The steps on disk (each line checked exact: x == step) and the recorded dropped count."""
    lines = read_jsonl(run_dir / "metrics.jsonl")
    assert all(line["m"] == {"x": line["step"]} for line in lines)
    drops = [e["count"] for e in events(run_dir, "error") if e["cause"] == "dropped"]
    return [line["step"] for line in lines], max(drops, default=0)


# -- disk full / file too large ---------------------------------------------------------------

FILE_TOO_LARGE = (
    SMALL_CAPS
    + REPORT
    + """
import resource
run = runjournal.start(flush_interval=3600, heartbeat_interval=3600)
print("run", run.id, flush=True)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, hard))
peak = 0
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for step in range(3000):
        run.log({"x": step})
        if step % 50 == 49:
            run.flush()
            peak = max(peak, run._writer.unwritten_bytes())
    report(run, caught, 3000)
print("peak", peak, flush=True)
print("bounded", peak <= CAP + CHUNK, flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space is back
for step in range(3000, 3100):
    run.log({"x": step})
run.end()
"""
)


def test_a_file_size_limit_keeps_lines_up_to_the_cap_then_writes_them_in_order(
    tmp_path: Path, tally: Any
) -> None:
    """EFBIG: the loop ends, one warning per cause, kept lines land in order, drops are counted."""
    store = tmp_path / "store"
    child = run_child(FILE_TOO_LARGE, child_env(store, strict=False, RUNJOURNAL_CAPTURE="0"))
    assert child.proc.returncode == 0, child.stderr
    assert "bounded True" in child.stdout_lines and "thread alive True" in child.stdout_lines
    assert [w.split(":")[1].split()[0] for w in _warnings(child)] == ["cannot", "dropped"]
    run_dir = store / "runs" / child.stdout_lines[0].split()[1]
    steps, dropped = _steps_and_drops(run_dir)
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # in order, none twice
    assert steps[-100:] == list(range(3000, 3100))
    assert dropped > 0 and len(steps) + dropped == 3100  # every line written or counted
    failed = [e for e in events(run_dir, "error") if e["cause"] == "write_failed"]
    assert failed and failed[-1]["count"] > 1
    assert events(run_dir)[-1]["status"] == "completed"
    result = tally("resource faults")
    result.repetitions += 1
    result.runs += 1
    result.lines += len(steps)
    result.expect("lines dropped past the cap, counted", dropped)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test (skipped where mounting is not permitted)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


DISK_FULL = (
    REPORT
    + """
ballast = sys.argv[1]
run = runjournal.start(flush_interval=3600, heartbeat_interval=3600)
print("run", run.id, flush=True)
with open(ballast, "wb", buffering=0) as file:  # fill the disk
    try:
        while True:
            file.write(b"\\0" * 4096)
            file.flush()
    except OSError:
        pass
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for step in range(2000):
        run.log({"x": step})
        if step % 100 == 99:
            run.flush()
    run.tag(disk="full")
    run.note("written once space is back")
    report(run, caught, 2000)
print("unwritten", run._writer.unwritten_bytes(), flush=True)
os.unlink(ballast)  # space is back
run.end()
"""
)


def test_a_full_disk_loses_nothing_once_space_is_back(small_disk: Path, tally: Any) -> None:
    """ENOSPC on a real tmpfs: the loop ends, one warning, every line lands in order after."""
    store = small_disk / "store"
    env = child_env(store, strict=False, RUNJOURNAL_CAPTURE="0")
    child = run_child(DISK_FULL, env, args=[str(small_disk / "ballast")])
    assert child.proc.returncode == 0, child.stderr
    assert _number(child, "unwritten") > 0, "the disk never filled up"
    assert len(_warnings(child)) == 1 and "No space left" in _warnings(child)[0]
    assert "thread alive True" in child.stdout_lines
    run_dir = store / "runs" / child.stdout_lines[0].split()[1]
    steps, dropped = _steps_and_drops(run_dir)
    assert dropped == 0 and steps == list(range(2000))
    record = runjournal.Store(store).run(run_dir.name)
    assert record.tags["disk"] == "full" and record.notes[-1].text == "written once space is back"
    assert {(e.cause, e.key) for e in record.errors} >= {("write_failed", "metrics.jsonl")}
    assert record.status == "completed"
    result = tally("resource faults")
    result.repetitions += 1
    result.runs += 1
    result.lines += len(steps)


# -- the store deleted, or read-only ----------------------------------------------------------

DELETED = (
    SMALL_CAPS
    + REPORT
    + """
import shutil
run = runjournal.start(flush_interval=0.01, heartbeat_interval=0.05)
print("run", run.id, flush=True)
sys.stdin.readline()  # the test deletes the store now
peak = 0
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for step in range(5000):
        run.log({"x": step})
        if step % 100 == 99:
            run.flush()
            run.note("still going")
            peak = max(peak, run._writer.unwritten_bytes() + len(run._buffer))
    report(run, caught, 5000)
    run.end()
print("bounded", peak <= 2 * CAP + CHUNK, flush=True)
"""
)


def test_a_deleted_store_never_stops_four_writers_nor_comes_back_half(
    tmp_path: Path, tally: Any
) -> None:
    """The whole store removed under 4 live runs: each loop ends with one warning, memory capped."""
    store = tmp_path / "store"
    env = child_env(store, strict=False, RUNJOURNAL_CAPTURE="0")
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(Child(DELETED, env)) for _ in range(4)]
        for writer in writers:
            writer.expect(r"run \S+")
        shutil.rmtree(store)
        for writer in writers:
            writer.close_stdin()
        codes = [writer.wait() for writer in writers]
    assert codes == [0] * 4, [w.stderr for w in writers]
    for writer in writers:
        assert "bounded True" in writer.stdout_lines and "thread alive True" in writer.stdout_lines
        assert len(_warnings(writer)) in (1, 2), _warnings(writer)  # write failed (and dropped)
    assert not store.exists(), "a writer recreated part of the deleted store"
    tally("resource faults").repetitions += 4


@pytest.fixture
def read_only_overlay() -> Iterator[Any]:
    """A function that bind-mounts a directory read-only over itself; unmounted after the test."""
    mounted: list[Path] = []

    def make_read_only(directory: Path) -> bool:
        bound = subprocess.run(["mount", "--bind", str(directory), str(directory)], check=False)
        if bound.returncode != 0:
            return False
        mounted.append(directory)
        remounted = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(directory)], check=False, capture_output=True
        )
        return remounted.returncode == 0

    def undo() -> None:
        while mounted:
            subprocess.run(["umount", "-l", str(mounted.pop())], check=False)

    make_read_only.undo = undo  # type: ignore[attr-defined]
    yield make_read_only
    undo()


def test_a_store_made_read_only_mid_run_keeps_lines_until_it_is_writable(
    tmp_path: Path, read_only_overlay: Any, monkeypatch: pytest.MonkeyPatch, tally: Any
) -> None:
    """A read-only mount over the run (EROFS on new files): loop goes on, lines land after."""
    monkeypatch.delenv("RUNJOURNAL_STRICT", raising=False)
    store = tmp_path / "store"
    run = runjournal.start(store=store, flush_interval=3600, heartbeat_interval=3600, capture=False)
    assert run.dir is not None
    if not read_only_overlay(run.dir):
        run.end()
        pytest.skip("cannot bind-mount read-only here")
    with pytest.warns(runjournal.errors.RunjournalWarning, match="Read-only file system") as caught:
        for step in range(500):
            run.log({"x": step})
            if step % 100 == 99:
                run.flush()
        run.log_params({"lr": 0.1})
    assert len(caught) == 1
    assert not (run.dir / "metrics.jsonl").exists()  # EROFS: nothing could be created
    read_only_overlay.undo()
    run.end()
    steps, _ = _steps_and_drops(run.dir)
    assert steps == list(range(500))
    record = runjournal.Store(store).run(run.id)
    assert record.params == {"lr": 0.1} and record.status == "completed"
    assert {e.key for e in record.errors if e.cause == "write_failed"} == {
        "metrics.jsonl",
        "params.jsonl",
    }
    tally("resource faults").repetitions += 1


def test_permission_denied_mid_run_keeps_lines_until_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tally: Any
) -> None:
    """EACCES on every open (simulated: root ignores modes): the loop goes on, lines land after."""
    monkeypatch.delenv("RUNJOURNAL_STRICT", raising=False)
    from runjournal import _permissions

    run = runjournal.start(store=tmp_path / "store", flush_interval=3600, capture=False)
    assert run.dir is not None
    real_open = _permissions.os.open
    denied = {"on": True}

    def deny(path: Any, flags: int, *args: Any) -> int:
        if denied["on"]:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(_permissions.os, "open", deny)
    with pytest.warns(runjournal.errors.RunjournalWarning, match="Permission denied"):
        for step in range(300):
            run.log({"x": step})
            if step % 50 == 49:
                run.flush()
    denied["on"] = False
    run.end()
    assert _steps_and_drops(run.dir)[0] == list(range(300))
    tally("resource faults").repetitions += 1


# -- no file descriptors left ---------------------------------------------------------------------

NO_FDS = (
    REPORT
    + """
import resource
run = runjournal.start(flush_interval=0.01, heartbeat_interval=0.02)
print("run", run.id, flush=True)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
hogs = []
try:
    while True:
        hogs.append(open(os.devnull))
except OSError as error:
    print("exhausted", error.errno, flush=True)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for step in range(2000):
        run.log({"x": step})
        if step % 200 == 199:
            run.flush()
    run.log_params({"lr": 0.1})  # params.jsonl is not open yet: needs a descriptor
    run.note("no descriptors")
    report(run, caught, 2000)
for hog in hogs:
    hog.close()
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
run.end()
"""
)


def test_running_out_of_file_descriptors_loses_nothing(tmp_path: Path, tally: Any) -> None:
    """EMFILE after start: the loop ends, one warning, params and lines land once fds are back."""
    store = tmp_path / "store"
    child = run_child(NO_FDS, child_env(store, strict=False, RUNJOURNAL_CAPTURE="0"))
    assert child.proc.returncode == 0, child.stderr
    assert "exhausted 24" in child.stdout_lines  # EMFILE, really
    assert "thread alive True" in child.stdout_lines
    assert len(_warnings(child)) == 1 and "Too many open files" in _warnings(child)[0]
    run_dir = store / "runs" / child.stdout_lines[0].split()[1]
    steps, dropped = _steps_and_drops(run_dir)
    assert steps == list(range(2000)) and dropped == 0
    record = runjournal.Store(store).run(run_dir.name)
    assert record.params == {"lr": 0.1} and record.notes[-1].text == "no descriptors"
    assert record.status == "completed"
    result = tally("resource faults")
    result.repetitions += 1
    result.runs += 1
    result.lines += len(steps)


# -- a slow file system ---------------------------------------------------------------------------

SLOW_DISK = (
    SMALL_CAPS
    + REPORT
    + """
import threading, psutil
THREADS = int(sys.argv[1])
sys.setswitchinterval(1e-6)
real_write_all = _writer.AppendFile._write_all

def slow_write_all(self, chunk):
    if chunk and self.path.name == "metrics.jsonl":
        time.sleep(0.002)  # a network file system far away
    real_write_all(self, chunk)

_writer.AppendFile._write_all = slow_write_all
run = runjournal.start(flush_interval=0.001, heartbeat_interval=3600)
print("run", run.id, flush=True)
rss_before = psutil.Process().memory_info().rss
peak = {"buffer": 0}
PER_THREAD = 20000

def log(index):
    for n in range(PER_THREAD):
        # lines of different lengths: a line taken back by mistake would tear another
        step = index * PER_THREAD + n
        run.log({"x": step, "pad" * (1 + n % 13): 0.5}, step=step)
        if n % 500 == 0:
            peak["buffer"] = max(peak["buffer"], len(run._buffer))

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    threads = [threading.Thread(target=log, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    growth = psutil.Process().memory_info().rss - rss_before
    run.end()
    report(run, caught, THREADS * PER_THREAD)
print("peak buffer", peak["buffer"], flush=True)
print("bounded", peak["buffer"] <= CAP + 200 * THREADS, flush=True)
print("rss growth MiB", growth // 2**20, flush=True)
"""
)


@pytest.mark.parametrize("threads", [1, 4])
def test_a_slow_disk_keeps_memory_bounded_and_counts_every_dropped_line(
    tmp_path: Path, threads: int, tally: Any
) -> None:
    """Writes slower than logging: the buffer stays under its cap; written + dropped == logged."""
    store = tmp_path / "store"
    env = child_env(store, strict=False, RUNJOURNAL_CAPTURE="0")
    child = run_child(SLOW_DISK, env, args=[str(threads)])
    assert child.proc.returncode == 0, child.stderr
    assert "bounded True" in child.stdout_lines, child.stdout_lines
    assert _number(child, "rss growth MiB") < 64
    assert any("dropped" in warning for warning in _warnings(child))
    run_dir = store / "runs" / child.stdout_lines[0].split()[1]
    lines = read_jsonl(run_dir / "metrics.jsonl")  # every line whole: none torn by a drop
    steps = [line["step"] for line in lines]
    assert all(line["m"]["x"] == line["step"] for line in lines)
    assert len(set(steps)) == len(steps)
    drops = [e["count"] for e in events(run_dir, "error") if e["cause"] == "dropped"]
    logged = _number(child, "logged")
    assert len(steps) + max(drops) == logged, (len(steps), max(drops), logged)
    result = tally("resource faults")
    result.repetitions += 1
    result.runs += 1
    result.lines += len(steps)
    result.expect("lines dropped past the cap, counted", max(drops))
