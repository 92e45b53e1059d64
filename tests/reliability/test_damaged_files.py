"""Torn and damaged files: what a crash, a power loss or a bad copy leaves, and how readers cope.

Each test writes a real run with runjournal, damages its files the way the
world does (a file cut at any byte, a line of garbage, a tail of NUL bytes,
a missing or empty file, a flipped byte, a newer format), and checks that the
reader loads everything else, reports each problem with its file and line,
and that resuming the run appends cleanly after the damage.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import runjournal
from _children import assert_exact_values, child_env, metric_values, run_child, same_number
from runjournal.cli import main as cli
from runjournal.errors import RunjournalWarning, UnsupportedFormatError
from runjournal.query._reader import load_run

STEPS = 12


VICTIM = f"""
with runjournal.start(
    "damage",
    run_id="victim",
    params={{"lr": 0.1, "model": {{"depth": 3}}}},
    tags={{"kind": "victim"}},
    flush_interval=3600,
) as run:
    for step in range({STEPS}):
        run.log(metric_values(step))
        if step % 4 == 0:
            run.flush()
    run.log_params({{"late": "yes"}})
    run.note("first note")
    run.note("second note")
"""


@pytest.fixture(scope="session")
def victim_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one finished run, written by a process that is gone now."""
    store = tmp_path_factory.mktemp("victim") / "store"
    child = run_child(VICTIM, child_env(store))
    assert child.proc.returncode == 0, child.stderr
    return store


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The store of the damaged runs."""
    return tmp_path / "store"


def _write_run(store: Path, template: Path) -> Path:
    """A copy of the victim run in ``store``; returns its directory."""
    shutil.copytree(template, store)
    return store / "runs" / "victim"


def _quietly_load(store: Path, run_id: str = "victim") -> tuple[Any, list[dict[str, Any]]]:
    """The run and its raw history, with the reader's warnings (expected here) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = runjournal.Store(store).run(run_id)
        return record, record.history(raw=True)


@pytest.fixture
def counted(tally: Any) -> Iterator[Any]:
    """The tally of this file's scenario."""
    yield tally("torn and damaged files")


# -- a file cut at every byte -------------------------------------------------------------


@pytest.mark.parametrize("name", ["metrics.jsonl", "params.jsonl", "run.jsonl"])
def test_a_file_cut_at_any_byte_reads_as_its_whole_lines(
    store: Path, victim_template: Path, name: str, counted: Any
) -> None:
    """Cut anywhere, a file reads as exactly the whole lines before the cut, the rest reported."""
    run_dir = _write_run(store, victim_template)
    path = run_dir / name
    whole = path.read_bytes()
    for cut in range(len(whole) + 1):
        path.write_bytes(whole[:cut])
        prefix = whole[:cut]
        whole_lines = prefix.count(b"\n")
        torn = cut > 0 and not prefix.endswith(b"\n")
        record, rows = _quietly_load(store)
        reasons = [s.reason for s in record.skipped if s.file == name and s.line]
        assert reasons == (["incomplete last line"] if torn else []), (cut, reasons)
        if name == "metrics.jsonl":
            steps = sorted({row["step"] for row in rows})
            assert steps == list(range(whole_lines)), cut
            assert_exact_values(rows, range(whole_lines))
        elif name == "params.jsonl":
            assert ("lr" in record.params) == (whole_lines >= 1), cut
            assert ("late" in record.params) == (whole_lines >= 2), cut
        else:
            events = [orjson.loads(line) for line in prefix.splitlines()[:whole_lines]]
            kinds = [event["event"] for event in events]
            status = "completed" if "end" in kinds else "crashed" if "start" in kinds else "unknown"
            assert record.status == status, (cut, kinds)
            assert len(record.notes) == kinds.count("note"), cut
        counted.repetitions += 1
        counted.lines += whole_lines
    counted.runs += 1


# -- garbage, NUL bytes, empty and missing files ------------------------------------------------

