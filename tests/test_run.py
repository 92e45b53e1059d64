"""Run and start(): arguments, the log verbs, problems in default and strict mode, resume."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import runjournal
from runjournal.errors import (
    InvalidArgumentError,
    InvalidNameError,
    InvalidValueError,
    NoActiveRunError,
    RunError,
    RunExistsError,
    RunjournalWarning,
    RunNotFoundError,
)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _events(run: runjournal.Run, kind: str | None = None) -> list[dict[str, Any]]:
    assert run.dir is not None
    events = _lines(run.dir / "run.jsonl")
    return [e for e in events if kind is None or e["event"] == kind]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default (non-strict) mode, as a training script gets it."""
    monkeypatch.delenv("RUNJOURNAL_STRICT", raising=False)


def test_start_writes_start_params_and_tags_before_returning(store: Path) -> None:
    """Everything given to start() is on disk when it returns, without a flush."""
    run = runjournal.start(
        "mnist", name="first", params={"lr": 0.1}, tags={"m": "mlp"}, store=store
    )
    assert run.dir is not None and run.dir.parent == store / "runs"
    start = _events(run, "start")[0]
    assert (start["run_id"], start["name"], start["experiment"]) == (run.id, "first", "mnist")
    assert start["format"] == 1 and start["seg"] == 0 and start["deadline"] > start["time"]
    assert _events(run, "tags")[0]["tags"] == {"m": "mlp"}
    assert _lines(run.dir / "params.jsonl")[0]["params"] == {"lr": 0.1}
    run.end()


def test_log_buffers_until_flush_and_auto_increments_steps(store: Path) -> None:
    """Lines reach the file at flush; omitted steps count on from the last one."""
    run = runjournal.start(store=store, flush_interval=3600)
    run.log({"loss": 1.0})
    run.log({"loss": 0.5}, step=10)
    run.log({"loss": 0.25})
    assert run.dir is not None
    assert (
        not (run.dir / "metrics.jsonl").exists() or (run.dir / "metrics.jsonl").stat().st_size == 0
    )
    run.flush()
    rows = _lines(run.dir / "metrics.jsonl")
    assert [(r["step"], r["m"]["loss"]) for r in rows] == [(0, 1.0), (10, 0.5), (11, 0.25)]
    run.end()


def test_values_round_trip_exactly_through_the_store(store: Path) -> None:
    """NaN, infinities, -0.0, subnormals, big ints and NumPy scalars load back identical."""
    values = {
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
        "neg_zero": -0.0,
        "subnormal": 5e-324,
        "u64": 2**64 - 1,
        "huge": 2**80,
        "f32": np.float32(0.1),
        "i64": np.int64(-3),
        "val/AR@100": 0.75,
        "../../x": 1,
    }
    with runjournal.start(store=store, capture=False) as run:
        run.log(values)
    assert run.dir is not None
    assert sorted(p.name for p in run.dir.iterdir()) == ["metrics.jsonl", "run.jsonl"]
    metrics = runjournal.Store(store).run(run.id).metrics
    assert (
        math.isnan(metrics["nan"]) and metrics["inf"] == math.inf and metrics["-inf"] == -math.inf
    )
    assert math.copysign(1, metrics["neg_zero"]) == -1.0
    assert metrics["subnormal"] == 5e-324 and metrics["u64"] == 2**64 - 1
    assert metrics["huge"] == 2**80 and type(metrics["huge"]) is int
    assert metrics["f32"] == float(np.float32(0.1)) and metrics["i64"] == -3
    assert metrics["val/AR@100"] == 0.75 and metrics["../../x"] == 1


@pytest.mark.usefixtures("lenient")
def test_a_bad_value_warns_once_per_key_and_is_recorded_as_an_error_event(store: Path) -> None:
    """The loop keeps running: one warning, an error event, a count, and the good keys logged."""
    run = runjournal.start(store=store)
    with pytest.warns(RunjournalWarning, match="'acc'.*not a number") as caught:
        for step in range(5):
            run.log({"loss": 1.0 / (step + 1), "acc": "high"})
    assert len([w for w in caught if "'acc'" in str(w.message)]) == 1
    run.end()
    errors = _events(run, "error")
    assert errors[0]["cause"] == "invalid_value" and errors[0]["key"] == "acc"
    assert max(e["count"] for e in errors if e["key"] == "acc") == 5
    record = runjournal.Store(store).run(run.id)
    assert record.metrics == {"loss": 0.2}


