"""The query cache: every answer equals a read without it, and a reload reads only what is new."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _runfiles import StoreFiles, line
from runjournal.query import Store, _scan, _workers, load_metrics, load_runs
from runjournal.query._cache import QueryCache
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
    assert (files.root / ".cache" / "query" / "index").is_file()


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
    query = files.root / ".cache" / "query"
    for pack in query.glob("*.pack"):  # the digests and columns, the index still naming them
        pack.unlink()
    assert_same_as_without_cache(store)
    (query / "index").unlink()
    files.run("a").metrics(10, {"loss": 0.01})
    assert_same_as_without_cache(store)
    shutil.rmtree(files.root / ".cache")
    assert_same_as_without_cache(store)


def test_a_damaged_cache_is_ignored(files: StoreFiles) -> None:
    """Garbage in the index, a digest or a chunk is read past: runs are read from their files."""
    mixed_store(files)
    store = Store(files.root)
    read_all(store, cache=True)
    query = files.root / ".cache" / "query"
    for pack in query.glob("*.pack"):  # same size, bytes changed here and there: CRCs differ
        data = bytearray(pack.read_bytes())
        for at in range(7, len(data), 97):
            data[at] ^= 0x20
        pack.write_bytes(bytes(data))
    files.run("a").metrics(11, {"loss": 0.5})  # so that its digest and chunks are needed
    assert_same_as_without_cache(store)
    for pack in query.glob("*.pack"):
        pack.write_bytes(b"garbage")
    assert_same_as_without_cache(store)
    manifest = orjson.loads((query / "index").read_bytes())
    deltas: list[Any] = [{"a": {"row": 1}}, {"a": {"state": "../../x:0:1:0", "row": 1}}, []]
    for delta in deltas:
        (query / "index").write_bytes(orjson.dumps({**manifest, "delta": delta}))
        assert_same_as_without_cache(store)
    (query / "index").write_bytes(orjson.dumps({**manifest, "base": "../../etc/passwd"}))
    assert_same_as_without_cache(store)
    (query / "index").write_bytes(b'{"version": 3, "runs": {"a": {"row": 1}}}')
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


def _cache_files(root: Path) -> dict[str, tuple[int, int]]:
    """The files of the query cache: name -> (inode, mtime)."""
    query = root / ".cache" / "query"
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in query.iterdir()}


def test_a_save_writes_one_pack_and_the_index_and_a_reload_only_what_changed(
    files: StoreFiles,
) -> None:
    """No file or directory per run: one pack per save; a reload adds a pack for what changed."""
    for index in range(40):
        run = files.ended_run(f"r{index:02}", start=1795000000.0 + index).params({"i": index})
        for step in range(20):
            run.metrics(step, {"loss": step * 0.5})
    store = Store(files.root)
    load_runs(store)
    load_metrics(store, keys=["loss"])
    first = _cache_files(files.root)
    assert not [p for p in (files.root / ".cache" / "query").iterdir() if p.is_dir()]
    assert len([name for name in first if name.endswith(".pack")]) == 1
    assert set(first) - {"index", "index.lock", "clock"} == {
        name for name in first if name.endswith(".pack")
    }
    for index in (3, 30):
        files.run(f"r{index:02}").metrics(20, {"loss": 0.1})
    load_runs(store)
    second = _cache_files(files.root)
    new = set(second) - set(first)
    assert len(new) == 1 and new.pop().endswith(".pack")
    assert all(second[name] == first[name] for name in first if name.endswith(".pack"))
    manifest = orjson.loads((files.root / ".cache" / "query" / "index").read_bytes())
    assert len(manifest["delta"]) == 40  # no base yet: 40 runs are few
    assert_same_as_without_cache(store)


def test_runs_written_just_before_are_listed_again_not_read_again(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run directory too recent to trust is listed again (not read, nor saved) until it is old."""
    from runjournal.query import _cache, _catalog
    from runjournal.query._digest import refresh as real_refresh

    monkeypatch.setattr(_cache, "RACY_NS", 32_000_000_000)  # a clock of 32 s resolution
    for index in range(3):
        files.ended_run(f"r{index}").metrics(0, {"loss": 1.0})
    written = time.time() - 30  # recent for such a clock: racy until it reads written + 32 s
    for run_dir in (files.root / "runs").iterdir():
        os.utime(run_dir, (written, written))
    store = Store(files.root)
    load_runs(store)
    packs = {name for name in _cache_files(files.root) if name.endswith(".pack")}
    read: list[str] = []
    listed: list[str] = []
    real_listdir = os.listdir

    def refresh(run_dir: Path, *args: Any, **kwargs: Any) -> Any:
        read.append(run_dir.name)
        return real_refresh(run_dir, *args, **kwargs)

    def listdir(path: Any = ".") -> list[str]:
        listed.append(Path(path).name)
        return real_listdir(path)

    monkeypatch.setattr(_catalog, "refresh", refresh)
    monkeypatch.setattr(os, "listdir", listdir)
    load_runs(store)
    assert read == [] and sorted(listed) == ["r0", "r1", "r2"]
    time.sleep(max(0.0, written + 32.5 - time.time()))
    load_runs(store)  # listed once more, now with a time that makes the directories trusted
    listed.clear()
    load_runs(store)
    load_metrics(store)
    assert read == [] and listed == []
    assert {name for name in _cache_files(files.root) if name.endswith(".pack")} == packs
    assert_same_as_without_cache(store)


