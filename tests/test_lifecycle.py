"""How a run ends with its process: kill -9, SIGTERM, SIGINT, exceptions, exit, fork, torn files.

Mirrors ``_lifecycle.py`` and the end handling of ``run.py``. Each scenario runs
in a real child process that gets a real signal; the assertions read the files
the child left behind (and the status a reader infers from them).
"""

from __future__ import annotations

import json
import random
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

import runjournal
from _children import (
    Child,
    assert_exact_values,
    child_env,
    events,
    load_record,
    metric_steps,
    metric_values,
    printed_numbers,
    read_jsonl,
    run_child,
    tolerant_history,
)
from runjournal.errors import RunjournalWarning


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The store the child processes write to (created by their first run)."""
    return tmp_path / "store"


def _end_event(store: Path, run_id: str) -> dict[str, Any]:
    """The one end event of a single-segment run, which must be its last event."""
    found = events(store / "runs" / run_id)
    ends = [event for event in found if event["event"] == "end"]
    assert len(ends) == 1, ends
    assert found[-1] is ends[0]
    return ends[0]


def _assert_logged_lines_kept(run_dir: Path, logged: int) -> list[int]:
    """The first ``logged`` steps are on disk once each, in order; later ones at most once."""
    steps = metric_steps(run_dir)
    assert steps[:logged] == list(range(logged)), "a line logged before the signal is missing"
    assert steps == sorted(set(steps)), "a line is on disk twice or out of order"
    return steps


# -- kill -9 ----------------------------------------------------------------------------

FLUSH_LOOP = """
run = runjournal.start(flush_interval=3600, heartbeat_interval=3600)
print("run", run.id, flush=True)
step = 0
while step < 1_000_000:
    for _ in range(3):
        run.log(metric_values(step))
        step += 1
    run.flush()
    print("flushed", step, flush=True)
"""


def test_sigkill_keeps_every_flushed_line_exactly_and_reads_as_crashed(store: Path) -> None:
    """After kill -9 every line reported flushed loads with equal values; no end; status crashed."""
    target = random.randrange(6, 300)
    with Child(FLUSH_LOOP, child_env(store)) as child:
        run_id = child.expect(r"run (\S+)")[1]
        while int(child.expect(r"flushed (\d+)")[1]) < target:
            pass
        child.send(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    reported = max(printed_numbers(child.stdout_lines, "flushed"))
    assert reported >= target

    run_dir = store / "runs" / run_id
    assert not [event for event in events(run_dir) if event["event"] == "end"]
    record = load_record(store, run_id)
    assert record.status == "crashed"
    rows, skipped = tolerant_history(record)
    # SIGKILL can only tear the very last write, which the reader skips and reports.
    assert set(skipped) <= {"incomplete last line"}, skipped
    steps = sorted({row["step"] for row in rows})
    assert steps == list(range(len(steps))), "a flushed line is missing"
    assert len(steps) >= reported, (
        f"reported {reported} flushed, found {len(steps)} (target {target})"
    )
    assert_exact_values(rows, range(len(steps)))


# -- SIGTERM ----------------------------------------------------------------------------

LOG_LOOP = """
run = runjournal.start(flush_interval=3600, heartbeat_interval=3600)
print("run", run.id, flush=True)
step = 0
while step < 100_000_000:
    run.log(metric_values(step))
    step += 1
    if step % 500 == 0:
        print("logged", step, flush=True)
"""

OWN_SIGTERM_HANDLER = """
def on_sigterm(signum, frame):
    print("handler ran", flush=True)
    raise SystemExit(143)

signal.signal(signal.SIGTERM, on_sigterm)
"""

LOG_LOOP_IN_WITH = """
with runjournal.start(flush_interval=3600, heartbeat_interval=3600) as run:
    print("run", run.id, flush=True)
    step = 0
    while step < 100_000_000:
        run.log(metric_values(step))
        step += 1
        if step % 500 == 0:
            print("logged", step, flush=True)