def test_strict_mode_raises_naming_the_key(store: Path) -> None:
    """With RUNJOURNAL_STRICT=1 (the test suite's setting) a bad value raises at once."""
    run = runjournal.start(store=store)
    with pytest.raises(InvalidValueError, match="'acc'"):
        run.log({"acc": np.zeros(3)})
    with pytest.raises(InvalidNameError):
        run.log({"": 1.0})
    with pytest.raises(InvalidValueError, match="step"):
        run.log({"loss": 1.0}, step="7")  # type: ignore[arg-type]
    run.end()


def test_log_accepts_numpy_integer_steps_and_rejects_bools(store: Path) -> None:
    """A NumPy integer is a step; True is not."""
    with runjournal.start(store=store, strict=False) as run:
        run.log({"x": 1.0}, step=np.int64(4))  # type: ignore[arg-type]
        with pytest.warns(RunjournalWarning, match="step True"):
            run.log({"x": 2.0}, step=True)
    assert run.dir is not None
    assert [r["step"] for r in _lines(run.dir / "metrics.jsonl")] == [4]


def test_params_merge_and_a_changed_value_is_a_new_record_and_a_warning(store: Path) -> None:
    """Re-logging a value writes nothing; a change appends a record, warns and keeps history."""
    run = runjournal.start(store=store, params={"lr": 0.1, "model": {"depth": 50}})
    run.log_params({"lr": 0.1, "model": {"depth": 50}})
    with pytest.warns(RunjournalWarning, match="'lr' changed from 0.1 to 0.2"):
        run.log_params({"lr": 0.2, "model": {"width": 8}})
    run.end()
    assert run.dir is not None
    records = [line["params"] for line in _lines(run.dir / "params.jsonl")]
    assert records == [{"lr": 0.1, "model": {"depth": 50}}, {"lr": 0.2, "model": {"width": 8}}]
    loaded = runjournal.Store(store).run(run.id)
    assert loaded.params == {"lr": 0.2, "model": {"depth": 50, "width": 8}}


def test_long_param_values_are_kept_whole(store: Path) -> None:
    """There is no arbitrary length limit on a param value."""
    prompt = "x" * 1_000_000
    with runjournal.start(store=store, params={"prompt": prompt}) as run:
        pass
    assert runjournal.Store(store).run(run.id).params["prompt"] == prompt


def test_tags_and_notes_are_events_with_times(store: Path) -> None:
    """Tags by keyword or mapping, and notes as text, are appended at once."""
    with runjournal.start(store=store) as run:
        run.tag(model="resnet", baseline=True)
        run.tag({"data/version": "v2"})
        run.note("plateau after lr drop")
    tags = [e["tags"] for e in _events(run, "tags")]
    assert tags == [{"model": "resnet", "baseline": True}, {"data/version": "v2"}]
    assert [e["text"] for e in _events(run, "note")] == ["plateau after lr drop"]


def test_end_is_idempotent_and_records_the_status(store: Path) -> None:
    """A second end() does nothing; the first status stays."""
    run = runjournal.start(store=store)
    run.end("failed")
    run.end()
    assert [e["status"] for e in _events(run, "end")] == ["failed"]
    assert run.ended


def test_logging_after_end_raises_in_strict_and_warns_otherwise(store: Path) -> None:
    """Calls on an ended run are refused loudly, never silently dropped."""
    run = runjournal.start(store=store)
    run.end()
    with pytest.raises(RunError, match="ended"):
        run.log({"x": 1.0})
    lenient = runjournal.start(store=store, strict=False)
    lenient.end()
    with pytest.warns(RunjournalWarning, match="ended"):
        lenient.log({"x": 1.0})


