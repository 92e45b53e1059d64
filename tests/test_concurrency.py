"""Many writers at once: processes sharing a store, threads sharing a run, readers during writes.

No lock is taken on the logging path (DESIGN.md, invariant 2), so these tests
check what makes that safe: one ``mkdir`` per run, one writer per file, whole
lines, and readers that only ever see a prefix of what is being written.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import runjournal
from _children import Child, child_env, load_record, printed_numbers, read_jsonl
from runjournal import store as store_module
from runjournal.errors import NotAStoreError

WAIT = 60.0


@pytest.fixture
def fresh_store(tmp_path: Path) -> Path:
    """A store path that does not exist yet: the first writers race to create it."""
    return tmp_path / "shared" / "store"


@contextlib.contextmanager
def _children(body: str, env: dict[str, str], count: int) -> Iterator[list[Child]]:
    """``count`` children running ``body`` with their index as argument; all killed at the end."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(Child(body, env, args=[str(i)])) for i in range(count)]


# -- processes creating runs in one store ----------------------------------------------------

MANY_RUNS = """
worker = int(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # all workers start at once, so they race to create the store
for n in range(50):
    params = {"worker": worker, "n": n, "lr": 0.1, "model": {"depth": 2 + n % 3}}
    run = runjournal.start("swarm", params=params, flush_interval=3600)
    for step in range(20):
        run.log({"loss": 1 / (step + 1), "worker": worker})
    run.end()
    print("run", run.id, flush=True)
"""


def test_eight_processes_create_four_hundred_runs_in_a_fresh_store(fresh_store: Path) -> None:
    """8 processes x 50 runs racing on a new store: 400 distinct complete runs, no line lost."""
    with _children(MANY_RUNS, child_env(fresh_store), 8) as workers:
        for worker in workers:
            worker.expect("ready")
        for worker in workers:
            worker.tell("go")
        codes = [worker.wait(WAIT * 2) for worker in workers]
    assert codes == [0] * 8, [worker.stderr for worker in workers if worker.proc.returncode]

    ids = [line.split()[1] for w in workers for line in w.stdout_lines if line.startswith("run ")]
    assert len(ids) == 400 and len(set(ids)) == 400
    assert {path.name for path in (fresh_store / "runs").iterdir()} == set(ids)
    records = runjournal.Store(fresh_store).runs(experiment="swarm")
    assert len(records) == 400
    assert {record.status for record in records} == {"completed"}
    for record in records:
        rows = record.history()
        assert len(rows) == 40, record.id
        assert [row["value"] for row in rows if row["key"] == "loss"] == [
            1 / (step + 1) for step in range(20)
        ]
        assert {row["value"] for row in rows if row["key"] == "worker"} == {record.params["worker"]}
    assert sorted((r.params["worker"], r.params["n"]) for r in records) == [
        (worker, n) for worker in range(8) for n in range(50)
    ]


def test_a_store_created_by_another_process_mid_init_is_accepted(
    fresh_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init_store accepts a store that another process finished creating while it looked."""
    check_directory = store_module._refuse_foreign_directory

    def another_process_wins(root: Path) -> None:
        monkeypatch.setattr(store_module, "_refuse_foreign_directory", check_directory)
        store_module.init_store(root)  # the other process: marker and runs/ appear right now
        check_directory(root)

    monkeypatch.setattr(store_module, "_refuse_foreign_directory", another_process_wins)
    try:
        root = store_module.init_store(fresh_store)
    except NotAStoreError as error:
        pytest.fail(f"a store being created concurrently was refused: {error}")
    assert (root / "runjournal.json").is_file() and (root / "runs").is_dir()


# -- threads sharing one run -----------------------------------------------------------------


def test_eight_threads_logging_to_one_run_lose_no_line(tmp_path: Path) -> None:
    """8 threads x 2,000 auto-step calls on one run: every line valid, every value there once."""
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads as often as possible
    try:
        run = runjournal.start(store=tmp_path / "store", flush_interval=0.001)
        start_together = threading.Barrier(8)
        problems: list[BaseException] = []

        def log_from_thread(index: int) -> None:
            try:
                start_together.wait(WAIT)
                for value in range(2000):
                    run.log({f"t{index}": value})
            except BaseException as error:
                problems.append(error)

        threads = [threading.Thread(target=log_from_thread, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert not any(thread.is_alive() for thread in threads)
        run.end()
    finally:
        sys.setswitchinterval(previous_interval)
    assert problems == []

    assert run.dir is not None
    lines = read_jsonl(run.dir / "metrics.jsonl")  # fails on any line that is not JSON
    assert len(lines) == 16_000
    assert sorted(line["step"] for line in lines) == list(range(16_000))
    for index in range(8):
        key = f"t{index}"
        in_file_order = [line["m"][key] for line in lines if key in line["m"]]
        assert in_file_order == list(range(2000)), key


# -- a reader while writers write -------------------------------------------------------------

STEADY_WRITER = """
import select
run = runjournal.start(flush_interval=0.02, heartbeat_interval=3600)
print("run", run.id, flush=True)
step = 0
while step < 1_000_000:
    for _ in range(50):
        run.log({"a": step, "b": step * 0.5})
        step += 1
    if step % 200 == 0:
        run.flush()
    if select.select([sys.stdin], [], [], 0.01)[0]:  # "stop", or keep writing
        break
run.end()
print("logged", step, flush=True)
"""


def test_a_reader_during_writes_only_ever_sees_a_prefix_of_the_final_data(
    tmp_path: Path,
) -> None:
    """Store.runs() and history() while 4 processes log: no crash, each result a final prefix."""
    store = tmp_path / "store"
    runjournal.start(store=store).end()  # the store exists before the reader opens it
    snapshots: dict[str, list[list[tuple[int, str, float]]]] = {}
    skipped: set[str] = set()
    with _children(STEADY_WRITER, child_env(store), 4) as writers:
        run_ids = {writer.expect(r"run (\S+)")[1] for writer in writers}
        reads = 0
        # The writers keep writing until they are told to stop: read at least 12 times,
        # and until every run has grown past 2,000 rows.
        while reads < 12 or min(len(seen[-1]) for seen in snapshots.values()) < 2000:
            reads += 1
            assert reads < 10_000, "the writers made no progress"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a line being written may read as torn
                records = [r for r in runjournal.Store(store).runs() if r.id in run_ids]
                assert {record.status for record in records} == {"running"}
                for record in records:
                    rows = record.history()
                    snapshots.setdefault(record.id, []).append(
                        [(row["step"], row["key"], row["value"]) for row in rows]
                    )
                    skipped.update(line.reason for line in record.skipped)
        for writer in writers:
            writer.tell("stop")
        codes = [writer.wait() for writer in writers]
    assert codes == [0] * 4, [writer.stderr for writer in writers]
    # Only the line being written at the moment of a read may be incomplete.
    assert skipped <= {"incomplete last line"}, skipped

    assert set(snapshots) == run_ids
    for run_id, seen in snapshots.items():
        record = load_record(store, run_id)
        assert record.status == "completed"
        final = [(row["step"], row["key"], row["value"]) for row in record.history()]
        logged = printed_numbers(_writer_of(writers, run_id).stdout_lines, "logged")[0]
        assert len(final) == 2 * logged
        for snapshot in seen:
            assert snapshot == final[: len(snapshot)], f"{run_id}: a read is not a prefix"


def _writer_of(writers: list[Child], run_id: str) -> Child:
    return next(writer for writer in writers if writer.stdout_lines[0] == f"run {run_id}")
