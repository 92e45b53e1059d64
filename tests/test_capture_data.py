"""Data hashes: files, directories and DataFrames, the modes, the cache, and Run.log_data."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runjournal
from runjournal import _start
from runjournal.capture import _hash_cache, _hashing, _progress, data
from runjournal.capture.data import DataRecord, hash_data
from runjournal.errors import DataError, RunjournalWarning
from runjournal.store import init_store

HOUR_AGO_NS = time.time_ns() - 3600 * 10**9
FORMAT_DOC = Path(__file__).parent.parent / "docs" / "format.md"


# -- helpers ----------------------------------------------------------------------


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def _age(root: Path, mtime_ns: int = HOUR_AGO_NS) -> None:
    """Date every file under ``root`` an hour back, so the hash cache may keep it."""
    paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    for path in paths:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def _sha(data: bytes, algo: str = "sha256") -> str:
    return hashlib.new(algo, data).hexdigest()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A nested tree with empty files, unicode names and a relative symbolic link."""
    root = _write(
        tmp_path / "tree",
        {
            "a.csv": b"id,x\n1,2\n",
            "empty.bin": b"",
            "sub/deeper/b.txt": b"bee",
            "sub/Ünïcødé 数据.txt": "ü".encode(),
            "sub/tab\tname": b"tab",
        },
    )
    (root / "sub" / "link.csv").symlink_to("../a.csv")
    return root


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return init_store(tmp_path / "store")


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths whose bytes are read, in order: proof of what the cache saved."""
    seen: list[str] = []
    original = data.file_digest

    def counting(path: str, *args: Any, **kwargs: Any) -> str:
        seen.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(data, "file_digest", counting)
    return seen


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNJOURNAL_STRICT", raising=False)


# -- files ------------------------------------------------------------------------


def test_a_file_hash_is_the_plain_digest_of_its_bytes(tmp_path: Path) -> None:
    """In full mode a file's hash is what sha256sum (or the chosen algorithm) prints."""
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(3 * _hashing.READ_BUFFER + 17))
    found = hash_data(path)
    assert (found.kind, found.files, found.size) == ("file", 1, path.stat().st_size)
    assert found.hash == _sha(path.read_bytes()) and found.path == str(path)
    assert hash_data(path, algo="SHA512").hash == _sha(path.read_bytes(), "sha512")
    assert hash_data(path, algo="blake2b").algo == "blake2b"


@pytest.mark.parametrize("algo", ["shake_128", "no-such-hash", 256, None])
def test_algorithms_without_a_fixed_digest_or_unknown_are_refused(
    tmp_path: Path, algo: Any
) -> None:
    """A bad algorithm is a DataError that names it and lists valid ones."""
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(DataError, match=r"algo=.* is not valid; use a hashlib algorithm"):
        hash_data(tmp_path / "f", algo=algo)


def test_a_bad_mode_is_refused(tmp_path: Path) -> None:
    """Only full, sample and stat are modes."""
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(DataError, match="mode='fast' is not valid"):
        hash_data(tmp_path / "f", mode="fast")


def test_sample_mode_hashes_the_size_then_head_middle_and_tail(tmp_path: Path) -> None:
    """The sample hash follows format.md, sees the sampled bytes and the size, and nothing else."""
    chunk = _hashing.SAMPLE_CHUNK
    content = bytearray(os.urandom(10 * chunk))
    path = tmp_path / "big.bin"
    path.write_bytes(content)
    middle = (len(content) - chunk) // 2
    expected = _sha(
        b"%d\n" % len(content)
        + content[:chunk]
        + content[middle : middle + chunk]
        + content[-chunk:]
    )
    assert hash_data(path, mode="sample").hash == expected
    content[middle + 5] ^= 1  # inside the middle sample: seen
    path.write_bytes(content)
    assert hash_data(path, mode="sample").hash != expected
    content[middle + 5] ^= 1
    content[2 * chunk] ^= 1  # between the samples, same size: the documented blind spot
    path.write_bytes(content)
    assert hash_data(path, mode="sample").hash == expected
    path.write_bytes(bytes(content) + b"!")  # one more byte: the size line differs
    assert hash_data(path, mode="sample").hash != expected


