"""``runjournal doctor``: every kind of damage is found; ``--fix`` moves only damage, loses nothing.

Mirrors ``doctor.py`` and ``_cli_doctor.py``. The damaged store is built from
real runs and then broken the way crashes and copies break stores; the
assertions compare the files byte for byte before and after the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

import runjournal
from _children import child_env, metric_values, run_child
from runjournal import doctor
from runjournal.cli import main as cli
from runjournal.doctor import Kind, check_store, fix_store

RUNS = """
for name in ("alpha", "beta", "gamma", "delta"):
    with runjournal.start("doctor", run_id=name, params={"name": name}, flush_interval=3600) as run:
        for step in range(20):
            run.log(metric_values(step))
        run.note(f"note of {name}")
"""


@pytest.fixture(scope="session")
def healthy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of four finished runs, written by a process that is gone now."""
    store = tmp_path_factory.mktemp("doctor") / "store"
    child = run_child(RUNS, child_env(store))
    assert child.proc.returncode == 0, child.stderr
    return store


@pytest.fixture
def store(tmp_path: Path, healthy_template: Path) -> Path:
    """A fresh copy of the healthy store."""
    copy = tmp_path / "store"
    shutil.copytree(healthy_template, copy)
    return copy


def _contents(store: Path) -> dict[Path, bytes]:
    """Every file of the store but its rebuildable ``.cache/``, which readers may fill."""
    return {
        path: path.read_bytes()
        for path in store.rglob("*")
        if path.is_file() and ".cache" not in path.relative_to(store).parts
    }


def _valid_lines(path: Path) -> list[bytes]:
    """The complete lines of a file that are JSON objects, in order."""
    data = path.read_bytes()
    kept = []
    for line in data[: data.rfind(b"\n") + 1].splitlines(keepends=True):
        try:
            if isinstance(orjson.loads(line), dict):
                kept.append(line)
        except orjson.JSONDecodeError:
            pass
    return kept


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


