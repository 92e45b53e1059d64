"""attach(): extra writers of one run, each appending to its own ``metrics.<writer>.jsonl``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

import runjournal
from _children import TIMEOUT, child_env
from runjournal._attach import attach
from runjournal.errors import (
    InvalidArgumentError,
    RunError,
    RunjournalWarning,
    RunNotFoundError,
    WriterInUseError,
)

STEPS = 10_000

WORKER = """
import sys, runjournal
from runjournal._attach import attach
run = attach(sys.argv[1], writer=sys.argv[2])
for step in range(int(sys.argv[3])):
    run.log({"loss": step / 7, "rank": int(sys.argv[2][1:])}, step=step)
run.end()
"""

HOLDER = """
import sys, runjournal
from runjournal._attach import attach
run = attach(sys.argv[1], writer=sys.argv[2])
print("attached", flush=True)
sys.stdin.readline()
run.end()
"""


def _python(script: str, *args: str, store: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=child_env(store),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _events(run: runjournal.Run) -> bytes:
    assert run.dir is not None
    return (run.dir / "run.jsonl").read_bytes()


def test_four_processes_attached_to_one_run_load_exactly_their_rows(tmp_path: Path) -> None:
    store = tmp_path / "store"
    main = runjournal.start("multi", store=store)
    workers = [_python(WORKER, main.id, f"w{n}", str(STEPS), store=store) for n in range(4)]
    outcomes = [worker.communicate(timeout=TIMEOUT) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, outcomes
    main.end()

    frame = runjournal.load_metrics(store, runs=[main.id], keys="loss")
    assert len(frame) == 4 * STEPS
    assert frame.groupby("writer").size().to_dict() == {f"w{n}": STEPS for n in range(4)}
    ranks = runjournal.load_metrics(store, runs=[main.id], keys="rank")
    assert (ranks["value"] == ranks["writer"].str[1:].astype(int)).all()
    assert sorted(p.name for p in main.dir.glob("metrics.*.jsonl")) == [  # type: ignore[union-attr]
        f"metrics.w{n}.jsonl" for n in range(4)
    ]
    assert runjournal.Store(store).run(main.id).status == "completed"


def test_attached_writers_write_no_events_and_leave_the_status_to_the_main_writer() -> None:
    main = runjournal.start()
    before = _events(main)
    with attach(main.id, writer="eval") as extra:
        extra.log({"acc": 0.5})
    assert _events(main) == before
    assert runjournal.Store().run(main.id).status == "running"
    main.end()
    assert runjournal.Store().run(main.id).status == "completed"


def test_a_duplicate_writer_name_in_this_process_is_refused() -> None:
    with runjournal.start() as main:
        first = attach(main.id, writer="rank1")
        with pytest.raises(WriterInUseError, match="rank1") as refused:
            attach(main.id, writer="rank1")
        assert refused.value.writer == "rank1"
        first.end()
        attach(main.id, writer="rank1").end()  # released by end(): the name is free again


def test_a_writer_name_held_by_a_live_process_is_refused_until_it_exits(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with runjournal.start(store=store) as main:
        holder = _python(HOLDER, main.id, "rank2", store=store)
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "attached", holder.stderr
        with pytest.raises(WriterInUseError, match=f"pid {holder.pid}"):
            attach(main.id, store=store, writer="rank2")
        holder.communicate("\n", timeout=TIMEOUT)
        attach(main.id, store=store, writer="rank2").end()  # its holder is dead


def test_reattaching_continues_the_steps_of_the_writer() -> None:
    with runjournal.start() as main:
        with attach(main.id, writer="w") as extra:
            extra.log({"x": 1}, step=41)
        with attach(main.id, writer="w") as extra:
            extra.log({"x": 2})
    frame = runjournal.load_metrics(runs=[main.id], writer="w")
    assert frame["step"].tolist() == [41, 42]


def test_load_metrics_selects_writers_by_name_and_main() -> None:
    with runjournal.start() as main:
        main.log({"x": 0}, step=0)
        for name in ("a", "b"):
            with attach(main.id, writer=name) as extra:
                extra.log({"x": 1}, step=0)
    with runjournal.start() as alone:  # a run with one file has no writer column
        alone.log({"x": 5})
    both = [main.id, alone.id]
    assert len(runjournal.load_metrics(runs=both, writer=["a", "b"])) == 2
    main_rows = runjournal.load_metrics(runs=both, writer="main")
    assert sorted(main_rows["value"]) == [0, 5]
    assert runjournal.load_metrics(runs=both, writer="c").empty
    with pytest.raises(InvalidArgumentError, match="writer"):
        runjournal.load_metrics(writer=[1])  # type: ignore[list-item]


def test_an_attached_writer_samples_system_metrics_only_when_asked() -> None:
    """attach(system_metrics=...) samples into system.<writer>.jsonl; plain attach does not."""
    with runjournal.start(system_metrics=False) as main:
        main.log({"loss": 1.0}, step=0)
        with attach(main.id, writer="eval", system_metrics=0.02):
            time.sleep(0.25)
        with attach(main.id, writer="plain") as plain:
            plain.log({"loss": 2.0}, step=0)
            time.sleep(0.1)
    assert main.dir is not None
    assert sorted(p.name for p in main.dir.glob("system*")) == ["system.eval.jsonl"]
    lines = (main.dir / "system.eval.jsonl").read_bytes().splitlines()
    assert lines and all(b'"proc/rss_bytes"' in line for line in lines)
    frame = runjournal.load_metrics(runs=main.id, system=True)
    samples = frame[frame["key"].str.startswith("system/")]
    assert set(samples["writer"]) == {"eval"}
    assert frame.loc[frame["key"] == "loss", "writer"].fillna("main").tolist() == ["main", "plain"]
    with pytest.raises(InvalidArgumentError, match="system_metrics"):
        attach(main.id, writer="bad", system_metrics=-1)


def test_run_level_verbs_of_an_attached_writer_raise_when_strict() -> None:
    with runjournal.start() as main, attach(main.id, writer="w", strict=True) as extra:
        calls: list[tuple[str, Callable[[], object]]] = [
            ("log_params", lambda: extra.log_params({"lr": 1})),
            ("tag", lambda: extra.tag(a=1)),
            ("note", lambda: extra.note("hi")),
            ("log_data", lambda: extra.log_data("d", "missing.csv")),
        ]
        for verb, call in calls:
            with pytest.raises(RunError, match=f"{verb} ignored by writer 'w'"):
                call()


def test_run_level_verbs_of_an_attached_writer_warn_once_and_write_nothing() -> None:
    with runjournal.start(strict=False) as main:
        before = _events(main)
        extra = attach(main.id, writer="w", strict=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RunjournalWarning)
            extra.log_params({"lr": 1})
            extra.log_params({"lr": 2})
            extra.tag(a=1)
        extra.end()
        assert [str(w.message).split(": ")[1] for w in caught] == [
            "log_params ignored by writer 'w'",
            "tag ignored by writer 'w'",
        ]
        assert _events(main) == before
        assert not (main.dir / "params.jsonl").exists()  # type: ignore[operator]


@pytest.mark.parametrize("name", ["main", "MAIN", "a.b", "../x", "", "-x", "x" * 65, 7])
def test_writer_names_are_safe_file_name_fragments(name: object) -> None:
    with runjournal.start() as main, pytest.raises(InvalidArgumentError, match="writer="):
        attach(main.id, writer=name)  # type: ignore[arg-type]


def test_attaching_to_a_run_that_does_not_exist_is_refused() -> None:
    runjournal.start().end()  # the store exists
    with pytest.raises(RunNotFoundError, match="no started run"):
        attach("no-such-run", writer="w")
    with pytest.raises(InvalidArgumentError, match="run id"):
        attach("../escape", writer="w")


def test_the_default_writer_is_the_rank_else_host_and_pid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with runjournal.start() as main:
        with attach(main.id) as extra:
            assert extra.writer.endswith(f"-{os.getpid()}")  # type: ignore[attr-defined]
        monkeypatch.setenv("SLURM_PROCID", "5")
        with attach(main.id) as extra:
            assert extra.writer == "rank5"  # type: ignore[attr-defined]


def test_attach_in_disabled_mode_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNJOURNAL_MODE", "disabled")
    extra = attach("any-run", writer="w")
    extra.log({"x": 1})
    extra.end()
    assert extra.dir is None


KILLED = """
import sys, runjournal
from runjournal._attach import attach
run = attach(sys.argv[1], writer="w")
for step in range(1000):
    run.log({"x": step}, step=step)
run.flush()
print("flushed", flush=True)
sys.stdin.readline()
"""


def test_a_killed_writer_frees_its_name_and_keeps_what_it_flushed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with runjournal.start(store=store) as main:
        before = _events(main)
        child = _python(KILLED, main.id, store=store)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "flushed", child.stderr
        child.kill()
        child.communicate(timeout=TIMEOUT)
        with attach(main.id, store=store, writer="w") as again:
            again.log({"x": -1})
        assert _events(main) == before
    frame = runjournal.load_metrics(store, runs=[main.id], writer="w")
    assert frame["step"].tolist() == [*range(1000), 1000]
