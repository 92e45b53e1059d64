"""The query cache: every answer equals a read without it, and a reload reads only what is new."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _runfiles import StoreFiles, line
from runjournal.query import Store, _scan, _workers, load_metrics, load_runs
from runjournal.query._history import default_view, read_history, select_rows
from runjournal.query._json import dumps_tagged
from runjournal.query._summary import summarize

pd = pytest.importorskip("pandas")


@pytest.fixture
def files(tmp_path: Path) -> StoreFiles:
    return StoreFiles(tmp_path / "store")


def read_all(store: Store, *, cache: bool) -> dict[str, Any]:
    """Everything the read API gives for a store, with the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = {
            "runs": load_runs(store, cache=cache),
            "records": dumps_tagged([r.model_dump() for r in store.runs(cache=cache)]),
            "rows": dumps_tagged(store.metrics(cache=cache)),
            "raw": load_metrics(store, raw=True, cache=cache),
            "history": load_metrics(store, cache=cache),
            "loss": load_metrics(store, keys=["loss"], steps=(1, None), cache=cache),
        }
    result["warnings"] = sorted(str(w.message) for w in caught)
    return result


def assert_same_as_without_cache(store: Store) -> None:
    """The cached answers (twice: building and using the cache) equal a read without it."""
    expected = read_all(store, cache=False)
    for _ in range(2):
        got = read_all(store, cache=True)
        for name in ("runs", "raw", "history", "loss"):
            pd.testing.assert_frame_equal(got[name], expected[name])
        assert got["records"] == expected["records"]
        assert got["rows"] == expected["rows"]
        assert got["warnings"] == expected["warnings"]


def mixed_store(files: StoreFiles) -> None:
    """Runs of every shape: NaN, big ints, writers, resumes over logged steps, git, data."""
    a = files.ended_run("a").params({"lr": 0.1, "model": {"depth": 50, "widths": [64, 128]}})
    for step in range(5):
        a.metrics(step, {"loss": 1.0 / (step + 1), "acc": step * 0.1, "tokens": step * 1000})
    a.metrics(5, {"loss": float("nan"), "acc": float("inf"), "tokens": 2**70})
    a.git(patch=b"diff --git a/x b/x\n").data(name="train", hash="ab" * 32)
    b = (
        files.run("b")
        .start(time=1795000100.0)
        .params({"lr": 0.01})
        .event("tags", tags={"m": "vit"})
    )
    for step in range(4):
        b.metrics(step, {"loss": 2.0 - step}, seg=0)
    b.resume(1, time=1795000200.0)
    for step in range(2, 6):  # a restart from step 2: steps 2 and 3 are replaced
        b.metrics(step, {"loss": 10.0 + step}, seg=1)
    b.metrics(0, {"throughput": 5.0}, file_name="metrics.rank1.jsonl")
    b.end(time=1795000300.0, seg=1)
    files.ended_run("c", start=1795000400.0).metrics(0, {"loss": 3.0, "flag": 1})


def test_a_store_of_every_shape_reads_the_same_with_the_cache(files: StoreFiles) -> None:
    """Cached reads equal uncached ones: records, run table, rows and frames, warnings too."""
    mixed_store(files)
    assert_same_as_without_cache(Store(files.root))
    assert (files.root / ".cache" / "query" / "index.json").is_file()


def test_appends_to_every_file_are_seen(files: StoreFiles) -> None:
    """Lines appended to run.jsonl, params.jsonl and metrics files after a cached read show up."""
    mixed_store(files)
    store = Store(files.root)
    read_all(store, cache=True)
    files.run("c").params({"lr": 0.5}).event("tags", time=1795000500.0, tags={"k": 1})
    files.run("c").metrics(1, {"loss": 0.5}).metrics(1, {"new": 7}, file_name="metrics.w.jsonl")
    files.run("a").append("metrics.jsonl", b"{torn")
    assert_same_as_without_cache(store)
    files.run("a").append("metrics.jsonl", b'":1}\n').metrics(9, {"loss": -1.0})
    assert_same_as_without_cache(store)


def test_a_truncated_file_is_read_again_whole(files: StoreFiles) -> None:
    """A metrics file that shrank (and grew again, differently) is read from its start."""
    mixed_store(files)
    store = Store(files.root)
    read_all(store, cache=True)
    path = files.root / "runs" / "a" / "metrics.jsonl"
    path.write_bytes(path.read_bytes()[:100].rsplit(b"\n", 1)[0] + b"\n")
    assert_same_as_without_cache(store)
    files.run("a").metrics(3, {"loss": 42.0}).metrics(4, {"loss": 43.0})
    assert_same_as_without_cache(store)


def test_a_replaced_file_is_read_again_whole(files: StoreFiles) -> None:
    """A file replaced by another (a new inode), even of the same size, is read from its start."""
    mixed_store(files)
    store = Store(files.root)
    read_all(store, cache=True)
    path = files.root / "runs" / "c" / "metrics.jsonl"
    data = path.read_bytes()
    replacement = path.with_name("replacement")
    replacement.write_bytes(data.replace(b'"loss":3.0', b'"loss":4.0'))
    replacement.replace(path)
    assert_same_as_without_cache(store)
    assert load_runs(store)["metrics.loss"].tolist()[-1] == 4.0