def test_many_saves_keep_the_cache_small(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes fold into a new base, small packs merge, and retired files are deleted."""
    from runjournal.query import _cache, _index

    monkeypatch.setattr(_index, "COMPACT_MIN", 4)
    monkeypatch.setattr(_index, "NEW_PACKS", 3)
    monkeypatch.setattr(_cache, "MAX_SMALL_PACKS", 2)
    monkeypatch.setattr(_cache, "GRACE_SECONDS", 0.0)
    mixed_store(files)
    for index in range(6):
        files.ended_run(f"s{index}").metrics(0, {"loss": float(index)})
    store = Store(files.root)
    query = files.root / ".cache" / "query"
    bases = set()
    for step in range(12):
        files.run("b").metrics(10 + step, {"loss": step * 0.25}, seg=1)
        files.run(f"s{step % 6}").metrics(step + 1, {"loss": step * 0.5})
        read_all(store, cache=True)
        manifest = orjson.loads((query / "index").read_bytes())
        named = {f"{name}.pack" for name in manifest["packs"]} | {f"{manifest['base']}.idx"}
        retired = {name for name, _ in manifest["retired"]}  # deleted at the next save
        assert set(_cache_files(files.root)) <= named | retired | {"index", "index.lock", "clock"}
        assert len(manifest["packs"]) <= 2 + 1 + 3  # small ones kept, the merged one, new ones
        bases.add(manifest["base"])
    assert len(bases) > 2  # the changes were folded into new bases, again and again
    assert_same_as_without_cache(store)
    shutil.rmtree(files.root / "runs" / "s0")
    assert_same_as_without_cache(store)
    assert "s0" not in QueryCache(files.root).load()


def test_records_outliving_the_files_their_index_named_still_read_right(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records made from an index whose packs were collected since read their runs' files."""
    from runjournal.query import _cache, _index

    mixed_store(files)
    store = Store(files.root)
    load_runs(store)
    load_metrics(store)
    held = store.runs()  # their digests and columns not read yet: they name today's packs
    monkeypatch.setattr(_index, "COMPACT_MIN", 0)
    monkeypatch.setattr(_cache, "MAX_SMALL_PACKS", 0)
    monkeypatch.setattr(_cache, "GRACE_SECONDS", 0.0)
    before = set(_cache_files(files.root))
    for step in range(3):  # every save: a new base, packs merged, what was retired deleted
        files.run("a").metrics(20 + step, {"loss": 0.5})
        files.run("c").metrics(20 + step, {"loss": 0.5})
        load_metrics(store)
    assert not {name for name in before if name.endswith(".pack")} & set(_cache_files(files.root))
    expected = [dumps_tagged(r.history(raw=True)) for r in store.runs(cache=False)]
    assert [dumps_tagged(r.history(raw=True)) for r in held] == expected  # the files as now


def test_an_older_cache_layout_is_ignored_and_removed_once_unused(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What version 2 wrote (index.json, states/, chunks/) is not read, and goes when stale."""
    from runjournal.query import _cache, _index

    mixed_store(files)
    query = files.root / ".cache" / "query"
    (query / "states").mkdir(parents=True)
    (query / "chunks" / "a").mkdir(parents=True)
    (query / "index.json").write_bytes(b'{"version": 2, "runs": {"a": {"row": {"v": 0}}}}')
    (query / "states" / "a.json").write_bytes(b"{}")
    (query / "chunks" / "a" / "x.bin").write_bytes(b"RJQ1")
    (query / ".tmp-abandoned.pack").write_bytes(b"RJQP1\n")
    assert_same_as_without_cache(Store(files.root))
    assert (query / "states").exists()  # recent: a process of the older version may use it
    monkeypatch.setattr(_cache, "ORPHAN_SECONDS", 0.0)
    monkeypatch.setattr(_index, "COMPACT_MIN", 0)
    files.run("a").metrics(20, {"loss": 0.0})
    assert_same_as_without_cache(Store(files.root))
    left = {p.name for p in query.iterdir()}
    assert not left & {"index.json", "states", "chunks", ".tmp-abandoned.pack"}


def test_pack_references_never_leave_the_cache_directory(tmp_path: Path) -> None:
    """A reference is checked before anything is opened; a damaged blob fails its CRC."""
    from runjournal.query._packs import PackWriter, read_blob

    writer = PackWriter(tmp_path)
    ref = writer.add(b"x" * 100)
    writer.finish()
    assert read_blob(tmp_path, ref) == b"x" * 100
    pack, offset, length, crc = ref.split(":")
    for bad in (
        f"../{pack}:{offset}:{length}:{crc}",
        f"{pack}:0:{length}:{crc}",
        f"{pack}:{offset}:ffff:{crc}",
        f"{pack}:{offset}:{length}:0",
        "nonsense",
    ):
        with pytest.raises(ValueError):
            read_blob(tmp_path, bad)


def test_runs_read_by_worker_processes_are_the_same(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many runs to read are read by worker processes, with the same answers."""
    for index in range(12):
        run = files.ended_run(f"w{index:02}", start=1795000000.0 + index).params({"i": index})
        run.metrics(0, {"loss": index * 1.5}).metrics(1, {"loss": float("nan")})
    files.run("w03").append("metrics.jsonl", b"garbage\n")
    monkeypatch.setattr(_workers, "MIN_RUNS", 4)
    monkeypatch.setattr(_workers, "MIN_BYTES", 0)
    monkeypatch.setenv("RUNJOURNAL_QUERY_WORKERS", "2")
    assert _workers.worker_count(12) == 2
    started = []
    real_start = _workers._start

    def start(job: bytes) -> Any:
        started.append(job)
        return real_start(job)

    monkeypatch.setattr(_workers, "_start", start)
    assert_same_as_without_cache(Store(files.root))
    assert len(started) == 2
    assert len(list((files.root / ".cache" / "query").glob("*.pack"))) >= 2  # one per worker


def test_little_to_read_is_read_without_worker_processes(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting a worker costs more than reading a few megabytes: many small runs are read here."""
    for index in range(12):
        files.ended_run(f"w{index:02}").metrics(0, {"loss": 1.0})
    monkeypatch.setattr(_workers, "MIN_RUNS", 4)
    monkeypatch.setenv("RUNJOURNAL_QUERY_WORKERS", "2")

    def start(job: bytes) -> Any:
        raise AssertionError("no worker should start")

    monkeypatch.setattr(_workers, "_start", start)
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
    assert len(QueryCache(files.root).load()) == 3 + 6


_CHURNER = textwrap.dedent(
    """
    import sys, warnings
    import orjson
    from runjournal.query import Store, _cache, _index, load_metrics, load_runs
    warnings.simplefilter("ignore")
    _index.COMPACT_MIN = 0  # every save makes a new base and retires the old files
    _index.NEW_PACKS = 1
    _cache.MAX_SMALL_PACKS = 0
    _cache.GRACE_SECONDS = 0.0  # retired files go at the next save: readers lose them
    store, own = Store(sys.argv[1]), sys.argv[2]
    path = store.path / "runs" / own / "metrics.jsonl"
    for step in range(int(sys.argv[3])):
        with open(path, "ab") as file:
            line = {"step": 100 + step, "time": 1.0, "seg": 0, "m": {"loss": step / 7}}
            file.write(orjson.dumps(line) + b"\\n")
        table = load_runs(store).set_index("run_id")
        rows = load_metrics(store, runs=[own])
        plain = load_runs(store, cache=False).set_index("run_id")
        assert table.loc[own].equals(plain.loc[own]), (table.loc[own], plain.loc[own])
        assert rows.equals(load_metrics(store, runs=[own], cache=False))
    print("ok")
    """
)


def test_processes_saving_and_collecting_at_once_never_give_a_wrong_answer(
    files: StoreFiles,
) -> None:
    """With a new base at every save and no grace period, readers lose files: never answers."""
    mixed_store(files)
    owners = [f"own{index}" for index in range(3)]
    for owner in owners:
        files.ended_run(owner).metrics(0, {"loss": 1.0})
    env = {**os.environ, "RUNJOURNAL_STRICT": "0"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHURNER, str(files.root), owner, "12"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for owner in owners
    ]
    for proc in procs:
        output, errors = proc.communicate(timeout=300)
        assert proc.returncode == 0 and output.strip() == b"ok", errors.decode()[-3000:]
    assert_same_as_without_cache(Store(files.root))


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
    assert any((files.root / ".cache" / "query").glob("*.pack"))
