"""RunRecord.environment, .command, .git and .data, read lazily and tolerantly (docs/format.md)."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import pytest

from _runfiles import DATA_EXAMPLE, ENVIRONMENT_EXAMPLE, GIT_EXAMPLE, T0, StoreFiles
from runjournal.errors import RunjournalWarning
from runjournal.query import DataRecord, Environment, GitState, RunRecord, Store
from runjournal.query._json import dumps_tagged

FORMAT_DOC = Path(__file__).parent.parent / "docs" / "format.md"


@pytest.fixture
def files(tmp_path: Path) -> StoreFiles:
    return StoreFiles(tmp_path / "store")


def load(files: StoreFiles, ref: str = "r1") -> RunRecord:
    return Store(files.root).run(ref)


def problems(record: RunRecord) -> list[str]:
    return [str(problem) for problem in record.skipped]


# ------------------------------------------------------------- the format doc


def _doc_examples() -> list[dict]:
    blocks = re.findall(r"```json\n(.*?)```", FORMAT_DOC.read_text(encoding="utf-8"), re.DOTALL)
    return [json.loads(block) for block in blocks]


def test_the_format_doc_examples_read_without_a_problem() -> None:
    """The environment, git and data examples of docs/format.md fit the models, every field read."""
    examples = _doc_examples()
    environments = [e for e in examples if "captured_at" in e]
    gits = [e for e in examples if "commit" in e and "remotes" in e]
    data = [e for e in examples if "hash" in e and "name" in e and "role" in e]
    assert environments and gits and data
    for example in environments:
        environment = Environment.model_validate(example)
        assert environment.model_dump(exclude_none=True).keys() >= example.keys() - {"notebook"}
    for example in gits:
        state = GitState.model_validate(example)
        assert state.model_dump(exclude_none=True).keys() == example.keys()
    for example in data:
        record = DataRecord.model_validate(example)
        assert record.digest == f"{example['algo']}:{example['hash']}"


def test_the_test_builders_write_the_format_doc_examples() -> None:
    """tests/_runfiles.py writes what docs/format.md shows (clean git state aside)."""
    examples = _doc_examples()
    assert ENVIRONMENT_EXAMPLE in examples
    assert DATA_EXAMPLE in examples
    doc_git = next(e for e in examples if "remotes" in e)
    assert {k: v for k, v in doc_git.items() if k not in ("dirty", "patch")} == {
        k: v for k, v in GIT_EXAMPLE.items() if k != "dirty"
    }


# ---------------------------------------------------------------- environment


def test_environment_and_command_come_from_environment_json(files: StoreFiles) -> None:
    """Every part of environment.json is a typed field; command is its command part."""
    files.ended_run("r1").environment()
    record = load(files)
    environment = record.environment
    assert environment is not None
    assert environment.python.version == "3.11.7"
    assert environment.cpu.logical_cores == 128 and environment.cpu.model == "AMD EPYC 7763"
    assert environment.memory.total_bytes == 540000000000
    assert [gpu.name for gpu in environment.gpus] == ["NVIDIA A100-SXM4-80GB"]
    assert environment.packages == {"numpy": "2.4.6", "torch": "2.13.0"}
    assert environment.scheduler.job_id == "4242"
    assert environment.env["HF_TOKEN"] == "<redacted>"
    assert environment.capture_errors[0].part == "gpus"
    assert record.command.argv == ["train.py", "--lr", "0.1"]
    assert record.command.cwd == "/home/ada/proj"
    assert record.skipped == []


def test_unknown_fields_are_ignored_and_missing_parts_are_none(files: StoreFiles) -> None:
    """A newer writer's extra fields are ignored; parts turned off read as None."""
    changes = {"cpu": None, "gpus": None, "packages": None, "quantum": {"qubits": 7}}
    files.ended_run("r1").environment({**changes, "python": {"jit": True}})
    environment = load(files).environment
    assert environment.cpu is None and environment.gpus is None and environment.packages is None
    assert environment.python.version == "3.11.7"
    assert not hasattr(environment, "quantum")


def test_numbers_where_strings_are_expected_read_as_text(files: StoreFiles) -> None:
    """A scheduler id written as a number is still read (as its text); extra ids are kept."""
    files.ended_run("r1").environment({"scheduler": {"job_id": 4242, "pbs_queue": "gpu"}})
    scheduler = load(files).environment.scheduler
    assert scheduler.job_id == "4242"
    assert scheduler.model_extra == {"pbs_queue": "gpu"}