def test_bytes_changed_in_place_before_the_offset_are_noticed(files: StoreFiles) -> None:
    """A change in the bytes just before where the cache stopped makes it read the file again."""
    mixed_store(files)
    store = Store(files.root)
    read_all(store, cache=True)
    path = files.root / "runs" / "c" / "metrics.jsonl"
    with open(path, "r+b") as file:  # same inode, same size, other content
        data = file.read()
        file.seek(0)
        file.write(data.replace(b'"loss":3.0', b'"loss":5.0'))
    files.run("c").metrics(1, {"loss": 6.0})
    assert_same_as_without_cache(store)


def test_deleting_the_cache_loses_nothing(files: StoreFiles) -> None:
    """Deleting .cache/ (or parts of it) at any time changes no answer."""
    mixed_store(files)
    store = Store(files.root)
    read_all(store, cache=True)
    shutil.rmtree(files.root / ".cache" / "query" / "states")
    assert_same_as_without_cache(store)
    shutil.rmtree(files.root / ".cache" / "query" / "chunks")
    files.run("a").metrics(10, {"loss": 0.01})
    assert_same_as_without_cache(store)
    shutil.rmtree(files.root / ".cache")
    assert_same_as_without_cache(store)


def test_a_damaged_cache_is_ignored(files: StoreFiles) -> None:
    """Garbage in the index, a state or a chunk is read past: the runs are read from their files."""
    mixed_store(files)
    store = Store(files.root)
    read_all(store, cache=True)
    query = files.root / ".cache" / "query"
    for path in [*query.glob("states/*.json"), *query.glob("chunks/*/*.bin")][::2]:
        path.write_bytes(b"garbage" + path.read_bytes()[7:50])
    files.run("a").metrics(11, {"loss": 0.5})  # so that its state and chunks are needed
    assert_same_as_without_cache(store)
    (query / "index.json").write_bytes(b'{"version": 2, "runs": {"a": {"row": 1}}}')
    assert_same_as_without_cache(store)