class Damage:
    """What was done to a store, to compare with what the doctor says and does."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.removed: dict[str, bytes] = {}  # relative path -> the damaged lines, each with \n
        self.moved: dict[str, bytes] = {}  # relative path -> content of a file moved whole
        self.valid: dict[str, list[bytes]] = {}

    def append(self, relative: str, junk: bytes, *, quarantined: bytes | None = None) -> None:
        path = self.store / relative
        with path.open("ab") as file:
            file.write(junk)
        self.removed[relative] = self.removed.get(relative, b"") + (quarantined or junk)
        self.valid[relative] = _valid_lines(path)


@pytest.fixture
def damaged(store: Path) -> Damage:
    """The healthy store with one of each kind of damage doctor knows."""
    damage = Damage(store)
    runs = "runs"
    # Fixable: lines, a broken write-once file, old temporary files.
    damage.append(f"{runs}/alpha/metrics.jsonl", b'\x8f garbage\n{"step": 99, "m": {"lo')
    damage.removed[f"{runs}/alpha/metrics.jsonl"] += b"\n"  # the torn line, given its newline
    damage.append(f"{runs}/beta/params.jsonl", b"\x00" * 64, quarantined=b"\x00" * 64 + b"\n")
    damage.append(f"{runs}/gamma/run.jsonl", b"[1, 2]\n")
    bad_json = store / runs / "beta" / "environment.json"
    bad_json.write_bytes(b'{"format": 1, "python": {"vers')
    damage.moved[f"{runs}/beta/environment.json"] = bad_json.read_bytes()
    for temp in (
        store / ".tmp-runjournal.json.1.ab",
        store / runs / "gamma" / ".tmp-git.json.2.cd",
    ):
        temp.write_bytes(b"half")
        _age(temp, 7200)
        damage.moved[temp.relative_to(store).as_posix()] = b"half"
    # Reported only.
    (store / runs / "young").mkdir()  # no start event
    (store / runs / "young" / ".tmp-environment.json.3.ef").write_bytes(b"{}")  # being written
    patch = store / runs / "delta" / "git.patch"
    patch.write_bytes(b"diff --git a/x b/x\n")
    info = {"format": 1, "status": "ok", "patch": {"file": "git.patch", "sha256": "0" * 64}}
    (store / runs / "delta" / "git.json").write_text(json.dumps(info))
    newer = store / runs / "newer"
    newer.mkdir()
    (newer / "run.jsonl").write_bytes(
        b'{"event": "start", "time": 1.0, "seg": 0, "format": 2, "host": "far", "pid": 1}\n'
        b"not json in a newer format, maybe\n"
    )
    live = store / runs / "live"  # on another host, its heartbeat deadline not passed yet
    live.mkdir()
    deadline = time.time() + 3600
    (live / "run.jsonl").write_text(
        json.dumps({"event": "start", "time": 1.0, "seg": 0, "format": 1, "host": "far-away",
                    "pid": 5, "deadline": deadline}) + "\n"
    )  # fmt: skip
    (live / "metrics.jsonl").write_bytes(b'{"step": 0, "time": 1.0, "seg": 0, "m": {"x": 1}}\n{"st')
    blob_dir = store / "blobs" / "sha256"
    good = hashlib.sha256(b"artifact").hexdigest()
    (blob_dir / good[:2]).mkdir(parents=True)
    (blob_dir / good[:2] / good).write_bytes(b"artifact")  # no artifact record names it
    bad = hashlib.sha256(b"original").hexdigest()
    (blob_dir / bad[:2]).mkdir(exist_ok=True)
    (blob_dir / bad[:2] / bad).write_bytes(b"bit rot")
    return damage


FIXABLE = {Kind.BAD_LINE, Kind.TORN_LINE, Kind.BAD_FILE, Kind.TEMP_FILE}


def test_check_finds_every_kind_of_damage_and_changes_nothing(damaged: Damage, tally: Any) -> None:
    """check_store reports each damage with its kind, path and line, and writes nothing."""
    store = damaged.store
    before = _contents(store)
    report = check_store(store)
    found = {(p.kind, p.path, p.line, p.fixable) for p in report.problems}
    assert found == {
        (Kind.BAD_LINE, "runs/alpha/metrics.jsonl", 21, True),
        (Kind.TORN_LINE, "runs/alpha/metrics.jsonl", 22, True),
        (Kind.TORN_LINE, "runs/beta/params.jsonl", 2, True),
        (
            Kind.BAD_LINE,
            "runs/gamma/run.jsonl",
            len(damaged.valid["runs/gamma/run.jsonl"]) + 1,
            True,
        ),
        (Kind.BAD_FILE, "runs/beta/environment.json", 0, True),
        (Kind.TEMP_FILE, ".tmp-runjournal.json.1.ab", 0, True),
        (Kind.TEMP_FILE, "runs/gamma/.tmp-git.json.2.cd", 0, True),
        (Kind.TEMP_FILE, "runs/young/.tmp-environment.json.3.ef", 0, False),
        (Kind.NO_START, "runs/young", 0, False),
        (Kind.HASH_MISMATCH, "runs/delta/git.patch", 0, False),
        (Kind.NEWER_FORMAT, "runs/newer", 0, False),
        (Kind.BAD_LINE, "runs/newer/run.jsonl", 2, False),
        (Kind.TORN_LINE, "runs/live/metrics.jsonl", 2, False),
        (Kind.HASH_MISMATCH, f"blobs/sha256/{report_blob(b'original')}", 0, False),
        (Kind.ORPHAN_BLOB, f"blobs/sha256/{report_blob(b'artifact')}", 0, False),
    }
    assert report.runs == 7 and not report.ok
    assert _contents(store) == before
    result = tally("doctor --fix")
    result.repetitions += len(report.problems)
    result.runs += report.runs


def report_blob(content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    return f"{digest[:2]}/{digest}"


def test_fix_keeps_every_valid_line_and_quarantines_exactly_the_damage(
    damaged: Damage, tally: Any
) -> None:
    """--fix: valid lines stay in order, the quarantine holds exactly what was removed or moved."""
    store = damaged.store
    untouched = {
        p: p.read_bytes()
        for p in store.rglob("*")
        if p.is_file() and p.relative_to(store).as_posix() not in damaged.removed | damaged.moved
    }
    fixed = fix_store(store)
    assert fixed.quarantine is not None and fixed.quarantine.parent == store / "quarantine"
    assert {p.kind for p in fixed.moved} == FIXABLE and fixed.skipped == []
    for relative, lines in damaged.valid.items():
        assert (store / relative).read_bytes() == b"".join(lines), relative
        assert (fixed.quarantine / relative).read_bytes() == damaged.removed[relative], relative
    for relative, content in damaged.moved.items():
        assert not (store / relative).exists()
        assert (fixed.quarantine / relative).read_bytes() == content
    assert fixed.removed_lines == 4
    quarantined = {
        p.relative_to(fixed.quarantine).as_posix()
        for p in fixed.quarantine.rglob("*")
        if p.is_file()
    }
    assert quarantined == set(damaged.removed) | set(damaged.moved) | {"manifest.json"}
    manifest = json.loads((fixed.quarantine / "manifest.json").read_text())
    assert {entry["path"] for entry in manifest["moved"]} == quarantined - {"manifest.json"}
    for path, content in untouched.items():  # everything else, byte for byte
        assert path.read_bytes() == content, path
    assert {p.kind for p in fixed.after.problems} == {
        Kind.NO_START,
        Kind.TEMP_FILE,
        Kind.HASH_MISMATCH,
        Kind.NEWER_FORMAT,
        Kind.BAD_LINE,
        Kind.TORN_LINE,
        Kind.ORPHAN_BLOB,
    }
    assert not any(p.fixable for p in fixed.after.problems)

    for name in ("alpha", "beta", "gamma"):  # the fixed runs read cleanly now
        record = runjournal.Store(store).run(name)
        assert record.skipped == [] and record.status == "completed"
        assert len(record.history()) == 20 * len(metric_values(0))
    again = fix_store(store)
    assert again.quarantine is None and again.moved == []
    assert len(list((store / "quarantine").iterdir())) == 1

    result = tally("doctor --fix")
    result.repetitions += 1
    result.lines += fixed.kept_lines
    result.expect("damaged lines quarantined", fixed.removed_lines)


def test_fix_keeps_the_mode_and_owner_of_a_rewritten_file(store: Path) -> None:
    """A rewritten file keeps its permission bits (a group-shared store stays shared)."""
    path = store / "runs" / "alpha" / "metrics.jsonl"
    path.chmod(0o640)
    with path.open("ab") as file:
        file.write(b"junk\n")
    before = path.stat()
    fix_store(store)
    after = path.stat()
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)


def test_fix_leaves_a_file_that_changes_meanwhile(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file appended to while it is being fixed is left as it is, and reported again."""
    path = store / "runs" / "alpha" / "metrics.jsonl"
    with path.open("ab") as file:
        file.write(b"junk\n")
    real = doctor._classified_lines_with_blanks

    def appending(target: Path) -> Any:
        for number, item in enumerate(real(target)):
            if number == 0:
                with path.open("ab") as file:  # a resumed run writes right now
                    file.write(b'{"step": 100, "time": 1.0, "seg": 1, "m": {"x": 1}}\n')
            yield item

    monkeypatch.setattr(doctor, "_classified_lines_with_blanks", appending)
    content = path.read_bytes()
    fixed = fix_store(store)
    assert [p.path for p in fixed.skipped] == ["runs/alpha/metrics.jsonl"]
    assert path.read_bytes().startswith(content)
    assert [p.kind for p in fixed.after.problems] == [Kind.BAD_LINE]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_a_fifo_in_a_run_is_reported_not_waited_on(store: Path) -> None:
    """A FIFO where a file should be: doctor, ls and show report it and return."""
    fifo = store / "runs" / "alpha" / "metrics.rank1.jsonl"
    os.mkfifo(fifo)
    report = check_store(store)
    assert [(p.kind, p.path) for p in report.problems] == [
        (Kind.UNREADABLE, "runs/alpha/metrics.rank1.jsonl")
    ]
    assert cli(["--store", str(store), "ls"]) == 0
    assert cli(["--store", str(store), "show", "alpha"]) == 0