def test_sample_mode_hashes_a_small_file_whole_after_its_size(tmp_path: Path) -> None:
    """A file of at most three chunks is hashed entirely, after the size line."""
    path = tmp_path / "small"
    path.write_bytes(b"hello")
    assert hash_data(path, mode="sample").hash == _sha(b"5\nhello")


def test_stat_mode_sees_size_and_mtime_but_not_a_same_size_same_mtime_rewrite(
    tmp_path: Path,
) -> None:
    """Stat mode reads nothing: a rewrite that keeps size and mtime is its documented limit."""
    path = tmp_path / "f.csv"
    path.write_bytes(b"abc")
    _age(path)
    first = hash_data(path, mode="stat").hash
    assert first == _sha(b"3\t%d\n" % HOUR_AGO_NS)
    path.write_bytes(b"xyz")  # same size, new content
    os.utime(path, ns=(HOUR_AGO_NS, HOUR_AGO_NS))  # and the old mtime put back
    assert hash_data(path, mode="stat").hash == first
    os.utime(path, ns=(HOUR_AGO_NS + 1, HOUR_AGO_NS + 1))
    assert hash_data(path, mode="stat").hash != first
    path.write_bytes(b"abcd")
    os.utime(path, ns=(HOUR_AGO_NS, HOUR_AGO_NS))
    assert hash_data(path, mode="stat").hash != first


# -- directories ------------------------------------------------------------------


def test_a_directory_hash_is_the_digest_of_its_sorted_manifest(tree: Path) -> None:
    """The directory hash is computed exactly as format.md defines it, escapes included."""
    files = {
        b"a.csv": b"id,x\n1,2\n",
        b"empty.bin": b"",
        b"sub/deeper/b.txt": b"bee",
        "sub/Ünïcødé 数据.txt".encode(): "ü".encode(),
        b"sub/tab\\tname": b"tab",  # the tab in the name, escaped
        b"sub/link.csv": b"id,x\n1,2\n",  # a link counts as its target's content
    }
    manifest = sorted(b"%s\t%s\n" % (path, _sha(body).encode()) for path, body in files.items())
    found = hash_data(tree)
    assert found.hash == _sha(b"".join(manifest))
    assert (found.kind, found.files, found.size) == ("directory", 6, 9 + 0 + 3 + 2 + 3 + 9)


def test_the_same_tree_elsewhere_has_the_same_hash_in_every_mode(
    tree: Path, tmp_path: Path
) -> None:
    """A copy in another place (links kept as links, mtimes kept) hashes the same."""
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tree, copy, symlinks=True)  # copy2 keeps mtimes
    for mode in ("full", "sample", "stat"):
        assert hash_data(copy, mode=mode).hash == hash_data(tree, mode=mode).hash


def test_one_changed_byte_changes_the_full_hash(tree: Path) -> None:
    """Any changed byte anywhere in the tree gives another hash."""
    before = hash_data(tree).hash
    path = tree / "sub" / "deeper" / "b.txt"
    path.write_bytes(b"bef")
    assert hash_data(tree).hash != before


def test_renaming_adding_or_removing_a_file_changes_the_hash(tree: Path) -> None:
    """Paths are part of the manifest."""
    before = hash_data(tree).hash
    (tree / "a.csv").rename(tree / "a2.csv")
    (tree / "sub" / "link.csv").unlink()
    renamed = hash_data(tree).hash
    assert renamed != before
    (tree / "new").write_bytes(b"")
    assert hash_data(tree).hash != renamed


def test_empty_directories_add_nothing(tree: Path) -> None:
    """Only files count, as in git; an empty tree hashes no bytes."""
    before = hash_data(tree).hash
    (tree / "nothing" / "here").mkdir(parents=True)
    assert hash_data(tree).hash == before
    empty = tree.parent / "empty"
    empty.mkdir()
    found = hash_data(empty)
    assert (found.hash, found.files, found.size) == (_sha(b""), 0, 0)