"""


def _log_until_signalled(body: str, store: Path, signum: int) -> tuple[Child, str, int]:
    """Run a logging loop, signal it after 2000 lines; return the child, run id and lines logged."""
    with Child(body, child_env(store)) as child:
        run_id = child.expect(r"run (\S+)")[1]
        while int(child.expect(r"logged (\d+)")[1]) < 2000:
            pass
        child.send(signum)
        child.wait()
    logged = max(printed_numbers(child.stdout_lines, "logged"))
    return child, run_id, logged


def test_sigterm_flushes_ends_killed_and_the_process_dies_of_the_signal(store: Path) -> None:
    """SIGTERM to a logging loop: logged lines are written, the run ends killed, exit by signal."""
    child, run_id, logged = _log_until_signalled(LOG_LOOP, store, signal.SIGTERM)
    assert child.proc.returncode == -signal.SIGTERM, child.stderr
    assert _end_event(store, run_id)["status"] == "killed"
    _assert_logged_lines_kept(store / "runs" / run_id, logged)
    assert load_record(store, run_id).status == "killed"


@pytest.mark.parametrize(
    "loop",
    [
        pytest.param(LOG_LOOP, id="plain-loop"),
        pytest.param(LOG_LOOP_IN_WITH, id="with-block"),
    ],
)
def test_sigterm_chains_to_the_programs_own_handler_and_ends_killed(store: Path, loop: str) -> None:
    """A SIGTERM handler installed before start() still runs (and exits); the run ends killed."""
    child, run_id, logged = _log_until_signalled(OWN_SIGTERM_HANDLER + loop, store, signal.SIGTERM)
    assert "handler ran" in child.stdout_lines, child.stderr
    assert child.proc.returncode == 143, child.stderr
    _assert_logged_lines_kept(store / "runs" / run_id, logged)
    assert _end_event(store, run_id)["status"] == "killed"


# -- SIGINT, exceptions, exit ----------------------------------------------------------------


def test_sigint_ends_the_run_interrupted(store: Path) -> None:
    """SIGINT (KeyboardInterrupt) in a logging loop ends the run interrupted, lines written."""
    body = "signal.signal(signal.SIGINT, signal.default_int_handler)\n" + LOG_LOOP
    child, run_id, logged = _log_until_signalled(body, store, signal.SIGINT)
    assert child.proc.returncode != 0
    assert "KeyboardInterrupt" in child.stderr
    assert _end_event(store, run_id)["status"] == "interrupted"
    _assert_logged_lines_kept(store / "runs" / run_id, logged)


UNCAUGHT = """
run = runjournal.start()
print("run", run.id, flush=True)
run.log({"loss": 0.5})

def explode_in_training_step():
    raise ValueError("bad batch 7")

explode_in_training_step()
"""


def test_uncaught_exception_ends_failed_with_the_traceback(store: Path) -> None:
    """An uncaught exception records type, message and traceback; stderr still shows it."""
    child = run_child(UNCAUGHT, child_env(store))
    assert child.proc.returncode == 1
    run_id = child.stdout_lines[0].split()[1]
    assert "Traceback (most recent call last)" in child.stderr
    assert "explode_in_training_step" in child.stderr
    assert "ValueError: bad batch 7" in child.stderr
    end = _end_event(store, run_id)
    assert end["status"] == "failed"
    exception = end["exception"]
    assert (exception["type"], exception["message"]) == ("ValueError", "bad batch 7")
    assert "explode_in_training_step" in exception["traceback"]
    assert exception["traceback"].rstrip().endswith("ValueError: bad batch 7")
    assert metric_steps(store / "runs" / run_id) == [0]


def test_normal_exit_without_end_completes_the_run_at_exit(store: Path) -> None:
    """A script that never calls end() ends its run completed (atexit), with every line written."""
    body = """
    run = runjournal.start(flush_interval=3600)
    print("run", run.id, flush=True)
    for step in range(10):
        run.log(metric_values(step))
    """
    child = run_child(body, child_env(store))
    assert child.proc.returncode == 0, child.stderr
    run_id = child.stdout_lines[0].split()[1]
    assert _end_event(store, run_id)["status"] == "completed"
    assert metric_steps(store / "runs" / run_id) == list(range(10))
    assert load_record(store, run_id).status == "completed"


def test_exception_in_a_with_block_ends_failed_and_propagates(store: Path) -> None:
    """`with start()`: an exception inside the block ends the run failed and is re-raised."""
    with pytest.raises(ZeroDivisionError), runjournal.start(store=store) as run:
        run.log({"loss": 1.0})
        _ = 1 / 0
    assert run.ended
    end = _end_event(store, run.id)
    assert end["status"] == "failed"
    assert end["exception"]["type"] == "ZeroDivisionError"


@pytest.mark.parametrize(("code", "status"), [(3, "failed"), (0, "completed"), (None, "completed")])
def test_sys_exit_in_a_with_block_ends_by_its_code(
    store: Path, code: int | None, status: str
) -> None:
    """sys.exit(non-zero) inside `with start()` ends the run failed; sys.exit(0) completed."""
    with pytest.raises(SystemExit) as exited, runjournal.start(store=store) as run:
        run.log({"loss": 1.0})
        sys.exit(code)
    assert exited.value.code == code
    assert _end_event(store, run.id)["status"] == status


# -- a signal that lands while the main thread writes -------------------------------------

MID_WRITE = """
import threading
signal.signal(signal.SIGINT, signal.default_int_handler)
WHEN, SIGNAL = sys.argv[1], getattr(signal, sys.argv[2])
run = runjournal.start(flush_interval=3600, heartbeat_interval=3600)
print("run", run.id, flush=True)
metrics_path = str(run.dir / "metrics.jsonl")
tripped_r, tripped_w = os.pipe()
os.set_blocking(tripped_w, False)
signal.set_wakeup_fd(tripped_w)  # the C-level handler writes here: the signal has arrived
real_write = os.write
landed = threading.Event()