def test_the_with_block_records_failed_with_the_exception(store: Path) -> None:
    """An exception leaving the block ends the run failed, with type, message and traceback."""
    with pytest.raises(ZeroDivisionError), runjournal.start(store=store) as run:
        1 / 0  # noqa: B018
    end = _events(run, "end")[0]
    assert end["status"] == "failed"
    assert end["exception"]["type"] == "ZeroDivisionError"
    assert "division by zero" in end["exception"]["traceback"]


def test_keyboard_interrupt_in_the_block_is_recorded_as_interrupted(store: Path) -> None:
    """Ctrl-C inside the block gives the interrupted status."""
    with pytest.raises(KeyboardInterrupt), runjournal.start(store=store) as run:
        raise KeyboardInterrupt
    assert _events(run, "end")[0]["status"] == "interrupted"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"mode": "offline"}, "mode"),
        ({"durability": "sometimes"}, "durability"),
        ({"resume": "yes", "run_id": "a"}, "resume"),
        ({"resume": True}, "resume"),
        ({"run_id": "../escape"}, "run_id"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"heartbeat_interval": float("nan")}, "heartbeat_interval"),
        ({"experiment": ""}, "experiment"),
        ({"name": 3}, "name"),
        ({"tags": ["a"]}, "tags"),
    ],
)
def test_bad_arguments_to_start_raise_naming_the_argument(
    store: Path, kwargs: dict[str, Any], argument: str
) -> None:
    """start() checks its arguments and raises; nothing is created."""
    with pytest.raises(InvalidArgumentError) as raised:
        runjournal.start(store=store, **kwargs)
    assert raised.value.argument == argument
    assert not (store / "runs").exists() or not any((store / "runs").iterdir())


def test_bad_params_to_start_raise_before_any_run_exists(store: Path) -> None:
    """A param without a JSON form fails start(), leaving no half-made run."""
    with pytest.raises(InvalidValueError, match="'fn'"):
        runjournal.start(store=store, params={"fn": object()})
    assert not (store / "runs").exists() or not any((store / "runs").iterdir())


def test_an_existing_run_id_needs_resume(store: Path) -> None:
    """Reusing a run id without resume is refused; resume=True of a missing run too."""
    runjournal.start(store=store, run_id="exp-1").end()
    with pytest.raises(RunExistsError, match="resume=True"):
        runjournal.start(store=store, run_id="exp-1")
    with pytest.raises(RunNotFoundError, match="resume='allow'"):
        runjournal.start(store=store, run_id="exp-2", resume=True)


def test_resume_appends_a_segment_and_continues_auto_steps(store: Path) -> None:
    """A resumed run keeps its name, starts segment 1 and counts steps on."""
    with runjournal.start("exp", store=store, run_id="job-7", name="kept") as first:
        first.log({"loss": 1.0})
        first.log({"loss": 0.9})
    with runjournal.start(store=store, run_id="job-7", resume=True) as second:
        second.log({"loss": 0.8})
    assert (second.name, second.experiment, second.segment) == ("kept", "exp", 1)
    assert second.dir is not None
    rows = _lines(second.dir / "metrics.jsonl")
    assert [(r["step"], r["seg"]) for r in rows] == [(0, 0), (1, 0), (2, 1)]
    assert [e["event"] for e in _events(second) if e["event"] in ("start", "resume")] == [
        "start",
        "resume",
    ]


def test_resume_allow_creates_the_run_when_missing(store: Path) -> None:
    """resume='allow' is the one call a requeued job needs."""
    with runjournal.start(store=store, run_id="slurm-1", resume="allow") as run:
        pass
    assert run.segment == 0
    assert _events(run, "start")