def test_the_latest_segments_environment_file_wins(files: StoreFiles) -> None:
    """environment.<seg>.json of the latest resume is read; else environment.json."""
    run = files.ended_run("r1").environment()
    run.environment({"host": {"hostname": "node017"}, "command": {"argv": ["train.py"]}}, seg=2)
    run.environment({"host": {"hostname": "node011"}}, seg=1)
    run.write(".tmp-environment.3.json", b"{}")  # being written: never read
    record = load(files)
    assert record.environment.seg == 2
    assert record.environment.host.hostname == "node017"
    assert record.command.argv == ["train.py"]


def test_a_resumed_run_without_environment_json_reads_its_segment_file(files: StoreFiles) -> None:
    """Only a segment file (capture off at the first start): it is read."""
    files.ended_run("r1").environment({"python": {"version": "3.12.1"}}, seg=1)
    assert load(files).environment.python.version == "3.12.1"


# ---------------------------------------------------------------- git


def test_git_state_and_the_patch_read_lazily(files: StoreFiles) -> None:
    """git.json is a GitState; the patch text and path are there when the tree was dirty."""
    patch = b"diff --git a/train.py b/train.py\n-lr = 0.1\n+lr = 0.2\n"
    files.ended_run("r1").git(patch=patch)
    files.ended_run("r2").git()
    dirty, clean = load(files, "r1"), load(files, "r2")
    assert dirty.git.commit == GIT_EXAMPLE["commit"] and dirty.git.branch == "main"
    assert dirty.git.dirty is True and dirty.git.patch.bytes == len(patch)
    assert dirty.git_patch() == patch.decode()
    assert dirty.git_patch_path == dirty.dir / "git.patch"
    assert clean.git.dirty is False and clean.git_patch() is None and clean.git_patch_path is None


def test_a_patch_changed_after_the_run_is_read_with_a_problem(files: StoreFiles) -> None:
    """A patch whose sha256 is not the recorded one is reported, once."""
    run = files.ended_run("r1").git(patch=b"+a\n")
    run.write("git.patch", b"+b\n")
    record = load(files)
    with pytest.warns(RunjournalWarning, match="runs/r1/git.patch: its SHA-256 differs"):
        assert record.git_patch() == "+b\n"
    assert record.git_patch() == "+b\n"  # no second warning (it would fail the test)
    assert problems(record)[-1].startswith("git.patch:0: its SHA-256 differs")


def test_a_missing_or_truncated_patch_cannot_be_applied(files: StoreFiles) -> None:
    """A recorded patch that is gone reads as None with a problem; a truncated one has no path."""
    files.ended_run("r1").git(patch=b"+a\n")
    (files.run("r1").path / "git.patch").unlink()
    record = load(files)
    with pytest.warns(RunjournalWarning, match="runs/r1/git.patch: recorded in git.json but"):
        assert record.git_patch() is None
    files.ended_run("r2").git({"dirty": True, "patch": {"file": "git.patch", "truncated": True}})
    assert load(files, "r2").git_patch_path is None


def test_the_latest_segments_git_state_and_patch_win(files: StoreFiles) -> None:
    """A resume's git.<seg>.json (and the patch it names) is read, not the start's."""
    run = files.ended_run("r1").git(patch=b"+start\n")
    resumed = dict(GIT_EXAMPLE, commit="2" * 40, dirty=True)
    resumed["patch"] = {"file": "git.1.patch", "bytes": 9, "truncated": False}
    run.write("git.1.json", json.dumps(resumed).encode()).write("git.1.patch", b"+resumed\n")
    record = load(files)
    assert record.git.commit == "2" * 40
    assert record.git_patch() == "+resumed\n"
    assert record.git_patch_path == run.path / "git.1.patch"


def test_a_clean_trees_empty_patch_is_no_patch(files: StoreFiles) -> None:
    """The capture writes an empty git.patch for a clean tree: nothing to apply."""
    clean = {"dirty": False, "patch": {"file": "git.patch", "bytes": 0, "truncated": False}}
    files.ended_run("r1").git(clean).write("git.patch", b"")
    record = load(files)
    assert not record.git.has_patch and record.git_patch_path is None


def test_git_states_without_a_repository(files: StoreFiles) -> None:
    """not_a_repo and no_git states read with their status and no commit."""
    files.ended_run("r1").write("git.json", b'{"format": 1, "status": "not_a_repo"}')
    git = load(files).git
    assert (git.status, git.commit, git.has_patch) == ("not_a_repo", None, False)


def test_a_patch_name_that_is_a_path_is_refused(files: StoreFiles) -> None:
    """git.json cannot point the reader outside the run directory."""
    files.ended_run("r1").git({"dirty": True, "patch": {"file": "../../../etc/passwd"}})
    record = load(files)
    with pytest.warns(RunjournalWarning, match="is not a plain name"):
        assert record.git_patch() is None
    assert record.git_patch_path is None