def test_a_link_to_a_directory_is_descended_into(tmp_path: Path) -> None:
    """A linked directory's files appear under the link's path."""
    _write(tmp_path / "real", {"x": b"1"})
    root = _write(tmp_path / "root", {"y": b"2"})
    (root / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    expected = sorted([b"alias/x\t%s\n" % _sha(b"1").encode(), b"y\t%s\n" % _sha(b"2").encode()])
    assert hash_data(root).hash == _sha(b"".join(expected))


def test_a_dangling_link_is_an_error_naming_it(tree: Path) -> None:
    """A link to nothing would leave data out of the hash: it is refused."""
    (tree / "sub" / "gone").symlink_to("no-such-file")
    with pytest.raises(
        DataError, match=r"sub/gone is a dangling symbolic link \(to no-such-file\)"
    ):
        hash_data(tree)


def test_a_link_loop_is_an_error_naming_it(tree: Path) -> None:
    """A link to a parent directory would make the tree infinite."""
    (tree / "sub" / "deeper" / "up").symlink_to("../..", target_is_directory=True)
    with pytest.raises(DataError, match=r"deeper/up is a symbolic link to one of its own parent"):
        hash_data(tree)


def test_a_fifo_is_an_error_not_a_hang(tree: Path) -> None:
    """Reading a FIFO would block forever, so it is refused."""
    os.mkfifo(tree / "pipe")
    with pytest.raises(DataError, match="pipe is not a regular file or a directory"):
        hash_data(tree)


def test_an_unreadable_file_is_an_error_naming_it(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read the file system refuses names the file (simulated: tests may run as root)."""
    target = str(tree / "sub" / "deeper" / "b.txt")
    real_file_io = io.FileIO

    def refusing(path: str, *args: Any) -> io.FileIO:
        if path == target:
            raise PermissionError(13, "Permission denied", path)
        return real_file_io(path, *args)

    monkeypatch.setattr(_hashing.io, "FileIO", refusing)
    with pytest.raises(DataError, match=re.escape(f"cannot read {target}: Permission denied")):
        hash_data(tree)


def test_a_file_that_changes_while_being_read_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hash of a file half old, half new would describe nothing that existed."""
    path = tmp_path / "growing.log"
    path.write_bytes(b"first line\n")
    original = _hashing._full

    def appending(file: Any, *args: Any) -> str:
        digest = original(file, *args)
        with path.open("ab") as handle:
            handle.write(b"second line\n")
        return digest

    monkeypatch.setattr(_hashing, "_full", appending)
    with pytest.raises(DataError, match="changed while it was being hashed"):
        hash_data(path)


def test_a_missing_path_and_a_wrong_type_are_errors(tmp_path: Path) -> None:
    """The message says what is wrong and what would do."""
    with pytest.raises(DataError, match="does not exist") as missing:
        hash_data(tmp_path / "nope")
    assert missing.value.path == str(tmp_path / "nope")
    assert isinstance(missing.value.__cause__, FileNotFoundError)
    with pytest.raises(DataError, match="type list cannot be hashed; give a path"):
        hash_data([1, 2])
    with pytest.raises(DataError, match="the path is empty"):
        hash_data("")


def test_the_store_inside_a_logged_directory_is_left_out(tmp_path: Path) -> None:
    """Logging the project directory does not hash the store that is being written."""
    project = _write(tmp_path / "project", {"train.py": b"print(1)"})
    store = init_store(project / ".runjournal")
    (store / "runs" / "noise").mkdir()
    (store / "runs" / "noise" / "data.jsonl").write_bytes(b"{}\n")
    found = hash_data(project, store=store)
    assert found.files == 1
    assert found.hash == _sha(b"train.py\t%s\n" % _sha(b"print(1)").encode())
    assert hash_data(project).files > 1  # without store=, nothing is left out


def test_a_path_through_a_link_is_recorded_resolved(tree: Path, tmp_path: Path) -> None:
    """The recorded path is absolute with links resolved, as format.md says."""
    (tmp_path / "current").symlink_to(tree, target_is_directory=True)
    assert hash_data(tmp_path / "current").path == str(tree)


def test_a_file_name_that_is_not_utf8_is_hashed_and_recorded_escaped(tmp_path: Path) -> None:
    """Raw name bytes go into the manifest; the JSON path escapes them."""
    root = tmp_path / "raw"
    root.mkdir()
    name = os.fsencode(str(root)) + b"/caf\xe9"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"x")
    os.close(fd)
    assert hash_data(root).hash == _sha(b"caf\xe9\t%s\n" % _sha(b"x").encode())
    found = hash_data(os.fsdecode(name))
    assert found.path is not None and found.path.endswith("caf\\xe9")
    json.dumps(found.path)  # valid for a JSON line


_FILES = st.dictionaries(
    st.lists(st.sampled_from(["a", "b", "é", "d 1", "x.csv"]), min_size=1, max_size=3).map(
        "/".join
    ),
    st.binary(max_size=64),
    min_size=1,
    max_size=8,
)


def _plant(root: Path, files: dict[str, bytes], order: list[str]) -> None:
    for relative in order:
        path = root / relative
        if path.is_dir() or any(p.is_file() for p in path.parents if p != root):
            continue  # a name that is both a file and a directory: keep the first
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[relative])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=_FILES, data_=st.data())
def test_a_directory_hash_does_not_depend_on_the_order_files_were_created(
    files: dict[str, bytes], data_: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two trees with the same files, created in different orders, hash the same."""
    names = sorted(files)
    shuffled = data_.draw(st.permutations(names))
    base = tmp_path_factory.mktemp("order")
    # Create in sorted order first so both trees keep the same set of paths.
    _plant(base / "one", files, names)
    kept = {p.relative_to(base / "one").as_posix() for p in (base / "one").rglob("*")}
    _plant(base / "two", files, [n for n in shuffled if n in kept])
    (base / "two").mkdir(exist_ok=True)
    assert hash_data(base / "one").hash == hash_data(base / "two").hash
    shutil.rmtree(base)


# -- DataFrames -------------------------------------------------------------------

pd = pytest.importorskip("pandas", reason="DataFrame hashing needs the pandas extra")


def _frame() -> Any:
    return pd.DataFrame(
        {"id": [1, 2, 3], "label": ["cat", "dog", None], "p": [0.5, 0.25, float("nan")]},
        index=pd.Index([10, 20, 30], name="row"),
    )


_FRAME_SCRIPT = textwrap.dedent(
    """
    import pandas as pd
    from runjournal.capture.data import hash_data
    frame = pd.DataFrame(
        {"id": [1, 2, 3], "label": ["cat", "dog", None], "p": [0.5, 0.25, float("nan")]},
        index=pd.Index([10, 20, 30], name="row"),
    )
    print(hash_data(frame).hash)
    """
)


def test_a_dataframe_hash_is_the_same_in_another_process(tmp_path: Path) -> None:
    """The hash has no per-process seed: a fresh interpreter finds the same one."""
    done = subprocess.run(
        [sys.executable, "-c", _FRAME_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    found = hash_data(_frame())
    assert done.stdout.strip() == found.hash
    assert (found.kind, found.path, found.files, found.mode) == ("dataframe", None, 3, "full")
    assert found.size == int(_frame().memory_usage(index=True, deep=True).sum())


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.assign(id=[1, 2, 4]),
        lambda f: f.assign(id=f["id"].astype("float64")),
        lambda f: f.rename(columns={"p": "q"}),
        lambda f: f.set_axis([10, 20, 31]).rename_axis("row"),
        lambda f: f.rename_axis("line"),
        lambda f: f[["label", "id", "p"]],
        lambda f: f.rename(columns={"id": 0}).rename(columns={0: "0"}),
        lambda f: f.iloc[:2],
    ],
    ids=["value", "dtype", "column", "index", "index-name", "order", "name-type", "rows"],
)
def test_a_dataframe_hash_changes_with_a_value_a_dtype_or_the_schema(
    change: Callable[[Any], Any],
) -> None:
    """Content, dtypes, names, index and column order all count."""
    assert hash_data(change(_frame())).hash != hash_data(_frame()).hash


def test_a_series_is_hashed_as_its_one_column_frame() -> None:
    """A Series is accepted and hashed as ``series.to_frame()``."""
    series = pd.Series([1, 2], name="s")
    assert hash_data(series).hash == hash_data(series.to_frame()).hash


def test_a_subclass_of_dataframe_is_hashed_as_one() -> None:
    """Frames of libraries built on pandas (GeoDataFrame and the like) are accepted."""

    class Subclassed(pd.DataFrame):
        pass

    assert hash_data(Subclassed(_frame())).hash == hash_data(_frame()).hash


def test_hashing_paths_never_imports_pandas(tmp_path: Path) -> None:
    """pandas is loaded only by a program that passes a DataFrame, never by the hashing code."""
    (tmp_path / "f").write_bytes(b"x")
    code = (
        "import sys; from runjournal.capture.data import hash_data;"
        "hash_data('f'); print('pandas' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.strip() == "False"


def test_a_dataframe_is_always_hashed_in_full() -> None:
    """Sample and stat do not apply to a DataFrame; asking for them is an error."""
    with pytest.raises(DataError, match="always hashed in full; mode='stat' does not apply"):
        hash_data(_frame(), mode="stat")


def test_a_dataframe_pandas_cannot_hash_is_an_error() -> None:
    """A list inside a cell cannot be hashed by pandas: a clear DataError, not a TypeError."""
    with pytest.raises(DataError, match="pandas cannot hash this DataFrame"):
        hash_data(pd.DataFrame({"x": [[1], [2]]}))


# -- the cache --------------------------------------------------------------------


def test_a_second_hash_is_served_from_the_cache(tree: Path, store: Path, reads: list[str]) -> None:
    """Unchanged files are not read again; only their stats are taken."""
    _age(tree)
    first = hash_data(tree, store=store)
    assert len(reads) == 6
    reads.clear()
    again = hash_data(tree, store=store)
    assert again.hash == first.hash and reads == []
    assert hash_data(tree / "a.csv", store=store).hash == _sha(b"id,x\n1,2\n")
    reads.clear()
    assert hash_data(tree / "a.csv", store=store).hash == _sha(b"id,x\n1,2\n") and reads == []


def test_the_cache_is_inside_the_store_and_nowhere_else(
    tree: Path, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only <store>/.cache/hashes is written; no ~/.cache, nothing beside the data."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _age(tree)
    before = sorted(tmp_path.rglob("*"))
    hash_data(tree, store=store)
    created = sorted(set(tmp_path.rglob("*")) - set(before))
    assert created and all(p.is_relative_to(store / ".cache") for p in created)


def test_a_change_of_size_mtime_or_inode_makes_the_file_be_read_again(
    tmp_path: Path, store: Path, reads: list[str]
) -> None:
    """Each part of the key invalidates the cached hash."""
    path = tmp_path / "d.bin"
    path.write_bytes(b"0123")
    _age(path)
    hash_data(path, store=store)
    assert hash_data(path, store=store).hash == _sha(b"0123") and len(reads) == 1
    path.write_bytes(b"01234")  # size
    _age(path)
    assert hash_data(path, store=store).hash == _sha(b"01234") and len(reads) == 2
    path.write_bytes(b"abcde")  # same size, another mtime
    _age(path, HOUR_AGO_NS + 10**9)
    assert hash_data(path, store=store).hash == _sha(b"abcde") and len(reads) == 3
    replacement = tmp_path / "d.new"
    replacement.write_bytes(b"ABCDE")  # same size and mtime, another inode
    _age(replacement, HOUR_AGO_NS + 10**9)
    replacement.replace(path)
    assert hash_data(path, store=store).hash == _sha(b"ABCDE") and len(reads) == 4
    assert hash_data(path, store=store).hash == _sha(b"ABCDE") and len(reads) == 4


def test_files_modified_just_before_hashing_are_not_cached(
    tmp_path: Path, store: Path, reads: list[str]
) -> None:
    """A write in the same timestamp tick could keep the mtime; such files are read every time."""
    path = tmp_path / "fresh.csv"
    path.write_bytes(b"new")
    hash_data(path, store=store)
    hash_data(path, store=store)
    assert len(reads) == 2


def test_each_algorithm_and_mode_has_its_own_cache(
    tmp_path: Path, store: Path, reads: list[str]
) -> None:
    """A sha256 entry never answers for blake2b, nor a full hash for a sample."""
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    _age(path)
    hashes = {
        hash_data(path, store=store, algo=a, mode=m).hash
        for a in ("sha256", "blake2b")
        for m in ("full", "sample")
    }
    assert len(hashes) == 4 and len(reads) == 4
    assert hash_data(path, store=store, algo="blake2b", mode="sample").hash in hashes
    assert len(reads) == 4


def _shard_lines(store: Path) -> list[bytes]:
    return [
        line
        for shard in (store / ".cache" / "hashes").glob("*.jsonl")
        for line in shard.read_bytes().split(b"\n")
        if line
    ]


def test_torn_garbage_and_tampered_cache_lines_are_ignored(
    tmp_path: Path, store: Path, reads: list[str]
) -> None:
    """A line that fails to decode or to match its checksum never answers."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"real content")
    _age(path)
    hash_data(path, store=store)
    (shard,) = (store / ".cache" / "hashes").glob("*.jsonl")
    good = shard.read_bytes().strip(b"\n")
    forged = good.replace(_sha(b"real content").encode(), _sha(b"forged").encode())
    shard.write_bytes(b"\x00\x00garbage\n" + forged + b"\n" + good[: len(good) // 2])
    assert hash_data(path, store=store).hash == _sha(b"real content")
    assert len(reads) == 2  # nothing usable was left: read again
    hash_data(path, store=store)
    assert len(reads) == 2  # the new entry starts on a line of its own, after the torn one


def test_deleting_the_cache_loses_nothing(tree: Path, store: Path) -> None:
    """The cache is derived: without it the same hashes come back, and it is rebuilt."""
    _age(tree)
    first = hash_data(tree, store=store).hash
    shutil.rmtree(store / ".cache")
    assert hash_data(tree, store=store).hash == first
    assert _shard_lines(store)


def test_an_unwritable_cache_is_skipped_and_a_read_only_one_still_answers(
    tree: Path, store: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store whose .cache cannot be written hashes anyway (root ignores modes: simulated)."""
    _age(tree)
    first = hash_data(tree, store=store).hash
    reads.clear()

    def read_only(*args: Any, **kwargs: Any) -> int:
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(_hash_cache.os, "open", read_only)
    assert hash_data(tree, store=store).hash == first and reads == []  # still answers
    (tree / "sub" / "more").write_bytes(b"more")
    _age(tree)
    assert hash_data(tree, store=store).hash != first  # hashed, nothing written
    monkeypatch.undo()
    shutil.rmtree(store / ".cache")
    (store / ".cache").write_bytes(b"not a directory")
    assert hash_data(tree, store=store).files == 7


def test_a_directory_that_is_not_a_store_gets_no_cache(tree: Path, tmp_path: Path) -> None:
    """Nothing is created in a directory without a runjournal.json marker."""
    elsewhere = tmp_path / "not-a-store"
    elsewhere.mkdir()
    _age(tree)
    hash_data(tree, store=elsewhere)
    assert list(elsewhere.iterdir()) == []


_HASHER = textwrap.dedent(
    """
    import sys
    from runjournal.capture.data import hash_data
    for _ in range(int(sys.argv[3])):
        print(hash_data(sys.argv[1], store=sys.argv[2]).hash, flush=True)
    """
)


def test_concurrent_processes_sharing_one_cache_corrupt_nothing(
    tmp_path: Path, store: Path
) -> None:
    """Four processes hashing and appending at once leave only whole, valid lines."""
    root = _write(
        tmp_path / "shared", {f"d{i % 7}/f{i}.bin": os.urandom(64 + i) for i in range(300)}
    )
    _age(root)
    expected = hash_data(root).hash
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _HASHER, str(root), str(store), "3"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [worker.communicate(timeout=60)[0].split() for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    assert all(output == [expected] * 3 for output in outputs)
    lines = _shard_lines(store)
    assert len(lines) >= 300
    assert all(_hash_cache._decode(line) is not None for line in lines)
    assert hash_data(root, store=store).hash == expected


def test_a_shard_grown_with_duplicates_is_compacted(
    tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-hashing after changes appends; a shard over twice its entries is rewritten smaller."""
    monkeypatch.setattr(_hash_cache, "_COMPACT_SLACK", 0)
    root = _write(tmp_path / "d", {f"f{i}": b"%d" % i for i in range(10)})
    for version in range(3):
        _age(root, HOUR_AGO_NS + version)
        hash_data(root, store=store)
    assert len(_shard_lines(store)) == 30
    hash_data(root, store=store)  # opening the cache compacts it; all hits, nothing appended
    assert len(_shard_lines(store)) == 10
    assert hash_data(root, store=store).hash == hash_data(root).hash


def test_a_failure_in_one_thread_stops_the_others_and_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    """Hashing in parallel reports the first failure; hashes done before it are cached."""
    root = _write(tmp_path / "many", {f"f{i:03}": b"x" * i for i in range(200)})
    _age(root)
    original = data.file_digest

    def failing(path: str, *args: Any, **kwargs: Any) -> str:
        if path.endswith("f100"):
            raise DataError(f"cannot read {path}: Input/output error", path=path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(data, "file_digest", failing)
    with pytest.raises(DataError, match="f100: Input/output error"):
        hash_data(root, store=store)
    assert len(_shard_lines(store)) >= 1


# -- the progress bar ---------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_only_on_a_terminal_for_large_inputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tty and a large input get a one-line bar, erased at the end; anything else gets nothing."""
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    terminal = _Terminal()
    meter = _progress.Progress("train", 1 << 30, stream=terminal)
    meter.advance(1 << 29)
    meter.close()
    text = terminal.getvalue()
    assert "runjournal: hashing train   50%  512.0 MiB / 1.0 GiB" in text
    assert text.endswith("\r") and "\n" not in text
    for stream, total in ((io.StringIO(), 1 << 30), (_Terminal(), 1 << 20)):
        quiet = _progress.Progress("x", total, stream=stream)
        quiet.advance(total)
        quiet.close()
        assert stream.getvalue() == ""


def test_hashing_prints_nothing_when_stderr_is_not_a_terminal(
    tree: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Batch jobs and pipes see no progress output at all."""
    hash_data(tree)
    assert capfd.readouterr() == ("", "")


# -- Run.log_data -----------------------------------------------------------------


def _doc_data_fields() -> list[str]:
    section = FORMAT_DOC.read_text(encoding="utf-8").split("## `data.jsonl`")[1]
    example = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert example is not None
    return list(json.loads(example.group(1)))


def test_log_data_writes_the_record_format_md_describes(tree: Path) -> None:
    """The line on disk has exactly the documented fields, and equals the returned record."""
    with runjournal.start() as run:
        record = run.log_data("train", tree, role="input", mode="full")
        assert run.dir is not None
        (line,) = (run.dir / "data.jsonl").read_text().splitlines()  # written at once
    assert record is not None and isinstance(record, DataRecord)
    written = json.loads(line)
    assert list(written) == _doc_data_fields()
    assert written == record.to_json()
    assert (written["name"], written["role"], written["kind"], written["seg"]) == (
        "train",
        "input",
        "directory",
        0,
    )
    assert written["hash"] == hash_data(tree).hash and written["files"] == 6
    assert isinstance(written["time"], float) and written["seconds"] >= 0
    assert record.digest == f"sha256:{written['hash']}"


def test_log_data_of_a_dataframe_and_of_an_output(tmp_path: Path) -> None:
    """A DataFrame has no path; any role is accepted."""
    with runjournal.start() as run:
        frame_record = run.log_data("frame", _frame())
        out = tmp_path / "preds.csv"
        out.write_text("1\n")
        output_record = run.log_data("preds", out, role="output", algo="sha512")
    assert frame_record is not None and frame_record.path is None
    assert output_record is not None and output_record.role == "output"
    assert output_record.hash == _sha(b"1\n", "sha512")


def test_log_data_uses_the_store_cache(tree: Path, reads: list[str]) -> None:
    """A second run logging the same data reads none of it."""
    _age(tree)
    with runjournal.start() as run:
        first = run.log_data("train", tree)
    reads.clear()
    with runjournal.start() as run:
        second = run.log_data("train", tree)
    assert first is not None and second is not None
    assert second.hash == first.hash and reads == []


def test_log_data_raises_in_a_strict_run(tmp_path: Path) -> None:
    """Strict runs (as in this suite) raise a DataError that names the data."""
    with runjournal.start(strict=True) as run:
        with pytest.raises(DataError, match=r"data 'train': .*nope does not exist") as caught:
            run.log_data("train", tmp_path / "nope")
        assert caught.value.name == "train"
        with pytest.raises(DataError, match="data 'train': mode='quick' is not valid"):
            run.log_data("train", tmp_path, mode="quick")
        with pytest.raises(DataError, match="role=''"):
            run.log_data("train", tmp_path, role="")
        with pytest.raises(DataError, match="data name is empty"):
            run.log_data("", tmp_path)
        assert run.dir is not None and not (run.dir / "data.jsonl").exists()


@pytest.mark.usefixtures("lenient")
def test_log_data_warns_records_an_error_and_returns_none_by_default(tmp_path: Path) -> None:
    """A training script is not stopped: a warning, an invalid_data event, no data record."""
    with runjournal.start() as run:
        with pytest.warns(RunjournalWarning, match="data 'train': .*does not exist"):
            assert run.log_data("train", tmp_path / "nope") is None
        assert run.log_data("train", tmp_path / "nope") is None  # counted, not warned again
        assert run.dir is not None
    events = [json.loads(line) for line in (run.dir / "run.jsonl").read_text().splitlines()]
    errors = [e for e in events if e["event"] == "error"]
    assert {(e["cause"], e["key"]) for e in errors} == {("invalid_data", "train")}
    assert max(e["count"] for e in errors) == 2
    assert not (run.dir / "data.jsonl").exists()


def test_log_data_in_a_disabled_run_hashes_nothing(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disabled run returns None at once: no hashing, no files."""
    monkeypatch.setattr(data, "hash_data", lambda *a, **k: pytest.fail("hashed"))
    with runjournal.start(mode="disabled") as run:
        assert run.log_data("train", tree) is None
    assert not Path(".runjournal").exists()


def test_log_data_after_end_is_refused(tree: Path) -> None:
    """An ended run refuses log_data like every other verb (raised, in a strict run)."""
    run = runjournal.start(strict=True)
    run.end()
    with pytest.raises(runjournal.errors.RunError, match=r"log_data\(\) ignored"):
        run.log_data("train", tree)


def test_the_module_level_log_data_acts_on_the_active_run(tree: Path) -> None:
    """runjournal.log_data logs to the active run, and needs one."""
    with pytest.raises(runjournal.errors.NoActiveRunError):
        _start.log_data("train", tree)
    with runjournal.start() as run:
        record = _start.log_data("train", tree, mode="stat")
    assert record is not None and record.mode == "stat"
    assert run.dir is not None and (run.dir / "data.jsonl").exists()


@pytest.fixture(autouse=True)
def _no_threads_left() -> Iterator[None]:
    """Hashing threads never outlive the call that started them."""
    import threading

    before = threading.active_count()
    yield
    assert threading.active_count() <= before
