"""Artifacts: content-addressed blobs, the log_* verbs, reading back, get and gc."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import runjournal
from runjournal._gc import collect_garbage
from runjournal.cli import main
from runjournal.errors import ArtifactError, MissingDependencyError, RunjournalWarning


@pytest.fixture(autouse=True)
def _strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strict unless a test asks for ``lenient``, as the suite's runner sets it."""
    monkeypatch.setenv("RUNJOURNAL_STRICT", "1")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNJOURNAL_STRICT", raising=False)


def _blobs(store: Path) -> list[Path]:
    return sorted(p for p in (store / "blobs").rglob("*") if p.is_file() and ".tmp" not in p.parts)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _assert_blobs_match_their_names(store: Path) -> None:
    for blob in _blobs(store):
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob


def _snapshot(root: Path, skip: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` outside ``skip``, with the content of files."""
    tree: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        if path == skip or skip in path.parents:
            continue
        tree[str(path)] = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    return tree


# -- storing once -------------------------------------------------------------------


def test_the_same_50_mb_artifact_logged_by_three_runs_is_one_blob(
    store: Path, tmp_path: Path
) -> None:
    """Three runs, three copies of the same 50 MB: one blob of 50 MB in the store."""
    data = os.urandom(50 << 20)
    paths = []
    for index in range(3):
        path = tmp_path / f"model-{index}.bin"
        path.write_bytes(data)
        paths.append(path)
    records = []
    for path in paths:
        with runjournal.start(store=store) as run:
            records.append(run.log_artifact(path, name="model.bin"))
    assert len({r.hash for r in records if r}) == 1
    blobs = _blobs(store)
    assert len(blobs) == 1
    assert blobs[0].stat().st_size == 50 << 20
    assert blobs[0].stat().st_nlink == 1  # no temp name or user file linked to it
    assert sum(b.stat().st_size for b in (store / "blobs").rglob("*") if b.is_file()) == 50 << 20
    assert blobs[0].name == hashlib.sha256(data).hexdigest()
    assert list((store / "blobs" / "sha256" / ".tmp").iterdir()) == []


def test_a_blob_is_a_copy_editing_the_source_later_changes_nothing(
    store: Path, tmp_path: Path
) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"version 1")
    with runjournal.start(store=store) as run:
        run.log_artifact(source)
    source.write_bytes(b"version 2 is longer")
    path = runjournal.Store(store).artifact_path(run.id, "weights.bin")
    assert path.read_bytes() == b"version 1"
    _assert_blobs_match_their_names(store)


# -- records and round trips --------------------------------------------------------


def test_file_and_directory_records_follow_the_format(store: Path, tmp_path: Path) -> None:
    (tmp_path / "ckpt" / "weights").mkdir(parents=True)
    (tmp_path / "ckpt" / "config.json").write_text('{"a": 1}')
    (tmp_path / "ckpt" / "weights" / "layer0.bin").write_bytes(b"\x00" * 1024)
    (tmp_path / "ckpt" / "weights" / "empty").mkdir()
    with runjournal.start(store=store) as run:
        run.log_artifact(tmp_path / "ckpt", name="checkpoint")
        data = run.log_data("checkpoint", tmp_path / "ckpt")
    (line,) = _lines(store / "runs" / run.id / "artifacts.jsonl")
    assert line["kind"] == "directory" and line["stored"] is True and line["path"] is None
    assert line["hash"] == data.hash  # the same tree hash as log_data's
    assert [f["path"] for f in line["files"]] == ["config.json", "weights/layer0.bin"]
    assert line["size"] == 1024 + 8
    for entry in line["files"]:
        blob = store / "blobs" / "sha256" / entry["hash"][:2] / entry["hash"]
        assert blob.stat().st_size == entry["size"]
    out = tmp_path / "rebuilt"
    runjournal.Store(store).get_artifact(run.id, "checkpoint", out)
    assert (out / "config.json").read_text() == '{"a": 1}'
    assert (out / "weights" / "layer0.bin").read_bytes() == b"\x00" * 1024


def test_text_json_table_and_image_round_trip(store: Path) -> None:
    frame = pd.DataFrame({"cat": [9, 1], "dog": [2, 8]}, index=["cat", "dog"])
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    with runjournal.start(store=store) as run:
        run.log_text("notes/readme.txt", "héllo\nworld")
        run.log_json("eval.json", {"acc": 0.5, "loss": float("nan"), "ids": (1, 2)})
        run.log_table("confusion.csv", frame)
        run.log_table("confusion.jsonl", frame, format="jsonl")
        run.log_image("grid.png", image)
    reader = runjournal.Store(store)
    record = reader.run(run.id)
    assert [a.kind for a in record.artifacts] == ["text", "json", "table", "table", "image"]
    path = reader.artifact_path
    assert path(run.id, "notes/readme.txt").read_text(encoding="utf-8") == "héllo\nworld"
    document = json.loads(path(run.id, "eval.json").read_text())
    assert document == {"acc": 0.5, "loss": {"$float": "nan"}, "ids": [1, 2]}
    assert runjournal.format.decode_value(document)["loss"] != 0  # NaN decodes back
    assert pd.read_csv(path(run.id, "confusion.csv"), index_col=0).equals(frame)
    rows = path(run.id, "confusion.jsonl").read_text().splitlines()
    assert [json.loads(row) for row in rows] == [{"cat": 9, "dog": 2}, {"cat": 1, "dog": 8}]
    assert _png_pixels(path(run.id, "grid.png").read_bytes(), 3, 3) == image.tobytes()


def _png_pixels(data: bytes, width: int, channels: int) -> bytes:
    """The raw pixels of a PNG written with filter 0 on every row."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat = 8, b""
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        crc = int.from_bytes(data[position + 8 + length : position + 12 + length], "big")
        assert zlib.crc32(kind + body) == crc
        if kind == b"IDAT":
            idat += body
        position += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    return b"".join(raw[i + 1 : i + stride] for i in range(0, len(raw), stride))


def test_log_image_of_a_path_stores_the_file_as_is(store: Path, tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8jpeg")
    with runjournal.start(store=store) as run:
        record = run.log_image("photo", tmp_path / "photo.jpg")
    assert record is not None
    assert (record.kind, record.media_type, record.size) == ("image", "image/jpeg", 6)


def test_copy_false_records_path_size_and_hash_but_stores_nothing(
    store: Path, tmp_path: Path
) -> None:
    source = tmp_path / "huge.tar"
    source.write_bytes(b"x" * 1000)
    with runjournal.start(store=store) as run:
        record = run.log_artifact(source, copy=False)
    assert record is not None and not record.stored
    assert record.path == str(source.resolve())
    assert record.hash == hashlib.sha256(b"x" * 1000).hexdigest() and record.size == 1000
    assert _blobs(store) == []
    assert runjournal.Store(store).artifact_path(run.id, "huge.tar") == source.resolve()


def test_the_latest_artifact_of_a_name_wins_and_cli_lists_and_gets_it(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with runjournal.start(store=store) as run:
        run.log_text("notes.txt", "first")
        run.log_text("notes.txt", "second")
    assert main(["--store", str(store), "artifacts", run.id]) == 0
    listed = capsys.readouterr().out
    assert listed.count("notes.txt") == 1 and "text/plain" in listed
    assert main(["--store", str(store), "artifacts", run.id, "--json"]) == 0
    (document,) = json.loads(capsys.readouterr().out)
    assert document["size"] == len("second")
    target = tmp_path / "got.txt"
    assert main(["--store", str(store), "get", run.id, "notes.txt", "-o", str(target)]) == 0
    assert target.read_text() == "second"
    assert main(["--store", str(store), "get", run.id, "notes.txt", "-o", str(target)]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["--store", str(store), "get", run.id, "nope"]) == 1
    assert "no artifact 'nope'" in capsys.readouterr().err


# -- names and escapes --------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "a\x00b", "C:x"]
)
def test_bad_artifact_names_are_refused_in_a_strict_run(store: Path, name: str) -> None:
    with runjournal.start(store=store) as run, pytest.raises(ArtifactError):
        run.log_text(name, "x")


def test_no_name_or_symlink_writes_outside_the_store(store: Path, tmp_path: Path) -> None:
    """Bad names are refused; a linked source is read, never written through."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("keep me")
    source = tmp_path / "src"
    source.mkdir()
    (source / "link-to-outside").symlink_to(outside, target_is_directory=True)
    (source / "file-link").symlink_to(outside / "secret.txt")
    before = _snapshot(tmp_path, store)
    with runjournal.start(store=store) as run:
        record = run.log_artifact(source, name="src")
        for bad in ("../outside/secret.txt", str(outside / "secret.txt"), "../../x"):
            with pytest.raises(ArtifactError):
                run.log_text(bad, "overwritten")
            with pytest.raises(ArtifactError):
                run.log_artifact(source, name=bad)
    assert _snapshot(tmp_path, store) == before
    assert record is not None
    assert sorted(f.path for f in record.files or []) == [
        "file-link",
        "link-to-outside/secret.txt",
    ]
    for path in (store / "blobs").rglob("*"):
        assert not path.is_symlink()
    _assert_blobs_match_their_names(store)


def test_get_refuses_a_tampered_record_that_would_leave_the_output(
    store: Path, tmp_path: Path
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    with runjournal.start(store=store) as run:
        run.log_artifact(tmp_path / "d")
    artifacts = store / "runs" / run.id / "artifacts.jsonl"
    (line,) = _lines(artifacts)
    line["name"] = "evil"
    line["files"][0]["path"] = "../escaped.txt"
    with artifacts.open("a") as file:
        file.write(json.dumps(line) + "\n")
    line = {**line, "name": "evil-blob", "kind": "file", "hash": "../../../etc/passwd"}
    with artifacts.open("a") as file:
        file.write(json.dumps(line) + "\n")
    reader = runjournal.Store(store)
    with pytest.raises(ArtifactError):
        reader.get_artifact(run.id, "evil", tmp_path / "out")
    with pytest.raises(ArtifactError):
        reader.artifact_path(run.id, "evil-blob")
    assert not (tmp_path / "escaped.txt").exists()


# -- errors follow the run's policy -------------------------------------------------


@pytest.mark.usefixtures("lenient")
def test_a_lenient_run_warns_records_an_error_event_and_returns_none(store: Path) -> None:
    with runjournal.start(store=store) as run:
        with pytest.warns(RunjournalWarning, match="missing.bin"):
            assert run.log_artifact("missing.bin") is None
        with pytest.warns(RunjournalWarning):
            assert run.log_image("x.png", np.zeros((2, 2), dtype=np.float32)) is None
        with pytest.warns(RunjournalWarning):
            assert run.log_json("x.json", object()) is None
        run.log({"loss": 1.0})
    events = [e for e in _lines(store / "runs" / run.id / "run.jsonl") if e["event"] == "error"]
    assert {e["cause"] for e in events} == {"invalid_artifact"}
    assert {"x.png", "missing.bin", "x.json"} <= {e["key"] for e in events}
    assert not (store / "runs" / run.id / "artifacts.jsonl").exists()


def test_a_strict_run_raises(store: Path) -> None:
    with runjournal.start(store=store) as run:
        with pytest.raises(ArtifactError, match="does not exist"):
            run.log_artifact("missing.bin")
        with pytest.raises(ArtifactError, match="uint8"):
            run.log_image("x.png", np.zeros((2, 2), dtype=np.float32))
        with pytest.raises(ArtifactError):
            run.log_table("t.csv", [1, 2])


def test_log_figure_saves_png_and_says_what_is_missing(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Figure:  # what log_figure uses of a matplotlib figure
        def savefig(self, file: Any, format: str) -> None:
            file.write(b"\x89PNG fake " + format.encode())

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "matplotlib" else real(n, *a)
    )
    with runjournal.start(store=store) as run:
        record = run.log_figure("loss.png", Figure())
        with pytest.raises(MissingDependencyError, match=r"runjournal\[plots\]"):
            run.log_figure("loss.png", "not a figure")
    assert record is not None and record.kind == "figure" and record.media_type == "image/png"
    assert "matplotlib" not in sys.modules  # never imported by runjournal itself


def test_a_disabled_run_stores_nothing(store: Path) -> None:
    run = runjournal.start(store=store, mode="disabled")
    assert run.log_text("a.txt", "x") is None
    run.end()
    assert not (store / "blobs").exists()


# -- gc -----------------------------------------------------------------------------


def test_gc_keeps_referenced_blobs_and_removes_only_orphans(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "inner.bin").write_bytes(b"inner")
    with runjournal.start(store=store) as kept:
        kept.log_text("kept.txt", "kept")
        kept.log_artifact(tmp_path / "d")
    with runjournal.start(store=store) as dropped:
        dropped.log_text("orphan.txt", "orphan")
        dropped.log_text("shared.txt", "kept")  # the same content as the kept run's
    import shutil

    shutil.rmtree(store / "runs" / dropped.id)
    orphan = hashlib.sha256(b"orphan").hexdigest()
    later = time.time() + 7200
    dry = collect_garbage(store, now=later)
    assert [Path(p).name for p, _ in dry.files] == [orphan] and dry.bytes == 6
    assert len(_blobs(store)) == 3  # a dry run deletes nothing
    assert collect_garbage(store).files == []  # everything is younger than an hour
    old = later - 7200 - 7200
    for blob in _blobs(store):
        os.utime(blob, (old, old))
    report = collect_garbage(store, delete=True)
    assert [Path(p).name for p, _ in report.files] == [orphan]
    remaining = {b.name for b in _blobs(store)}
    assert remaining == {hashlib.sha256(b"kept").hexdigest(), hashlib.sha256(b"inner").hexdigest()}
    reader = runjournal.Store(store)
    assert reader.artifact_path(kept.id, "kept.txt").read_text() == "kept"
    assert main(["--store", str(store), "gc", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == []


def test_gc_removes_old_temporary_files_but_not_fresh_ones(store: Path) -> None:
    with runjournal.start(store=store) as run:
        run.log_text("a.txt", "a")
    temp_dir = store / "blobs" / "sha256" / ".tmp"
    old, fresh = temp_dir / ".tmp-1.old", temp_dir / ".tmp-2.fresh"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    report = collect_garbage(store, delete=True)
    assert [Path(p).name for p, _ in report.files] == [old.name]
    assert fresh.exists() and not old.exists()


# -- crashes ------------------------------------------------------------------------


_SLOW_CHILD = textwrap.dedent(
    """
    import os, sys, time
    import runjournal
    from runjournal import _blobs

    _blobs.CHUNK = 64 << 10
    real, real_kernel = _blobs._write_chunk, _blobs._kernel_chunk

    def slow(out, chunk):
        time.sleep(0.02)
        real(out, chunk)

    def slow_kernel(source, out, offset, count):
        time.sleep(0.02)
        return real_kernel(source, out, offset, count)

    _blobs._write_chunk = slow  # the portable copy
    _blobs._kernel_chunk = slow_kernel  # the kernel's copy of large files
    run = runjournal.start(store=sys.argv[1])
    run.log_text("small.txt", "small")
    print("started", flush=True)
    run.log_artifact(sys.argv[2])
    print("done", flush=True)
    """
)


def test_a_process_killed_mid_copy_never_leaves_a_blob_that_does_not_match(
    store: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 << 20))  # 128 slow chunks: seconds to copy
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_CHILD, str(store), str(big)],
        stdout=subprocess.PIPE,
        env={**os.environ, "RUNJOURNAL_STRICT": "1"},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"started"
    temp_dir = store / "blobs" / "sha256" / ".tmp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        temps = list(temp_dir.glob(".tmp-*"))
        if temps and temps[0].stat().st_size > (1 << 20):
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    big_hash = hashlib.sha256(big.read_bytes()).hexdigest()
    assert big_hash not in {b.name for b in _blobs(store)}
    assert list(temp_dir.glob(".tmp-*"))  # the partial copy is only under a temporary name
    _assert_blobs_match_their_names(store)
    with runjournal.start(store=store) as run:  # the next run stores it whole
        record = run.log_artifact(big)
    assert record is not None and record.hash == big_hash
    _assert_blobs_match_their_names(store)
    later = time.time() + 7200
    leftovers = [p for p, _ in collect_garbage(store, now=later).files if "/.tmp/" in p]
    assert leftovers


def test_the_format_doc_artifact_examples_fit_the_reader_model() -> None:
    """Every artifacts.jsonl example of docs/format.md reads into an ArtifactRecord whole."""
    import re

    from runjournal.query._artifacts import ArtifactRecord

    text = (Path(__file__).parent.parent / "docs" / "format.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]
    examples = [b for b in blocks if "media_type" in b]
    assert len(examples) == 3
    for example in examples:
        record = ArtifactRecord.model_validate(example)
        assert record.model_dump(exclude_none=True).keys() >= example.keys() - {"path"}
        if record.stored and record.kind == "file":
            assert record.path == f"blobs/sha256/{record.hash[:2]}/{record.hash}"  # type: ignore[index]


# -- the kernel's copy, and durability ----------------------------------------------


def _synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record (device, inode) of every file and directory os.fsync is called on."""
    synced: list[tuple[int, int]] = []
    real = os.fsync

    def counting(fd: int) -> None:
        status = os.fstat(fd)
        synced.append((status.st_dev, status.st_ino))
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return synced


def _identity(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_dev, status.st_ino


@pytest.mark.parametrize("durability", ["fsync", "buffered"])
def test_fsync_durability_syncs_each_new_blob_and_its_directory(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: Any
) -> None:
    """With durability='fsync' every new blob and the directory naming it are fsynced; else none."""
    from runjournal import _blobs as blobs

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(blobs.CHUNK + 12345))  # copied by the kernel
    small = tmp_path / "small.bin"
    small.write_bytes(b"small")  # the portable copy
    synced = _synced(monkeypatch)
    with runjournal.start(store=store, durability=durability, system_metrics=False) as run:
        records = [
            run.log_artifact(big),
            run.log_artifact(small),
            run.log_text("notes.txt", "from memory"),
        ]
    assert all(record is not None for record in records)
    blobs = [runjournal.Store(store).artifact_path(run.id, r.name) for r in records if r]
    assert [blob.read_bytes() for blob in blobs[:2]] == [big.read_bytes(), b"small"]
    _assert_blobs_match_their_names(store)
    wanted = {_identity(blob) for blob in blobs} | {_identity(blob.parent) for blob in blobs}
    if durability == "fsync":
        assert wanted <= set(synced)
    else:
        assert not wanted & set(synced)


def test_a_large_file_is_copied_by_the_kernel_and_hashed_as_copied(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file over one chunk goes through copy_file_range, and its blob holds exactly its bytes."""
    from runjournal import _blobs as blobs

    monkeypatch.setattr(blobs, "CHUNK", 64 << 10)
    data = os.urandom((1 << 20) + 7)  # 17 chunks, the last one short
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    chunks: list[int] = []
    real = blobs._kernel_chunk

    def counted(src: int, out: int, offset: int, count: int) -> int:
        chunks.append(count)
        return real(src, out, offset, count)

    monkeypatch.setattr(blobs, "_kernel_chunk", counted)
    monkeypatch.setattr(blobs, "_copy", _refused)
    with runjournal.start(store=store, system_metrics=False) as run:
        record = run.log_artifact(source)
    assert record is not None and record.hash == hashlib.sha256(data).hexdigest()
    assert len(chunks) == 17
    blob = runjournal.Store(store).artifact_path(run.id, "weights.bin")
    assert blob.read_bytes() == data
    assert list((store / "blobs" / "sha256" / ".tmp").iterdir()) == []


def _refused(*args: object) -> int:
    raise AssertionError("the portable copy was not expected here")


def test_a_source_that_changes_during_the_kernel_copy_is_copied_again_the_portable_way(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write to the source mid-copy drops the kernel's copy; the blob is the file as it ends."""
    from runjournal import _blobs as blobs

    monkeypatch.setattr(blobs, "CHUNK", 64 << 10)
    source = tmp_path / "growing.bin"
    source.write_bytes(os.urandom(1 << 20))
    real = blobs._kernel_chunk

    def appending(src: int, out: int, offset: int, count: int) -> int:
        if offset == 0:
            with source.open("ab") as file:  # another process writes to it meanwhile
                file.write(b"more")
        return real(src, out, offset, count)

    monkeypatch.setattr(blobs, "_kernel_chunk", appending)
    portable: list[int] = []
    real_copy = blobs._copy
    monkeypatch.setattr(blobs, "_copy", lambda *args: portable.append(1) or real_copy(*args))
    with runjournal.start(store=store, system_metrics=False) as run:
        record = run.log_artifact(source)
    final = source.read_bytes()
    assert portable == [1]
    assert record is not None and record.size == (1 << 20) + 4
    assert record.hash == hashlib.sha256(final).hexdigest()
    assert [blob.name for blob in _blobs(store)] == [record.hash]  # no blob of the torn copy
    _assert_blobs_match_their_names(store)
    assert list((store / "blobs" / "sha256" / ".tmp").iterdir()) == []


@pytest.mark.parametrize("sendfile_works", [True, False])
def test_without_copy_file_range_sendfile_or_the_portable_copy_stores_the_file(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sendfile_works: bool
) -> None:
    """Without copy_file_range (EXDEV) sendfile copies; without both the portable copy does."""
    from runjournal import _blobs as blobs

    monkeypatch.setattr(blobs, "CHUNK", 64 << 10)
    data = os.urandom(300_000)
    source = tmp_path / "model.bin"
    source.write_bytes(data)

    def cross_device(*args: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def unsupported(*args: object) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(blobs, "_kernel_chunk", cross_device)
    if not sendfile_works:
        monkeypatch.setattr(blobs, "_kernel_send", unsupported)
    portable: list[int] = []
    real_copy = blobs._copy
    monkeypatch.setattr(blobs, "_copy", lambda *args: portable.append(1) or real_copy(*args))
    with runjournal.start(store=store, system_metrics=False) as run:
        record = run.log_artifact(source)
    assert record is not None and record.hash == hashlib.sha256(data).hexdigest()
    assert portable == ([] if sendfile_works else [1])
    assert runjournal.Store(store).artifact_path(run.id, "model.bin").read_bytes() == data
    _assert_blobs_match_their_names(store)