def test_environment_variables_set_experiment_and_run_id(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RUNJOURNAL_EXPERIMENT and RUNJOURNAL_RUN_ID are defaults for start()."""
    monkeypatch.setenv("RUNJOURNAL_EXPERIMENT", "sweep-3")
    monkeypatch.setenv("RUNJOURNAL_RUN_ID", "task-0")
    with runjournal.start(store=store) as run:
        pass
    assert (run.experiment, run.id) == ("sweep-3", "task-0")


def test_disabled_mode_accepts_every_call_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RUNJOURNAL_MODE=disabled: the script runs unchanged and no store appears."""
    monkeypatch.setenv("RUNJOURNAL_MODE", "disabled")
    with runjournal.start("exp", params={"lr": 1}) as run:
        run.log({"loss": "not even a number"})
        run.log_params({"x": 1})
        run.tag(a="b")
        run.note("n")
        run.flush()
        runjournal.log({"loss": 1.0})
    assert run.dir is None
    assert list(tmp_path.iterdir()) == []


def test_module_level_verbs_act_on_the_active_run(store: Path) -> None:
    """runjournal.log and friends use the most recent live run, and fail clearly without one."""
    with pytest.raises(NoActiveRunError, match=r"start\(\)"):
        runjournal.log({"x": 1.0})
    run = runjournal.start(store=store)
    assert runjournal.active_run() is run
    runjournal.log({"x": 1.0})
    runjournal.log_params({"p": 1})
    runjournal.tag(t="v")
    runjournal.note("n")
    runjournal.end()
    assert runjournal.active_run() is None
    record = runjournal.Store(store).run(run.id)
    assert (record.metrics, record.params, record.tags) == ({"x": 1.0}, {"p": 1}, {"t": "v"})
    assert [n.text for n in record.notes] == ["n"]


def test_threads_logging_at_once_get_distinct_auto_steps(store: Path) -> None:
    """Automatic steps are handed out atomically, so no two lines share one."""
    run = runjournal.start(store=store)

    def work() -> None:
        for _ in range(500):
            run.log({"x": 1.0})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.end()
    assert run.dir is not None
    steps = [r["step"] for r in _lines(run.dir / "metrics.jsonl")]
    assert sorted(steps) == list(range(2000))


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_live_run_appends_heartbeats_that_carry_the_next_deadline(store: Path) -> None:
    """The flusher thread writes heartbeats whose deadline is 2.5 intervals ahead."""
    run = runjournal.start(store=store, flush_interval=0.02, heartbeat_interval=0.1)
    _wait_for(lambda: len(_events(run, "heartbeat")) >= 2)
    run.end()
    for beat in _events(run, "heartbeat"):
        assert beat["deadline"] == pytest.approx(beat["time"] + 0.25, abs=0.01)


@pytest.mark.usefixtures("lenient")
def test_error_counts_grow_at_heartbeats_and_at_the_end(store: Path) -> None:
    """After the first error event, later occurrences are counted and the total is appended."""
    run = runjournal.start(store=store, flush_interval=0.02, heartbeat_interval=0.05)
    with pytest.warns(RunjournalWarning):
        run.log({"acc": "x"})
    for _ in range(3):
        run.log({"acc": "x"})
    _wait_for(lambda: any(e["count"] == 4 for e in _events(run, "error")))
    run.log({"acc": "x"})
    run.end()
    counts = [e["count"] for e in _events(run, "error")]
    assert counts[0] == 1 and counts[-1] == 5


@pytest.mark.usefixtures("lenient")
def test_repeated_errors_keep_the_first_message(store: Path) -> None:
    """The count update of an error event repeats its message, not a bare count."""
    run = runjournal.start(store=store)
    with pytest.warns(RunjournalWarning):
        run.log({"acc": "x"})
        run.log({"acc": "x"})
    run.end()
    messages = {e["message"] for e in _events(run, "error")}
    assert len(messages) == 1 and "not a number" in messages.pop()


def test_end_with_an_unknown_status_still_ends_the_run(store: Path) -> None:
    """A typo in end(status) cannot leave the run open: it ends completed, then raises (strict)."""
    run = runjournal.start(store=store)
    with pytest.raises(InvalidValueError, match="'finished'"):
        run.end("finished")
    assert run.ended and [e["status"] for e in _events(run, "end")] == ["completed"]


def test_resuming_under_another_name_keeps_the_name_and_says_so(store: Path) -> None:
    """name= and experiment= of a resume do not silently rename the run."""
    runjournal.start("exp", store=store, run_id="r", name="kept").end()
    with pytest.warns(RunjournalWarning, match="keeps its name 'kept'"):
        run = runjournal.start("exp", store=store, run_id="r", name="new", resume=True)
    run.end()
    assert run.name == "kept"