def write(fd, data):
    if (
        landed.is_set()
        or threading.current_thread() is not threading.main_thread()
        or os.readlink(f"/proc/self/fd/{fd}") != metrics_path
    ):
        return real_write(fd, data)
    landed.set()
    print("signal lands mid-write", flush=True)
    written = real_write(fd, data) if WHEN == "after" else None
    os.kill(os.getpid(), SIGNAL)
    import select
    select.select([tripped_r], [], [], 2.0)  # until the signal has arrived (or is held back)
    return written if WHEN == "after" else real_write(fd, data)

os.write = write
for step in range(100):
    run.log({"x": step})
run.flush()
for step in range(100, 200):
    run.log({"x": step})
run.end()
"""


@pytest.mark.parametrize(
    ("when", "signame", "status"),
    [("before", "SIGTERM", "killed"), ("after", "SIGINT", "interrupted")],
)
def test_a_signal_during_a_main_thread_write_neither_loses_nor_duplicates_lines(
    store: Path, when: str, signame: str, status: str
) -> None:
    """SIGTERM or SIGINT arriving while run.flush() writes: each line logged lands exactly once."""
    child = run_child(MID_WRITE, child_env(store), args=[when, signame])
    assert "signal lands mid-write" in child.stdout_lines, child.stderr
    assert child.proc.returncode != 0
    run_id = child.stdout_lines[0].split()[1]
    assert _end_event(store, run_id)["status"] == status
    assert metric_steps(store / "runs" / run_id) == list(range(100)), child.stderr


SIGNAL_DURING_END = """
import threading
from runjournal import _writer
signal.signal(signal.SIGINT, signal.default_int_handler)
SIGNAL = getattr(signal, sys.argv[1])
run = runjournal.start(flush_interval=0.05, heartbeat_interval=3600)
print("run", run.id, flush=True)
lifecycle_handler = signal.getsignal(SIGNAL)
handled = threading.Event()

def noticing_handler(signum, frame):
    handled.set()
    lifecycle_handler(signum, frame)

signal.signal(SIGNAL, noticing_handler)
writing = threading.Event()
real_write_all = _writer.AppendFile._write_all

def slow_background_write(self, chunk):
    if chunk and threading.current_thread() is not threading.main_thread() and not writing.is_set():
        writing.set()
        while not run.ended:  # until the main thread is inside end(), waiting for this write
            time.sleep(0.01)
        print("signal during end", flush=True)
        os.kill(os.getpid(), SIGNAL)
        handled.wait(10)
    return real_write_all(self, chunk)

_writer.AppendFile._write_all = slow_background_write
step = 0
while not writing.is_set() or step < 5000:
    run.log({"x": step})
    step += 1
print("logged", step, flush=True)
run.end()
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_while_end_waits_for_a_background_write_loses_nothing(
    store: Path, signame: str
) -> None:
    """SIGTERM or SIGINT while end() waits for the flusher's write: all lines and the end land."""
    child = run_child(SIGNAL_DURING_END, child_env(store), args=[signame])
    assert "signal during end" in child.stdout_lines, child.stderr
    assert child.proc.returncode != 0
    logged = printed_numbers(child.stdout_lines, "logged")[0]
    run_id = child.stdout_lines[0].split()[1]
    assert metric_steps(store / "runs" / run_id) == list(range(logged)), child.stderr
    assert _end_event(store, run_id)["status"] in {"completed", "killed", "interrupted"}


# -- fork ----------------------------------------------------------------------------------