# ---------------------------------------------------------------- data


def test_data_keeps_every_record_and_data_by_name_the_latest(files: StoreFiles) -> None:
    """Two records of one name: both in data, the later one in data_by_name."""
    run = files.ended_run("r1").data().data(hash="ab" * 32, seg=1, time=T0 + 9)
    run.data(name="labels", kind="file", path="/data/labels.csv", hash="cd" * 32)
    record = load(files)
    assert [data.name for data in record.data] == ["train", "train", "labels"]
    assert record.data_by_name["train"].hash == "ab" * 32
    assert record.data_by_name["train"].time.timestamp() == T0 + 9
    assert list(record.data_by_name) == ["train", "labels"]
    assert record.column("data.train.hash") == "ab" * 32
    assert record.column("data.labels.path") == "/data/labels.csv"
    assert record.column("data.nope.hash") is None


def test_bad_data_lines_are_skipped_and_reported(files: StoreFiles) -> None:
    """A torn line and a line without a name are skipped; a bad field is dropped."""
    run = files.ended_run("r1").data(size="huge")
    run.append("data.jsonl", b'{"hash": "ab"}\n')
    run.append("data.jsonl", b'{"name": "val", "ha')
    record = load(files)
    with pytest.warns(RunjournalWarning, match=r"runs/r1/data.jsonl: skipped 3 unreadable lines"):
        data = record.data
    assert [(d.name, d.size) for d in data] == [("train", None)]
    assert problems(record) == [
        "data.jsonl:3: incomplete last line",
        "data.jsonl:1: field 'size' is not valid (int_parsing); ignored",
        "data.jsonl:2: required field name is missing or not valid",
    ]


# ----------------------------------------------------------- damaged files


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"format": 1, "python": {"vers', "not valid JSON; the file was ignored"),
        (b"[1, 2]", "not a JSON object; the file was ignored"),
        (b"\x00\x00\x00", "not valid JSON; the file was ignored"),
    ],
)
def test_a_damaged_environment_file_reads_as_none_with_a_warning(
    files: StoreFiles, content: bytes, reason: str
) -> None:
    """A damaged file degrades to None with a problem entry and one warning naming it."""
    files.ended_run("r1").write("environment.json", content)
    record = load(files)
    with pytest.warns(RunjournalWarning, match=f"runs/r1/environment.json: {re.escape(reason)}"):
        assert record.environment is None
    assert record.command is None  # read once: no second warning
    assert problems(record) == [f"environment.json:0: {reason}"]


def test_a_directory_in_place_of_git_json_is_a_problem(files: StoreFiles) -> None:
    """An unreadable file (here a directory) is reported, never raised."""
    run = files.ended_run("r1")
    (run.path / "git.json").mkdir()
    record = load(files)
    with pytest.warns(RunjournalWarning, match="runs/r1/git.json: cannot read the file"):
        assert record.git is None


def test_a_field_that_does_not_fit_drops_only_that_part(files: StoreFiles) -> None:
    """cpu with a non-numeric core count reads as None; every other part is kept."""
    files.ended_run("r1").environment({"cpu": {"logical_cores": "many"}, "env": {"X": [1]}})
    record = load(files)
    with pytest.warns(RunjournalWarning, match="field 'cpu' is not valid"):
        environment = record.environment
    assert environment.cpu is None and environment.env is None
    assert environment.python.version == "3.11.7"
    assert len(record.skipped) == 2


def test_a_newer_format_is_read_as_far_as_known_with_a_warning(files: StoreFiles) -> None:
    """environment.json of format 2: the known fields are read, and the user told to upgrade."""
    files.ended_run("r1").environment({"format": 2})
    record = load(files)
    with pytest.warns(RunjournalWarning, match="newer than the format 1"):
        assert record.environment.python.version == "3.11.7"


# ---------------------------------------------------------------- laziness


def test_listing_runs_reads_no_captured_file(files: StoreFiles) -> None:
    """Store.runs() and sorting by a param never open environment.json, git.json or data.jsonl."""
    run = files.ended_run("r1")
    for name in ("environment.json", "git.json", "data.jsonl"):
        run.write(name, b"garbage")  # would warn (an error in the tests) if read
    records = Store(files.root).runs()
    assert [record.id for record in records] == ["r1"]
    assert records[0].column("params.lr") is None