def test_a_read_only_store_answers_without_the_cache(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When .cache/ cannot be written, queries answer from the files and write nothing."""
    from runjournal.query import _cache

    mixed_store(files)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(_cache, "make_dir", refuse)
    assert_same_as_without_cache(Store(files.root))
    assert not (files.root / ".cache").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_a_store_without_write_permission_answers(files: StoreFiles) -> None:
    """A store whose directories the reader cannot write is read as usual."""
    mixed_store(files)
    os.chmod(files.root, 0o555)
    try:
        assert_same_as_without_cache(Store(files.root))
        assert not (files.root / ".cache").exists()
    finally:
        os.chmod(files.root, 0o755)


def test_a_reader_that_cannot_lock_answers_from_the_files(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another holds the index lock, a query answers (unsaved) without waiting long."""
    from filelock import FileLock

    from runjournal.query import _cache

    monkeypatch.setattr(_cache, "LOCK_TIMEOUT", 0.05)
    mixed_store(files)
    store = Store(files.root)
    read_all(store, cache=True)
    files.run("c").metrics(2, {"loss": 1.5})
    lock = FileLock(str(files.root / ".cache" / "query" / "index.lock"))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        assert_same_as_without_cache(store)
    finally:
        release.set()
        holder.join()
    assert_same_as_without_cache(store)


def test_a_reload_reads_only_the_appended_bytes(files: StoreFiles) -> None:
    """After lines are appended to a few runs, a query reads those bytes (and check windows)."""
    for index in range(6):
        run = files.ended_run(f"r{index}", start=1795000000.0 + index).params({"i": index})
        for step in range(50):
            run.metrics(step, {"loss": step * 0.5, "acc": step / 50})
    store = Store(files.root)
    load_runs(store)
    appended = 0
    for index in (1, 4):
        data = b"".join(
            line({"step": 50 + s, "time": 1.0, "seg": 0, "m": {"loss": 0.1}}) for s in range(100)
        )
        files.run(f"r{index}").append("metrics.jsonl", data)
        appended += len(data)
    _scan.COUNTER.reset()
    frame = load_runs(store)
    assert _scan.COUNTER.data == appended
    assert _scan.COUNTER.check <= 2 * _scan.TAIL
    assert frame.set_index("run_id").loc["r4", "metrics.loss"] == 0.1
    _scan.COUNTER.reset()
    load_runs(store)
    load_metrics(store, keys=["loss"])
    assert _scan.COUNTER.data == 0  # nothing new: no run file is read at all


def test_runs_read_by_worker_processes_are_the_same(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many runs to read are read by worker processes, with the same answers."""
    for index in range(12):
        run = files.ended_run(f"w{index:02}", start=1795000000.0 + index).params({"i": index})
        run.metrics(0, {"loss": index * 1.5}).metrics(1, {"loss": float("nan")})
    files.run("w03").append("metrics.jsonl", b"garbage\n")
    monkeypatch.setattr(_workers, "MIN_RUNS", 4)
    monkeypatch.setenv("RUNJOURNAL_QUERY_WORKERS", "2")
    assert _workers.worker_count(12) == 2
    assert_same_as_without_cache(Store(files.root))


_READER = textwrap.dedent(
    """
    import sys, warnings
    from runjournal.query import Store, load_metrics, load_runs
    warnings.simplefilter("ignore")
    store = Store(sys.argv[1])
    for _ in range(int(sys.argv[2])):
        load_runs(store)
        load_metrics(store, keys=["loss"])
    print("ok")
    """
)

_WRITER = textwrap.dedent(
    """
    import sys, runjournal
    for index in range(int(sys.argv[2])):
        with runjournal.start("mp", store=sys.argv[1], params={"i": index}, capture=False) as run:
            for step in range(30):
                run.log({"loss": 1.0 / (step + 1)})
                if step % 10 == 0:
                    run.flush()
    print("ok")
    """
)


def test_concurrent_readers_and_writers_agree_with_a_read_without_cache(
    files: StoreFiles,
) -> None:
    """Processes reading with the cache while others write: no failure, and the end state agrees."""
    mixed_store(files)
    root = str(files.root)
    env = {**os.environ, "RUNJOURNAL_STRICT": "0"}

    def start(code: str, count: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-c", code, root, str(count)]
        return subprocess.Popen(command, stdout=subprocess.PIPE, env=env)

    procs = [start(_WRITER, 3) for _ in range(2)] + [start(_READER, 4) for _ in range(2)]
    for proc in procs:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and output.strip() == b"ok"
    assert_same_as_without_cache(Store(files.root))
    index = orjson.loads((files.root / ".cache" / "query" / "index.json").read_bytes())
    assert len(index["runs"]) == 3 + 6


# ------------------------------------------------------------------ properties

_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["text", True, None]),
)
_lines = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=12),  # step
        st.integers(min_value=0, max_value=2),  # segment
        st.dictionaries(st.sampled_from(["a", "b", "c/d"]), _values, min_size=1, max_size=3),
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=_lines, cuts=st.lists(st.integers(min_value=0, max_value=25), max_size=3))
def test_summaries_and_history_read_piece_by_piece_equal_a_whole_read(
    tmp_path_factory: pytest.TempPathFactory, lines: list[Any], cuts: list[int]
) -> None:
    """Metric lines appended in pieces give, through the cache, the reference summary and rows."""
    from _runfiles import encode_members

    files = StoreFiles(tmp_path_factory.mktemp("prop") / "store")
    run = files.ended_run("p")
    store = Store(files.root)
    written = 0
    for cut in [*sorted(cuts), len(lines)]:
        for step, seg, values in lines[written:cut]:
            plain = {
                k: v for k, v in values.items() if not isinstance(v, (str, bool)) and v is not None
            }
            other = {k: v for k, v in values.items() if k not in plain}
            record = {
                "step": step,
                "time": 1.0,
                "seg": seg,
                "m": {**encode_members(plain), **other},
            }
            run.append("metrics.jsonl", line(record))
        written = max(written, cut)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (record_cached,) = store.runs(cache=True)
            reference = read_history(run.path)
            expected = summarize(default_view(reference))
            assert dumps_tagged(record_cached.summary) == dumps_tagged(expected)
            for raw in (False, True):
                assert dumps_tagged(record_cached.history(raw=raw)) == dumps_tagged(
                    select_rows(reference, raw=raw)
                )


_WITHOUT_NUMPY = textwrap.dedent(
    """
    import sys
    sys.modules["numpy"] = None  # import numpy fails, as where it is not installed
    sys.modules["pandas"] = None
    from runjournal.query import Store
    from runjournal.query._json import dumps_tagged
    store = Store(sys.argv[1])
    cached = [dumps_tagged(store.runs()[0].summary), dumps_tagged(store.metrics())]
    cached += [dumps_tagged(store.metrics(every=2))]
    again = [dumps_tagged(store.runs()[0].summary), dumps_tagged(store.metrics())]
    again += [dumps_tagged(store.metrics(every=2))]
    plain = [dumps_tagged(store.runs(cache=False)[0].summary)]
    plain += [dumps_tagged(store.metrics(cache=False)), dumps_tagged(store.metrics(every=2))]
    assert cached == again == plain
    print("ok")
    """
)


def test_the_cache_needs_no_numpy(files: StoreFiles) -> None:
    """Without NumPy and pandas, records and rows come from the cache's columns all the same."""
    run = files.ended_run("a")
    for step in range(20):
        run.metrics(step, {"loss": 1.0 / (step + 1), "n": step})
    command = [sys.executable, "-c", _WITHOUT_NUMPY, str(files.root)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr
    assert any((files.root / ".cache" / "query" / "chunks" / "a").iterdir())