# -- the command line -------------------------------------------------------------------------


def test_the_cli_reports_exits_1_and_fixes(
    damaged: Damage, capsys: pytest.CaptureFixture[str]
) -> None:
    """`doctor` lists problems (exit 1), `--json` as JSON; `--fix` says where it moved them."""
    store = str(damaged.store)
    assert cli(["--store", store, "doctor"]) == 1
    text = capsys.readouterr().out
    assert re.search(r"\nruns/alpha/metrics\.jsonl:21 +bad_line +fixable +not valid JSON\n", text)
    assert "can be moved aside with `runjournal doctor --fix`" in text
    assert cli(["doctor", "--json", "--store", store]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and len(report["problems"]) == 15
    assert cli(["--store", store, "doctor", "--fix"]) == 1  # unfixable problems remain
    text = capsys.readouterr().out
    assert text.startswith("moved 7 problems aside into ")
    assert "4 damaged lines removed" in text


def test_the_cli_says_a_healthy_store_is_healthy(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store without damage: `doctor` and `doctor --fix` exit 0 and change nothing."""
    before = _contents(store)
    assert cli(["--store", str(store), "doctor"]) == 0
    assert re.fullmatch(
        r"store .*: 4 runs, \d+ files, \d+ lines checked: no problems\n", capsys.readouterr().out
    )
    assert cli(["--store", str(store), "doctor", "--fix"]) == 0
    assert capsys.readouterr().out.startswith("nothing to move aside")
    assert _contents(store) == before