def test_load_runs_reads_git_and_data_but_not_the_environment(files: StoreFiles) -> None:
    """The run table needs git.json and data.jsonl only; environment.json stays unread."""
    pytest.importorskip("pandas")
    from runjournal.query import load_runs

    files.ended_run("r1").write("environment.json", b"garbage").git().data()
    frame = load_runs(files.root)
    assert frame["git.commit"][0] == GIT_EXAMPLE["commit"]


def test_each_file_is_read_once(files: StoreFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeated use of environment, command, git and data reads each file once."""
    from runjournal.query import _records

    files.ended_run("r1").environment().git().data()
    record = load(files)
    opened: list[str] = []
    real = _records.read_json_object

    def counting(path: Path):
        opened.append(path.name)
        return real(path)

    monkeypatch.setattr(_records, "read_json_object", counting)
    for _ in range(3):
        _ = record.environment, record.command, record.git, record.data
    assert sorted(opened) == ["environment.json", "git.json"]


def test_a_record_built_by_hand_has_no_captured_parts() -> None:
    """Without a run directory there is nothing to read."""
    import datetime as dt

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    record = RunRecord(id="r1", status="completed", start_time=start)
    assert (record.environment, record.command, record.git, record.data) == (None, None, None, [])
    assert record.git_patch() is None and record.dir is None


# ----------------------------------------------------------- dumps and frames


def test_model_dump_has_the_captured_parts_and_their_problems(files: StoreFiles) -> None:
    """show --json material: environment, command, git, data, and the problems met reading them."""
    files.ended_run("r1").environment().git().data().append("data.jsonl", b"torn")
    record = load(files)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dumped = json.loads(dumps_tagged(record.model_dump()))
    assert len(caught) == 1
    assert dumped["environment"]["packages"] == {"numpy": "2.4.6", "torch": "2.13.0"}
    assert dumped["command"]["argv"] == ["train.py", "--lr", "0.1"]
    assert dumped["git"]["branch"] == "main"
    assert dumped["data"][0]["name"] == "train"
    torn = {"file": "data.jsonl", "line": 2, "reason": "incomplete last line"}
    assert dumped["skipped"] == [torn]


def test_a_dump_without_the_environment_does_not_read_it(files: StoreFiles) -> None:
    """model_dump(exclude={"environment"}) leaves environment.json unread (ls --json)."""
    files.ended_run("r1").write("environment.json", b"garbage").git()
    dumped = load(files).model_dump(exclude={"environment", "command"})
    assert "environment" not in dumped and dumped["git"]["commit"] == GIT_EXAMPLE["commit"]


def test_load_runs_has_git_data_and_host_columns(files: StoreFiles) -> None:
    """git.commit, git.branch, git.dirty after host; data.<name>.hash last, latest record wins."""
    pd = pytest.importorskip("pandas")
    from runjournal.query import load_runs

    files.ended_run("r1").params({"lr": 0.1}).git(patch=b"+x\n").data().data(hash="ab" * 32)
    files.ended_run("r2", start=T0 + 1).git({"branch": "exp", "commit": "1" * 40})
    files.ended_run("r3", start=T0 + 2)
    frame = load_runs(files.root)
    assert list(frame.columns)[7:] == [
        "host",
        "git.commit",
        "git.branch",
        "git.dirty",
        "params.lr",
        "data.train.hash",
    ]
    assert frame["git.branch"].tolist()[:2] == ["main", "exp"] and pd.isna(frame["git.branch"][2])
    assert str(frame["git.dirty"].dtype) == "boolean"
    assert frame["git.dirty"].tolist()[:2] == [True, False] and pd.isna(frame["git.dirty"][2])
    assert frame["data.train.hash"][0] == "ab" * 32 and pd.isna(frame["data.train.hash"][1])
    assert frame["host"][0] == "node-far-away.example"
    assert frame.groupby("git.branch")["params.lr"].count().to_dict() == {"exp": 0, "main": 1}


def test_git_columns_of_the_run_table(files: StoreFiles) -> None:
    """RunRecord.column knows git.commit, git.branch and git.dirty."""
    files.ended_run("r1").git()
    record = load(files)
    assert record.column("git.branch") == "main" and record.column("git.dirty") is False
    assert record.column("git.commit") == GIT_EXAMPLE["commit"]


def test_a_store_moved_elsewhere_still_finds_the_patch(files: StoreFiles, tmp_path: Path) -> None:
    """Nothing absolute is kept: a moved store reads its patch from its new place."""
    files.ended_run("r1").git(patch=b"+x\n")
    moved = tmp_path / "moved"
    os.rename(files.root, moved)
    record = Store(moved).run("r1")
    assert record.git_patch() == "+x\n" and record.git_patch_path.is_relative_to(moved)
