"""Many writers at once, at scale: processes, attached writers, threads, forks, odd file systems.

Extends ``tests/test_concurrency.py`` (8 processes, 4 writers and a reader):
16 processes creating 800 runs in a fresh store while readers load it, 8
threads using every verb on one run, forked children logging while their
parent goes on, and the file systems where ``link()`` fails or ``O_APPEND``
is not honoured (simulated: see docs/reliability.md for what cannot be).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from _disk import audit_store

import runjournal
from _children import Child, child_env, read_jsonl, run_child
from runjournal import _writer
from runjournal.errors import StoreError
from runjournal.store import write_once

WAIT = 120.0


@contextlib.contextmanager
def _children(body: str, env: dict[str, str], count: int) -> Iterator[list[Child]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(Child(body, env, args=[str(i)])) for i in range(count)]


# -- 16 processes x 50 runs, and readers while they write -------------------------------------

SWARM = """
worker = int(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # all at once: they race to create the store
for n in range(50):
    run = runjournal.start("swarm", params={"worker": worker, "n": n}, flush_interval=3600)
    for step in range(30):
        run.log({"x": worker * 1000 + n, "step_value": step * 0.5})
        if step % 10 == 9:
            run.flush()  # readers see the run grow
            run.log_params({f"after{step}": step})
            time.sleep(0.005)  # a training step
        if n == 25 and step == 9:
            print("mid-run", flush=True)  # a run half written: until the readers have read
            sys.stdin.readline()
    run.end()
"""


def _read_everything(
    store: Path, sample: int | None = None
) -> dict[str, tuple[str, dict[str, Any], list[tuple[Any, ...]] | None]]:
    """One reader's view: per run its status, params and metric rows (rows of a sample only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a line being written may read as torn: reported
        records = runjournal.Store(store).runs()
        sampled = {r.id for r in random.sample(records, min(sample or len(records), len(records)))}
        view: dict[str, tuple[str, dict[str, Any], list[tuple[Any, ...]] | None]] = {}
        for record in records:
            rows = None
            if record.id in sampled:
                rows = [(r["step"], r["key"], r["value"]) for r in record.history(raw=True)]
            view[record.id] = (record.status, record.params, rows)
        return view


def test_sixteen_processes_create_eight_hundred_runs_while_readers_read(
    tmp_path: Path, soak: int, tally: Any, thread_crashes: list[str]
) -> None:
    """16 x 50 runs racing on a new store; every concurrent read is a prefix of the final store."""
    store = tmp_path / "fresh" / "store"
    env = child_env(store, RUNJOURNAL_CAPTURE="0")  # the race is the subject, not capture
    views: list[dict[str, Any]] = []
    reader_errors: list[BaseException] = []
    done = threading.Event()
    read = threading.Condition()

    def reader() -> None:
        while not done.is_set():
            try:
                view = _read_everything(store, sample=40)
            except StoreError:
                done.wait(0.01)  # the store does not exist yet
                continue
            except BaseException as error:
                reader_errors.append(error)
                return
            with read:
                views.append(view)
                read.notify_all()

    rounds = soak
    for _ in range(rounds):
        with _children(SWARM, env, 16) as workers:
            for worker in workers:
                worker.expect("ready")
            readers = [threading.Thread(target=reader) for _ in range(2)]
            for thread in readers:
                thread.start()
            for worker in workers:
                worker.tell("go")
            for worker in workers:
                worker.expect("mid-run", timeout=WAIT * 2)
            with read:  # three more reads: the third began while every writer was mid-run
                wanted = len(views) + 3
                assert read.wait_for(
                    lambda wanted=wanted: len(views) >= wanted or bool(reader_errors), WAIT
                )
            paused = views[-1]
            for worker in workers:
                worker.tell("continue")
            codes = [worker.wait(WAIT * 2) for worker in workers]
            done.set()
            for thread in readers:
                thread.join(WAIT)
            done.clear()
        assert codes == [0] * 16, [w.stderr for w in workers if w.proc.returncode]
    assert reader_errors == []

    final = _read_everything(store)
    assert len(final) == 800 * rounds  # no id collision, no run lost
    incomplete = [run_id for run_id, (_, params, _) in final.items() if "after29" not in params]
    assert incomplete == [], _params_diagnosis(store, final, incomplete)
    keys = Counter((p["worker"], p["n"]) for _, p, _ in final.values())
    assert keys == {(w, n): rounds for w in range(16) for n in range(50)}
    for status, params, rows in final.values():
        assert status == "completed"
        assert rows is not None
        value = params["worker"] * 1000 + params["n"]
        assert rows == [
            row
            for step in range(30)
            for row in ((step, "x", value), (step, "step_value", step * 0.5))
        ]
    torn_reads = 0
    for view in views:
        for run_id, (status, params, rows) in view.items():
            _, final_params, final_rows = final[run_id]
            assert status in {"running", "completed", "unknown"}, _diagnose(store, run_id)
            assert final_rows is not None
            if rows is not None:
                assert rows == final_rows[: len(rows)], f"{run_id}: a read is not a prefix"
            assert all(final_params.get(key) == value for key, value in params.items()), (
                _params_diagnosis(store, final, [run_id])
            )
            torn_reads += status == "unknown"
    # The read made while every writer was mid-run saw sixteen runs running, half written.
    half_written = [v for v in paused.values() if v[0] == "running"]
    assert len(half_written) == 16, sorted(status for status, _, _ in paused.values())

    result = tally("concurrency: processes, readers")
    result.repetitions += 16 * rounds
    result.runs += len(final)
    result.lines += audit_store(store).lines
    result.expect("reader views checked as prefixes", len(views))


def _params_diagnosis(store: Path, final: dict[str, Any], run_ids: list[str]) -> str:
    """What the store read gave for runs' params, beside a direct read of their files."""
    from runjournal.query._reader import load_run

    lines = []
    for run_id in run_ids[:3]:
        direct = load_run(store / "runs" / run_id, 0.0)
        on_disk = (store / "runs" / run_id / "params.jsonl").read_bytes()[:300]
        lines.append(
            f"{run_id}: read {final[run_id][:2]}; direct {direct.params}; file {on_disk!r}"
        )
    return "\n".join(lines)


def _diagnose(store: Path, run_id: str) -> str:
    """Why a reader may have judged a live run's process dead: what it recorded, what is now."""
    import psutil

    start = orjson.loads((store / "runs" / run_id / "run.jsonl").read_bytes().split(b"\n")[0])
    try:
        now = psutil.Process(start["pid"]).create_time()
    except psutil.Error as error:
        now = repr(error)  # type: ignore[assignment]
    return (
        f"{run_id}: recorded pid {start['pid']} started {start.get('pid_start')}, psutil says"
        f" {now}; boot time {psutil.boot_time()}, /proc/stat says"
        f" {Path('/proc/stat').read_text().split('btime')[1].split()[0]}"
    )


def _ending_run(store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A live run that ends, and whose process is then gone, when a reader checks it."""
    from runjournal import _process

    run = runjournal.start(store=store, run_id="ending", capture=False)
    run.log({"x": 1.0})

    def the_writer_ended_and_exited(process: Any) -> bool:
        if not run.ended:
            run.end()  # the end event lands now, after the reader read the file
        return False  # and then the process is gone

    monkeypatch.setattr(_process, "is_alive", the_writer_ended_and_exited)
    return store / "runs" / "ending" / "run.jsonl"


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_a_run_that_ends_while_it_is_read_never_reads_as_crashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: bool
) -> None:
    """The end event written (and the process gone) between the read and the check: completed."""
    store = tmp_path / "store"
    events = _ending_run(store, monkeypatch)
    (record,) = runjournal.Store(store, cache=cache).runs()
    assert b'"status":"completed"' in events.read_bytes()
    assert (record.status, record.end_time is not None) == ("completed", True)


def test_a_run_read_on_its_own_while_it_ends_reads_as_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The single-run reader (doctor, close) reads the file again too."""
    from runjournal.query._reader import load_run

    store = tmp_path / "store"
    events = _ending_run(store, monkeypatch)
    record = load_run(events.parent, 0.0)
    assert (record.status, record.end_time is not None) == ("completed", True)


def test_a_run_whose_process_died_without_an_end_still_reads_as_crashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a file that grew is read again: a dead writer with nothing new is crashed."""
    from runjournal import _process

    store = tmp_path / "store"
    run = runjournal.start(store=store, run_id="dead", capture=False)
    run.log({"x": 1.0})
    run.flush()
    monkeypatch.setattr(_process, "is_alive", lambda process: False)
    assert runjournal.Store(store).run("dead").status == "crashed"


# -- attached writers ---------------------------------------------------------------------------

ATTACHED = """
import runjournal
worker = int(sys.argv[1])
run_id = os.environ["SHARED_RUN"]
writer = runjournal.attach(run_id, writer=f"w{worker}")
print("ready", flush=True)
sys.stdin.readline()
for step in range(500):
    writer.log({"x": worker * 10_000 + step}, step=step)
    if step % 100 == 99:
        writer.flush()
writer.end()
"""


@pytest.mark.skipif(not hasattr(runjournal, "attach"), reason="attach() arrives with issue 4")
def test_eight_attached_writers_on_one_run_each_keep_their_own_lines(
    tmp_path: Path, tally: Any
) -> None:
    """8 processes attached to one run: each writes its own file; no line lost, none mixed."""
    store = tmp_path / "store"
    owner = runjournal.start(store=store, flush_interval=3600)
    env = child_env(store, SHARED_RUN=owner.id)
    with _children(ATTACHED, env, 8) as writers:
        for writer in writers:
            writer.expect("ready")
        for writer in writers:
            writer.tell("go")
        codes = [writer.wait(WAIT) for writer in writers]
    assert codes == [0] * 8, [w.stderr for w in writers]
    owner.end()
    assert owner.dir is not None
    for worker in range(8):
        lines = read_jsonl(owner.dir / f"metrics.w{worker}.jsonl")
        assert [line["m"]["x"] for line in lines] == [worker * 10_000 + s for s in range(500)]
    starts = [e for e in read_jsonl(owner.dir / "run.jsonl") if e["event"] in ("start", "end")]
    assert [e["event"] for e in starts] == ["start", "end"]
    result = tally("concurrency: attached writers")
    result.repetitions += 8
    result.runs += 1
    result.lines += audit_store(store).lines


# -- threads ---------------------------------------------------------------------------------


def test_eight_threads_using_every_verb_on_one_run_lose_nothing(
    tmp_path: Path, soak: int, tally: Any, thread_crashes: list[str]
) -> None:
    """8 threads log, log_params, tag, note and flush one run: every record once, in order."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    per_thread = 1500 * soak
    try:
        run = runjournal.start(
            store=tmp_path / "store", flush_interval=0.001, heartbeat_interval=0.01
        )
        together = threading.Barrier(8)
        problems: list[BaseException] = []

        def work(index: int) -> None:
            try:
                together.wait(WAIT)
                for n in range(per_thread):
                    run.log({f"t{index}": n})
                    if n % 100 == 0:
                        run.log_params({f"t{index}": {f"n{n}": n}})
                        run.tag({f"t{index}": n})
                        run.note(f"t{index} {n}")
                    if n % 250 == 0:
                        run.flush()
            except BaseException as error:
                problems.append(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        run.end()
    finally:
        sys.setswitchinterval(previous)
    assert problems == []
    assert run.dir is not None
    lines = read_jsonl(run.dir / "metrics.jsonl")
    assert sorted(line["step"] for line in lines) == list(range(8 * per_thread))
    record = runjournal.Store(tmp_path / "store").run(run.id)
    for index in range(8):
        key = f"t{index}"
        assert [line["m"][key] for line in lines if key in line["m"]] == list(range(per_thread))
        assert record.params[key] == {f"n{n}": n for n in range(0, per_thread, 100)}
        assert record.tags[key] == max(range(0, per_thread, 100))
        notes = [note.text for note in record.notes if note.text.startswith(f"{key} ")]
        assert notes == [f"{key} {n}" for n in range(0, per_thread, 100)]
    assert record.status == "completed"
    result = tally("concurrency: threads, forks")
    result.repetitions += 8
    result.runs += 1
    result.lines += len(lines) + len(read_jsonl(run.dir / "run.jsonl"))


# -- fork --------------------------------------------------------------------------------------

FORKING = """
import multiprocessing, threading
ROUNDS = int(sys.argv[1])
run = runjournal.start(flush_interval=0.001, heartbeat_interval=0.005)
step = 0

def child_work(n):
    own = runjournal.start(flush_interval=0.001)
    for i in range(500):
        own.log({"child": n * 1000 + i})
    own.end()
    print("child", own.id, n, flush=True)

context = multiprocessing.get_context("fork")
for n in range(ROUNDS):
    process = context.Process(target=child_work, args=(n,))
    process.start()  # the flusher thread is busy: it writes every millisecond
    while process.is_alive():
        run.log({"parent": step})
        step += 1
    process.join()
    assert process.exitcode == 0, process.exitcode
for _ in range(10):
    run.log({"parent": step})
    step += 1
run.end()
print("parent", run.id, step, flush=True)
"""


def test_forked_children_log_their_own_runs_while_the_parent_logs_on(
    tmp_path: Path, soak: int, tally: Any
) -> None:
    """fork while the flusher writes: children log their runs, the parent's lines stay its own."""
    store = tmp_path / "store"
    rounds = 12 * soak
    child = run_child(FORKING, child_env(store), args=[str(rounds)], timeout=WAIT)
    assert child.proc.returncode == 0, child.stderr
    _, parent_id, logged = child.stdout_lines[-1].split()
    parent_lines = read_jsonl(store / "runs" / parent_id / "metrics.jsonl")
    assert [line["m"] for line in parent_lines] == [{"parent": s} for s in range(int(logged))]
    children = [line.split() for line in child.stdout_lines if line.startswith("child ")]
    assert len(children) == rounds
    for _, run_id, n in children:
        lines = read_jsonl(store / "runs" / run_id / "metrics.jsonl")
        assert [line["m"]["child"] for line in lines] == [int(n) * 1000 + i for i in range(500)]
        assert runjournal.Store(store).run(run_id).status == "completed"
    assert runjournal.Store(store).run(parent_id).status == "completed"
    result = tally("concurrency: threads, forks")
    result.repetitions += rounds
    result.runs += rounds + 1
    result.lines += len(parent_lines) + 500 * rounds


# -- file systems without hard links, or without O_APPEND ---------------------------------------


@pytest.fixture
def no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.link fails as on FAT, some SMB mounts and object-store FUSE file systems."""

    def link(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", link)


def test_without_hard_links_stores_and_write_once_files_still_work(
    tmp_path: Path, no_hard_links: None, tally: Any
) -> None:
    """Where link() fails, the store marker and write-once files are renamed into place, whole."""
    store = tmp_path / "store"
    with runjournal.start(store=store) as run:
        run.log({"x": 1.0})
    assert orjson.loads((store / "runjournal.json").read_bytes())["format"] == 1
    target = tmp_path / "once.json"
    assert write_once(target, b'{"a": 1}\n') is True
    assert write_once(target, b'{"a": 2}\n', exist_ok=True) is False
    with pytest.raises(FileExistsError):
        write_once(target, b'{"a": 3}\n')
    assert target.read_bytes() == b'{"a": 1}\n'
    leftovers = [p for p in (tmp_path).rglob(".tmp-*")]
    assert leftovers == []
    assert runjournal.Store(store).run(run.id).metrics == {"x": 1.0}
    result = tally("file systems: no link(), weak O_APPEND")
    result.repetitions += 1
    result.runs += 1
    result.lines += audit_store(store).lines


NO_LINK_SWARM = """
import errno
def no_link(*args, **kwargs):
    raise PermissionError(errno.EPERM, "Operation not permitted")
os.link = no_link
print("ready", flush=True)
sys.stdin.readline()
with runjournal.start() as run:
    run.log({"x": 1.0})
print("run", run.id, flush=True)
"""


def test_without_hard_links_sixteen_processes_create_one_store(tmp_path: Path, tally: Any) -> None:
    """16 processes race to create a store where link() fails: all succeed, the marker is whole."""
    store = tmp_path / "fresh"
    with _children(NO_LINK_SWARM, child_env(store, RUNJOURNAL_CAPTURE="0"), 16) as workers:
        for worker in workers:
            worker.expect("ready")
        for worker in workers:
            worker.tell("go")
        codes = [worker.wait(WAIT) for worker in workers]
    assert codes == [0] * 16, [w.stderr for w in workers if w.proc.returncode][:1]
    assert orjson.loads((store / "runjournal.json").read_bytes())["format"] == 1
    assert len(runjournal.Store(store).runs()) == 16
    assert list(store.glob(".tmp-*")) == []
    result = tally("file systems: no link(), weak O_APPEND")
    result.repetitions += 16
    result.runs += 16
    result.lines += audit_store(store).lines


@pytest.fixture
def ignored_o_append(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every os.open drops O_APPEND, as file systems that write at the file offset do."""
    real_open = os.open

    def open_without_append(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        return real_open(path, flags & ~os.O_APPEND, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_without_append)
    assert _writer.os.open is open_without_append


def test_where_o_append_is_ignored_resume_and_close_still_append(
    tmp_path: Path, ignored_o_append: None, tally: Any
) -> None:
    """Without O_APPEND, a resumed run and `close` write after the existing lines, not over them."""
    store = tmp_path / "store"
    first = runjournal.start(store=store, run_id="r", flush_interval=3600)
    first.log({"x": 0.0})
    first.end()
    assert first.dir is not None
    before = {name: (first.dir / name).read_bytes() for name in ("run.jsonl", "metrics.jsonl")}
    second = runjournal.start(store=store, run_id="r", resume=True, flush_interval=3600)
    second.log({"x": 1.0})
    second.flush()
    second.log({"x": 2.0})
    second._writer._files["metrics.jsonl"].close()  # type: ignore[union-attr]  # reopen: seek again
    second.end()
    for name, content in before.items():
        assert (first.dir / name).read_bytes().startswith(content), name
    record = runjournal.Store(store).run("r")
    assert [row["value"] for row in record.history(raw=True)] == [0.0, 1.0, 2.0]
    assert record.segments == 2 and record.skipped == []
    result = tally("file systems: no link(), weak O_APPEND")
    result.repetitions += 1
    result.runs += 1
    result.lines += audit_store(store).lines


def test_where_o_append_is_ignored_close_appends_its_end_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tally: Any
) -> None:
    """Without O_APPEND, `runjournal close` adds its end event after the run's lines."""
    store = tmp_path / "store"
    child = run_child("run = runjournal.start(run_id='dead')\nos._exit(0)", child_env(store))
    assert child.proc.returncode == 0, child.stderr
    events = store / "runs" / "dead" / "run.jsonl"
    before = events.read_bytes()
    real_open = os.open
    monkeypatch.setattr(
        os, "open", lambda path, flags, *a, **k: real_open(path, flags & ~os.O_APPEND, *a, **k)
    )
    assert runjournal.Store(store).close("dead").status == "crashed"
    after = events.read_bytes()
    assert after.startswith(before) and orjson.loads(after[len(before) :])["event"] == "end"
    tally("file systems: no link(), weak O_APPEND").repetitions += 1