FORK = """
import json, multiprocessing
from runjournal.errors import RunError, RunjournalWarning
HOW, REPORT = sys.argv[1], sys.argv[2]
run = runjournal.start(flush_interval=3600, heartbeat_interval=3600)
for step in range(100):
    run.log({"parent": step})
print("unflushed at fork", not (run.dir / "metrics.jsonl").exists(), flush=True)

def in_child():
    result = {}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run.log({"parent": -1})
        result["warnings"] = [
            str(w.message) for w in caught if issubclass(w.category, RunjournalWarning)
        ]
    except RunError as error:
        result["error"] = str(error)
    run.flush()  # must not write the parent's buffer either
    own = runjournal.start(flush_interval=3600)
    for step in range(7):
        own.log({"child": step})
    result["own"] = own.id
    with open(REPORT, "w") as file:
        json.dump(result, file)
    if HOW == "fork-sys-exit":
        sys.exit(0)  # atexit ends the child's own run, and only that one
    if HOW == "fork-os-exit":
        own.end()
        os._exit(0)
    # a multiprocessing child leaves through os._exit too; its own run is ended for it

if HOW.startswith("fork-"):
    pid = os.fork()
    if pid == 0:
        in_child()
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
else:
    process = multiprocessing.get_context("fork").Process(target=in_child)
    process.start()
    process.join(60)
    code = process.exitcode
print("child exit", code, flush=True)
for step in range(100, 150):
    run.log({"parent": step})
run.end()
print("run", run.id, flush=True)
"""


@pytest.mark.parametrize(
    ("how", "strict"),
    [
        ("fork-sys-exit", True),
        ("fork-sys-exit", False),
        ("fork-os-exit", False),
        ("multiprocessing", True),
    ],
)
def test_a_forked_child_never_writes_the_parents_buffer(
    store: Path, tmp_path: Path, how: str, strict: bool
) -> None:
    """After fork the child's calls on the parent's run are refused and its own run works."""
    report = tmp_path / "child-report.json"
    child = run_child(FORK, child_env(store, strict=strict), args=[how, str(report)])
    assert child.proc.returncode == 0, child.stderr
    assert "unflushed at fork True" in child.stdout_lines  # the buffer was not empty
    assert "child exit 0" in child.stdout_lines, child.stderr
    run_id = child.stdout_lines[-1].split()[1]

    result = json.loads(report.read_text())
    if strict:
        assert "forked" in result["error"]
    else:
        assert len(result["warnings"]) == 1 and "forked" in result["warnings"][0]
    parent_lines = read_jsonl(store / "runs" / run_id / "metrics.jsonl")
    assert len(parent_lines) == 150
    assert [line["m"] for line in parent_lines] == [{"parent": step} for step in range(150)]
    assert _end_event(store, run_id)["status"] == "completed"

    own = result["own"]
    assert [line["m"] for line in read_jsonl(store / "runs" / own / "metrics.jsonl")] == [
        {"child": step} for step in range(7)
    ]
    assert _end_event(store, own)["status"] == "completed"


# -- a torn last line, then resume ----------------------------------------------------------


def test_resume_after_a_torn_line_starts_on_a_fresh_line(store: Path) -> None:
    """A torn last line stays a skipped, reported line of its own; the resumed lines all load."""
    first = runjournal.start(store=store, run_id="torn", flush_interval=3600)
    for step in range(5):
        first.log(metric_values(step))
    first.end()
    metrics = store / "runs" / "torn" / "metrics.jsonl"
    whole = metrics.read_bytes()
    torn = b'{"step": 5, "time": 1795000000.5, "seg": 0, "m": {"loss": 0.'
    with metrics.open("ab") as file:
        file.write(torn)

    resumed = runjournal.start(store=store, run_id="torn", resume=True, flush_interval=3600)
    assert resumed.segment == 1
    for step in range(5, 8):
        resumed.log(metric_values(step))
    resumed.end()

    data = metrics.read_bytes()
    assert data.startswith(whole + torn + b"\n"), data[len(whole) :][:200]
    new_lines = data[len(whole + torn) + 1 :].splitlines()
    assert len(new_lines) == 3

    record = load_record(store, "torn")
    with pytest.warns(RunjournalWarning, match="metrics.jsonl"):
        rows = record.history(raw=True)
    assert [(s.file, s.line, s.reason) for s in record.skipped] == [
        ("metrics.jsonl", 6, "not valid JSON")
    ]
    assert sorted({row["step"] for row in rows}) == list(range(8))
    assert {row["segment"] for row in rows if row["step"] >= 5} == {1}
    assert_exact_values(rows, range(8))