DAMAGE = {
    "garbage line": lambda data: data + b"\x8f\xff garbage {]\n",
    "NUL-filled tail": lambda data: data + b"\x00" * 4096,
    "NUL-filled last block": lambda data: data[: -min(len(data), 40)] + b"\x00" * 40,
    "NUL line": lambda data: data + b"\x00\x00\x00\n",
    "torn line": lambda data: data + b'{"step": 999, "m": {"lo',
    "a JSON array line": lambda data: data + b"[1, 2, 3]\n",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("name", ["metrics.jsonl", "params.jsonl", "run.jsonl"])
def test_a_damaged_tail_is_skipped_reported_and_resume_appends_after_it(
    store: Path,
    victim_template: Path,
    name: str,
    damage: str,
    capsys: pytest.CaptureFixture[str],
    counted: Any,
) -> None:
    """Garbage, NULs or a torn line at the end: the rest loads; a resumed run appends cleanly."""
    run_dir = _write_run(store, victim_template)
    path = run_dir / name
    original = path.read_bytes()
    damaged = DAMAGE[damage](original)
    path.write_bytes(damaged)
    record, rows = _quietly_load(store)
    problems = [s for s in record.skipped if s.file == name]
    assert len(problems) == 1, record.skipped
    if name == "metrics.jsonl" and damage != "NUL-filled last block":
        assert_exact_values(rows, range(STEPS))
    assert cli(["--store", str(store), "show", "victim"]) == 0
    assert f"runjournal: warning: runs/victim/{name}: skipped 1" in capsys.readouterr().err

    resumed = runjournal.start(store=store, run_id="victim", resume=True, flush_interval=3600)
    resumed.log({"after": 1.0}, step=100)
    resumed.log_params({"resumed": True})
    resumed.note("resumed")
    resumed.end()
    data = path.read_bytes()
    assert data.startswith(damaged), "the damaged bytes were rewritten"
    tail = data[len(damaged) :]
    assert tail == b"" or damaged.endswith(b"\n") or tail.startswith(b"\n"), tail[:40]
    record, rows = _quietly_load(store)
    assert record.status == "completed" and record.segments == 2
    assert record.params["resumed"] is True and record.notes[-1].text == "resumed"
    assert any(row["step"] == 100 and row["value"] == 1.0 for row in rows)
    assert [s.file for s in record.skipped] == [name], record.skipped  # still one problem
    counted.repetitions += 1
    counted.runs += 1
    counted.lines += data.count(b"\n")
    counted.expect("damaged lines skipped and reported", 1)


@pytest.mark.parametrize("name", ["metrics.jsonl", "params.jsonl", "run.jsonl"])
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_a_missing_or_empty_file_loses_only_itself(
    store: Path, victim_template: Path, name: str, how: str, counted: Any
) -> None:
    """Without (or with an empty) run.jsonl, params or metrics file, the other files still load."""
    run_dir = _write_run(store, victim_template)
    path = run_dir / name
    if how == "missing":
        path.unlink()
    else:
        path.write_bytes(b"")
    record, rows = _quietly_load(store)
    if name == "run.jsonl":
        assert record.status == "unknown"
        assert [s.reason for s in record.skipped] == ["no start event"]
    else:
        assert record.status == "completed" and record.skipped == []
    assert bool(rows) == (name != "metrics.jsonl")
    assert bool(record.params) == (name != "params.jsonl")
    assert [r.id for r in runjournal.Store(store).runs()] == ["victim"]
    assert cli(["--store", str(store), "ls"]) == 0
    counted.repetitions += 1
    counted.runs += 1


# -- bit rot --------------------------------------------------------------------------------


def test_a_flipped_byte_anywhere_never_stops_a_reader(
    tmp_path: Path, victim_template: Path, soak: int, counted: Any
) -> None:
    """One byte changed anywhere in any file: the store lists, every other line loads as written."""

    @given(data=st.data())
    @settings(max_examples=300 * soak, deadline=None, database=None)
    def flip(data: st.DataObject) -> None:
        _flip_one_byte(tmp_path / f"rot-{os.urandom(4).hex()}", victim_template, data)
        counted.repetitions += 1

    flip()


def _flip_one_byte(store: Path, victim_template: Path, data: st.DataObject) -> None:
    run_dir = _write_run(store, victim_template)
    name = data.draw(st.sampled_from(["metrics.jsonl", "params.jsonl", "run.jsonl"]))
    path = run_dir / name
    original = path.read_bytes()
    offset = data.draw(st.integers(0, len(original) - 1))
    byte = data.draw(st.integers(0, 255))
    damaged = original[:offset] + bytes([byte]) + original[offset + 1 :]
    path.write_bytes(damaged)
    hit_line = original[:offset].count(b"\n")  # 0-based index of the line that changed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = runjournal.Store(store).runs()
        assert [r.id for r in records] == ["victim"]
        rows = records[0].history(raw=True)
        records[0].summary  # noqa: B018
        assert cli(["--store", str(store), "show", "victim"]) in (0, 1)
    if name == "metrics.jsonl":
        untouched = set(range(STEPS)) - {hit_line, hit_line + 1}  # a lost newline merges two
        found = {(row["step"], row["key"]): row["value"] for row in rows}
        for step in untouched:
            for key, value in metric_values(step).items():
                assert (step, key) in found, (step, key, offset, byte)
                assert same_number(found[step, key], value), (step, key, offset, byte)
    shutil.rmtree(store)


# -- newer formats --------------------------------------------------------------------------


def test_a_run_of_a_newer_format_loads_with_a_warning_and_is_not_resumed(
    store: Path, victim_template: Path, counted: Any
) -> None:
    """A start event of format 2: known fields load, a problem says to upgrade, resume refuses."""
    run_dir = _write_run(store, victim_template)
    path = run_dir / "run.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"format":1', b'"format":2', 1))
    with pytest.warns(RunjournalWarning, match=r"format 2.*upgrade"):
        record = runjournal.Store(store).run("victim")
    assert record.format == 2 and record.status == "completed"
    assert any("upgrade runjournal" in s.reason for s in record.skipped)
    assert_exact_values(record.history(), range(STEPS))
    with pytest.raises(UnsupportedFormatError, match="upgrade"):
        runjournal.start(store=store, run_id="victim", resume=True)
    counted.repetitions += 1


def test_a_store_of_a_newer_format_is_refused_with_a_clear_message(
    store: Path, victim_template: Path, capsys: pytest.CaptureFixture[str], counted: Any
) -> None:
    """A marker of format 2: Store(), start() and the CLI refuse, saying to upgrade; no write."""
    _write_run(store, victim_template)
    marker = store / "runjournal.json"
    marker.write_bytes(marker.read_bytes().replace(b'"format":1', b'"format":2'))
    before = sorted(p.as_posix() for p in store.rglob("*"))
    with pytest.raises(UnsupportedFormatError, match=r"format 2.*upgrade"):
        runjournal.Store(store)
    with pytest.raises(UnsupportedFormatError, match="upgrade"):
        runjournal.start(store=store)
    assert cli(["--store", str(store), "ls"]) == 1
    assert "upgrade runjournal" in capsys.readouterr().err
    assert sorted(p.as_posix() for p in store.rglob("*")) == before
    counted.repetitions += 1


def test_a_run_directory_with_unreadable_files_still_lists(
    store: Path, victim_template: Path, counted: Any
) -> None:
    """A directory in place of a file, or a file that cannot be opened, is a reported problem."""
    run_dir = _write_run(store, victim_template)
    (run_dir / "params.jsonl").unlink()
    (run_dir / "params.jsonl").mkdir()
    with pytest.warns(RunjournalWarning, match="params.jsonl"):
        record = load_run(run_dir, now=0.0)
    assert [s.reason for s in record.skipped] == ["cannot read the file: not a regular file"]
    assert record.status == "completed" and record.params == {}
    counted.repetitions += 1
