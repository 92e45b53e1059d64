"""Finding, creating and opening stores; run ids, names and run directories."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runjournal.errors import (
    NotAStoreError,
    RunExistsError,
    StoreError,
    UnsupportedFormatError,
)
from runjournal.format import FORMAT_VERSION
from runjournal.store import (
    create_run_dir,
    find_store,
    init_store,
    new_run_id,
    new_run_name,
    open_store,
    write_once,
)


def test_the_nearest_ancestor_store_is_found_like_git_finds_dot_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a subdirectory, the .runjournal of an ancestor is used."""
    project = tmp_path / "project"
    init_store(project / ".runjournal")
    deep = project / "src" / "train"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_store() == project / ".runjournal"


def test_without_any_store_the_working_directory_gets_one(tmp_path: Path) -> None:
    """No ancestor store: ./.runjournal is the answer (created on the first run)."""
    assert find_store() == tmp_path / ".runjournal"


def test_the_environment_variable_overrides_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RUNJOURNAL_STORE wins over an ancestor store; an explicit path wins over both."""
    init_store(tmp_path / ".runjournal")
    monkeypatch.setenv("RUNJOURNAL_STORE", str(tmp_path / "elsewhere"))
    assert find_store() == tmp_path / "elsewhere"
    assert find_store(tmp_path / "explicit") == tmp_path / "explicit"


def test_init_store_writes_the_marker_once_with_the_format_version(tmp_path: Path) -> None:
    """The marker holds the format version and is not rewritten by a second init."""
    root = init_store(tmp_path / "store")
    marker = root / "runjournal.json"
    first = marker.read_bytes()
    assert json.loads(first)["format"] == FORMAT_VERSION
    init_store(root)
    assert marker.read_bytes() == first
    assert (root / "runs").is_dir()


def test_a_non_empty_directory_that_is_not_a_store_is_never_written_into(tmp_path: Path) -> None:
    """A directory with someone's files and no marker is refused and left untouched."""
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("...")
    with pytest.raises(NotAStoreError, match="not empty and is not a runjournal store"):
        init_store(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["chapter1.tex"]
    with pytest.raises(NotAStoreError):
        open_store(foreign)


def test_a_store_of_a_newer_format_is_refused_with_an_upgrade_hint(tmp_path: Path) -> None:
    """Readers and writers refuse a newer major format rather than misread it."""
    root = tmp_path / "future"
    root.mkdir()
    (root / "runjournal.json").write_text(json.dumps({"format": FORMAT_VERSION + 1}))
    with pytest.raises(UnsupportedFormatError, match="upgrade runjournal") as raised:
        open_store(root)
    assert raised.value.found == FORMAT_VERSION + 1
    with pytest.raises(UnsupportedFormatError):
        init_store(root)


def test_opening_a_missing_store_says_how_to_create_one(tmp_path: Path) -> None:
    """Reading never creates a store; the error says what to do."""
    with pytest.raises(StoreError, match="start a run to create one"):
        open_store(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_generated_run_ids_sort_by_time_and_differ(tmp_path: Path) -> None:
    """Ids start with the UTC time, so sorting them sorts runs by start."""
    early, late = new_run_id(1_000_000_000.0), new_run_id(2_000_000_000.0)
    assert early < late
    assert len({new_run_id() for _ in range(1000)}) == 1000


def test_run_names_are_readable_words_and_a_number() -> None:
    """Names look like brisk-heron-7."""
    adjective, noun, number = new_run_name().split("-")
    assert adjective.isalpha() and noun.isalpha() and number.isdigit()


def test_create_run_dir_refuses_an_existing_explicit_id(tmp_path: Path) -> None:
    """An explicit run id that exists is an error with advice, never a shared directory."""
    root = init_store(tmp_path / "store")
    run_id, path = create_run_dir(root, "exp-1")
    assert run_id == "exp-1" and path.is_dir()
    with pytest.raises(RunExistsError, match="resume=True"):
        create_run_dir(root, "exp-1")


def test_create_run_dir_draws_a_new_id_on_a_collision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a generated id is taken, mkdir fails and another id is drawn."""
    root = init_store(tmp_path / "store")
    ids = iter(["20260101-000000-aaaaaaaa", "20260101-000000-aaaaaaaa", "20260101-000000-bbbbbbbb"])
    monkeypatch.setattr("runjournal.store.new_run_id", lambda: next(ids))
    first, _ = create_run_dir(root)
    second, _ = create_run_dir(root)
    assert (first, second) == ("20260101-000000-aaaaaaaa", "20260101-000000-bbbbbbbb")


def test_write_once_never_overwrites_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """A write-once file keeps its first content; temporary names are cleaned up."""
    target = tmp_path / "environment.json"
    assert write_once(target, b"first\n")
    assert not write_once(target, b"second\n", exist_ok=True)
    with pytest.raises(FileExistsError):
        write_once(target, b"third\n")
    assert target.read_bytes() == b"first\n"
    assert os.listdir(tmp_path) == ["environment.json"]


def test_write_once_falls_back_to_exclusive_create_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a file system where link() fails, the file is created exclusively instead."""

    def no_links(source: object, target: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "git.json"
    assert write_once(target, b"{}\n")
    assert not write_once(target, b"[]\n", exist_ok=True)
    assert target.read_bytes() == b"{}\n"
