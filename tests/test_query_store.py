"""Store: finding runs, filtering them, resolving references, history rows and close."""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from _runfiles import OTHER_HOST, T0, StoreFiles
from runjournal._process import hostname
from runjournal.errors import (
    AmbiguousRunError,
    FilterError,
    InvalidArgumentError,
    NotAStoreError,
    RunInProgressError,
    RunjournalWarning,
    RunNotFoundError,
    StoreError,
)
from runjournal.query import RunRecord, Store


@pytest.fixture
def files(tmp_path: Path) -> StoreFiles:
    return StoreFiles(tmp_path / "store")


@pytest.fixture
def store(files: StoreFiles) -> Store:
    return Store(files.root)


# ------------------------------------------------------------ opening stores


def test_reading_a_missing_store_raises_and_creates_nothing(tmp_path: Path) -> None:
    """Store() on a path without a store raises StoreError and never creates one."""
    with pytest.raises(StoreError, match="no runjournal store"):
        Store(tmp_path / "nothing-here")
    assert not (tmp_path / "nothing-here").exists()


def test_a_directory_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    """A non-empty directory without runjournal.json is not a store."""
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NotAStoreError):
        Store(tmp_path)


def test_store_is_found_through_the_environment(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a path, RUNJOURNAL_STORE names the store."""
    monkeypatch.setenv("RUNJOURNAL_STORE", str(files.root))
    assert Store().path == files.root


# ------------------------------------------------------------------ listing


def test_runs_are_sorted_oldest_first_then_by_id(files: StoreFiles, store: Store) -> None:
    """runs() orders by start time, and by id for equal start times."""
    files.ended_run("c", start=T0 + 10)
    files.ended_run("b", start=T0)
    files.ended_run("a", start=T0)
    assert [run.id for run in store.runs()] == ["a", "b", "c"]


def test_entries_of_runs_that_are_not_run_directories_are_ignored(
    files: StoreFiles, store: Store
) -> None:
    """Files, temporary and invalid names under runs/ are not runs."""
    files.ended_run("r1")
    (files.root / "runs" / "README").write_text("not a run")
    (files.root / "runs" / ".tmp-r2").mkdir()
    (files.root / "runs" / "-bad-name").mkdir()
    assert [run.id for run in store.runs()] == ["r1"]


def test_filters_by_experiment_status_and_tags(files: StoreFiles, store: Store) -> None:
    """experiment, status (one or several) and tags (all must match) select runs."""
    files.run("a").start(experiment="mnist").end("completed").event(
        "tags", tags={"m": "vit", "x": 1}
    )
    files.run("b").start(experiment="mnist").end("failed").event("tags", tags={"m": "vit"})
    files.run("c").start(experiment="cifar").end("completed")
    assert [r.id for r in store.runs(experiment="mnist")] == ["a", "b"]
    assert [r.id for r in store.runs(status="failed")] == ["b"]
    assert [r.id for r in store.runs(status={"failed", "completed"})] == ["a", "b", "c"]
    assert [r.id for r in store.runs(tags={"m": "vit", "x": 1})] == ["a"]
    assert [r.id for r in store.runs(tags={"m": None})] == []


def test_where_takes_a_function_of_the_record(files: StoreFiles, store: Store) -> None:
    """where= keeps the runs for which the function returns true."""
    files.ended_run("a").params({"lr": 0.1})
    files.ended_run("b").params({"lr": 0.01})
    assert [r.id for r in store.runs(where=lambda run: run.params["lr"] < 0.05)] == ["b"]


def test_where_takes_a_filter_expression(files: StoreFiles, store: Store) -> None:
    """where= also takes a filter expression; one that does not parse raises FilterError."""
    files.ended_run("a").params({"lr": 0.1})
    files.ended_run("b").params({"lr": 0.01})
    assert [r.id for r in store.runs(where="params.lr < 0.05")] == ["b"]
    with pytest.raises(FilterError, match="found the end at column 12"):
        store.runs(where="params.lr <")


def test_an_unknown_status_filter_is_refused(store: Store) -> None:
    """A misspelt status raises instead of silently matching nothing."""
    with pytest.raises(InvalidArgumentError, match="unknown status finished") as raised:
        store.runs(status="finished")
    assert raised.value.argument == "status"


# ------------------------------------------------------- listing reads little


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the run files opened by any means of Python (io.open, open, os.open).

    Files of the query cache (under .cache/) are left out: they are not run files.
    """
    names: list[str] = []
    real_io_open, real_os_open = io.open, os.open

    def note(path: object) -> None:
        if isinstance(path, int):
            names.append("<fd>")
        elif ".cache" not in Path(os.fsdecode(path)).parts:  # type: ignore[arg-type]
            names.append(Path(os.fsdecode(path)).name)  # type: ignore[arg-type]

    def spy_io_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        note(file)
        return real_io_open(file, *args, **kwargs)

    def spy_os_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        note(path)
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(io, "open", spy_io_open)
    monkeypatch.setattr(builtins, "open", spy_io_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    yield names


def test_listing_runs_never_opens_metrics_files(
    files: StoreFiles, store: Store, opened: list[str]
) -> None:
    """runs() and run() read run.jsonl and params.jsonl only; metrics wait until asked for."""
    for run_id in ("a", "b"):
        run = files.ended_run(run_id).params({"lr": 0.1}).metrics(0, {"loss": 1.0})
        run.metrics(0, {"throughput": 2.0}, file_name="metrics.rank1.jsonl")
    opened.clear()  # forget the files written above
    records = store.runs()
    store.run("a")
    assert [run.status for run in records] == ["completed", "completed"]
    assert set(opened) == {"run.jsonl", "params.jsonl"}
    # The spy does see metrics files once they are asked for.
    assert records[0].metrics == {"loss": 1.0, "throughput": 2.0}
    assert {"metrics.jsonl", "metrics.rank1.jsonl"} <= set(opened)


# ------------------------------------------------------------ references


def test_run_resolves_an_exact_id_a_unique_prefix_and_a_unique_name(
    files: StoreFiles, store: Store
) -> None:
    """A reference is an id, a unique id prefix or a unique name."""
    files.ended_run("20261123-144846-9f3a0c1e", name="brisk-heron-7")
    files.ended_run("20261123-150000-00000000", name="calm-otter-1")
    assert store.run("20261123-144846-9f3a0c1e").name == "brisk-heron-7"
    assert store.run("20261123-1448").name == "brisk-heron-7"
    assert store.run("calm-otter-1").id == "20261123-150000-00000000"


def test_an_exact_id_wins_over_a_longer_id_it_prefixes(files: StoreFiles, store: Store) -> None:
    """An id that is also the prefix of another id names itself."""
    files.ended_run("run-1")
    files.ended_run("run-10")
    assert store.run("run-1").id == "run-1"


def test_an_ambiguous_prefix_lists_the_matching_ids(files: StoreFiles, store: Store) -> None:
    """A prefix of several ids raises AmbiguousRunError with their ids in .matches."""
    files.ended_run("20261123-a")
    files.ended_run("20261123-b")
    with pytest.raises(AmbiguousRunError, match="matches 2 runs") as raised:
        store.run("20261123")
    assert (raised.value.matches, raised.value.ref) == (["20261123-a", "20261123-b"], "20261123")


def test_a_name_shared_by_two_runs_is_ambiguous(files: StoreFiles, store: Store) -> None:
    """Names need not be unique; a shared one does not pick a run at random."""
    files.ended_run("r1", name="same")
    files.ended_run("r2", name="same")
    with pytest.raises(AmbiguousRunError) as raised:
        store.run("same")
    assert raised.value.matches == ["r1", "r2"]


def test_a_reference_matching_nothing_is_not_found(files: StoreFiles, store: Store) -> None:
    """RunNotFoundError carries the reference and does not list the store's runs."""
    files.ended_run("r1", name="kept")
    with pytest.raises(RunNotFoundError, match="'nope'") as raised:
        store.run("nope")
    assert raised.value.ref == "nope" and "r1" not in str(raised.value)
    with pytest.raises(InvalidArgumentError):
        store.run("")


# -------------------------------------------------------------- history rows


def test_metrics_gives_rows_of_several_runs_with_their_run_id(
    files: StoreFiles, store: Store
) -> None:
    """Store.metrics adds run_id to the rows and takes ids, names or records."""
    files.ended_run("a", name="alpha").metrics(0, {"loss": 1.0, "lr": 0.1})
    files.ended_run("b").metrics(0, {"loss": 2.0})
    rows = store.metrics(keys="loss")
    assert [(r["run_id"], r["value"]) for r in rows] == [("a", 1.0), ("b", 2.0)]
    assert [r["run_id"] for r in store.metrics(runs=["alpha"])] == ["a", "a"]
    record: RunRecord = store.run("b")
    assert store.metrics(runs=record, raw=True)[0] == {
        "run_id": "b",
        "step": 0,
        "time": T0,
        "key": "loss",
        "value": 2.0,
        "segment": 0,
    }


def _sample(files: StoreFiles, run_id: str, file_name: str, *values: float) -> None:
    for index, value in enumerate(values):
        record = {"time": T0 + index, "seg": 0, "s": {"proc/cpu_percent": value}}
        files.run(run_id).append(file_name, orjson.dumps(record) + b"\n")


def test_metrics_and_metrics_to_pandas_reach_system_samples_like_load_metrics(
    files: StoreFiles, store: Store
) -> None:
    """Store.metrics and metrics_to_pandas take system=True and give what load_metrics gives."""
    from runjournal import load_metrics
    from runjournal.query._pandas import metrics_frame

    files.ended_run("a").metrics(0, {"loss": 1.0}).metrics(1, {"loss": 0.5})
    _sample(files, "a", "system.jsonl", 10.0, 20.0)
    _sample(files, "a", "system.rank1.jsonl", 30.0)
    files.ended_run("b").metrics(0, {"loss": 2.0})
    _sample(files, "b", "system.jsonl", 40.0)
    assert all(not r["key"].startswith("system/") for r in store.metrics())
    rows = store.metrics(system=True)
    assert [(r["run_id"], r["key"], r["step"], r["value"], r.get("writer", "-")) for r in rows] == [
        ("a", "loss", 0, 1.0, None),
        ("a", "loss", 1, 0.5, None),
        ("a", "system/proc/cpu_percent", 0, 10.0, None),
        ("a", "system/proc/cpu_percent", 1, 20.0, None),
        ("a", "system/proc/cpu_percent", 0, 30.0, "rank1"),
        ("b", "loss", 0, 2.0, "-"),  # one writer in run b: no writer, as for metrics
        ("b", "system/proc/cpu_percent", 0, 40.0, "-"),
    ]
    assert store.metrics(keys="system/proc/cpu_percent", steps=(1, 1), system=True) == [
        {"run_id": "a", "step": 1, "time": T0 + 1, "key": "system/proc/cpu_percent", "value": 20.0,
         "writer": None},
    ]  # fmt: skip
    frame = store.metrics_to_pandas(system=True)
    assert frame.equals(load_metrics(files.root, system=True))
    assert frame.equals(metrics_frame(rows))
    labels = frame["writer"].fillna("main").tolist()
    assert labels == ["main"] * 4 + ["rank1"] + ["main"] * 2
    with pytest.raises(InvalidArgumentError, match="wide"):
        store.metrics_to_pandas(system=True, wide=True)


# ------------------------------------------------------------------- close


def read_events(files: StoreFiles, run_id: str) -> list[dict]:
    data = (files.root / "runs" / run_id / "run.jsonl").read_bytes()
    return [orjson.loads(line) for line in data.splitlines() if line.startswith(b"{")]


def test_close_appends_an_end_event_in_the_last_segment(files: StoreFiles, store: Store) -> None:
    """close() records status, last segment and who closed it; the run reads as ended."""
    files.run("r1").start(host=OTHER_HOST).resume(1, host=OTHER_HOST)
    record = store.close("r1")
    end = read_events(files, "r1")[-1]
    assert (end["event"], end["seg"], end["status"]) == ("end", 1, "crashed")
    assert end["closed_by"] == {"host": hostname(), "pid": os.getpid()}
    assert (record.status, record.end_time is not None) == ("crashed", True)


def test_close_records_the_status_asked_for(files: StoreFiles, store: Store) -> None:
    """Any status an end event may record can be given."""
    files.run("r1").start()
    assert store.close("r1", status="killed").status == "killed"


def test_close_refuses_a_status_that_is_not_recorded(files: StoreFiles, store: Store) -> None:
    """running, stale and typos are not statuses an end event records."""
    files.run("r1").start()
    with pytest.raises(InvalidArgumentError, match="cannot close a run as 'running'"):
        store.close("r1", status="running")


def test_close_refuses_a_run_that_has_ended(files: StoreFiles, store: Store) -> None:
    """An ended run has nothing to close and its file is left alone."""
    files.ended_run("r1")
    before = (files.root / "runs" / "r1" / "run.jsonl").read_bytes()
    with pytest.raises(InvalidArgumentError, match="ended already"):
        store.close("r1")
    assert (files.root / "runs" / "r1" / "run.jsonl").read_bytes() == before


def test_close_refuses_a_run_alive_on_this_host(files: StoreFiles, store: Store) -> None:
    """A run whose process lives here is running: closing it would add a second writer."""
    files.run("r1").start_here()
    with pytest.raises(RunInProgressError, match="still running on this host"):
        store.close("r1")


def test_close_after_a_torn_line_starts_on_a_new_line(files: StoreFiles, store: Store) -> None:
    """The end event never merges with a torn last line: a newline goes first."""
    files.run("r1").start().append("run.jsonl", b'{"event": "heartbeat", "ti')
    with pytest.warns(RunjournalWarning, match="skipped 1"):
        record = store.close("r1")
    data = (files.root / "runs" / "r1" / "run.jsonl").read_bytes()
    assert data.endswith(b"\n") and b'"ti\n{"event":"end"' in data
    assert record.status == "crashed"


def test_close_dates_the_end_at_the_last_sign_of_life(files: StoreFiles, store: Store) -> None:
    """The end of a closed run is its last metric or event, so its duration is real."""
    files.run("r1").start(time=T0, host=OTHER_HOST).metrics(0, {"loss": 1.0}, time=T0 + 30)
    files.run("r1").event("note", time=T0 + 10, text="still alive")
    record = store.close("r1")
    end = read_events(files, "r1")[-1]
    assert end["time"] == T0 + 30 and end["closed_at"] > T0 + 30
    assert record.duration == 30
