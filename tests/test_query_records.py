"""RunRecord: what run.jsonl, params.jsonl and the metrics files add up to."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings

from _histories import expected_rows, history_lines, same_value
from _runfiles import T0, StoreFiles
from runjournal.errors import InvalidArgumentError, RunjournalWarning
from runjournal.query import UNKNOWN, RunRecord, Store
from runjournal.query._json import dumps_tagged


@pytest.fixture
def files(tmp_path: Path) -> StoreFiles:
    return StoreFiles(tmp_path / "store")


def load(files: StoreFiles, ref: str) -> RunRecord:
    return Store(files.root).run(ref)


# ------------------------------------------------------------------ params


def test_params_merge_line_by_line_as_in_the_format_doc(files: StoreFiles) -> None:
    """Later params lines merge into nested objects key by key; lists are replaced whole."""
    run = files.ended_run("r1")
    run.params({"lr": 0.001, "model": {"depth": 50, "widths": [64, 128]}, "optimizer": "adamw"})
    run.params({"lr": 0.0005}, time=T0 + 300.5)
    run.params({"model": {"widths": [32]}})
    record = load(files, "r1")
    assert record.params == {
        "lr": 0.0005,
        "model": {"depth": 50, "widths": [32]},
        "optimizer": "adamw",
    }
    assert record.flat_params == {
        "lr": 0.0005,
        "model.depth": 50,
        "model.widths": [32],
        "optimizer": "adamw",
    }


def test_param_history_keeps_every_change_with_flat_key_time_and_segment(files: StoreFiles) -> None:
    """param_history lists each changed leaf by its dotted name, in file order."""
    run = files.ended_run("r1")
    run.params({"lr": 0.001, "model": {"depth": 50}})
    run.params({"lr": 0.0005}, time=T0 + 300.5, seg=1)
    history = [(c.key, c.value, c.seg) for c in load(files, "r1").param_history]
    assert history == [("lr", 0.001, 0), ("model.depth", 50, 0), ("lr", 0.0005, 1)]
    last = load(files, "r1").param_history[-1]
    assert last.time == dt.datetime.fromtimestamp(T0 + 300.5, dt.UTC)


def test_tagged_param_values_are_decoded_and_tag_like_user_dicts_survive(files: StoreFiles) -> None:
    """NaN, infinities, big ints and a user's {"$float": ...} dict read back as logged."""
    files.ended_run("r1").params(
        {"nan": math.nan, "inf": -math.inf, "big": 2**70, "tricky": {"$float": "x"}}
    )
    params = load(files, "r1").params
    assert math.isnan(params["nan"]) and params["inf"] == -math.inf
    assert params["big"] == 2**70 and params["tricky"] == {"$float": "x"}


# ------------------------------------------------------------ other events


def test_later_tags_event_wins_per_key(files: StoreFiles) -> None:
    """Each tags event updates the tags key by key; a later value replaces an earlier one."""
    run = files.run("r1").start()
    run.event("tags", tags={"model": "resnet50", "baseline": True})
    run.event("tags", tags={"model": "vit", "lr_sweep": 3})
    assert load(files, "r1").tags == {"model": "vit", "baseline": True, "lr_sweep": 3}


def test_notes_keep_order_time_and_segment(files: StoreFiles) -> None:
    """Notes come back as (time, seg, text) in file order."""
    run = files.run("r1").start()
    run.event("note", time=T0 + 412.5, text="loss plateaus after the lr drop")
    run.event("note", time=T0 + 500, seg=1, text="second thought")
    notes = load(files, "r1").notes
    assert [(n.text, n.seg) for n in notes] == [
        ("loss plateaus after the lr drop", 0),
        ("second thought", 1),
    ]
    assert notes[0].time == dt.datetime.fromtimestamp(T0 + 412.5, dt.UTC)


def _alert_run(files: StoreFiles) -> None:
    run = files.run("r1").start()
    run.event(
        "alert",
        time=T0 + 123.5,
        key="train/loss",
        rule="not_finite()",
        step=120,
        value={"$float": "nan"},
        message="train/loss = nan at step 120: not finite",
        count=1,
    )
    run.event("alert", time=T0 + 130, seg=1, key="grad", rule="above(100.0)", step=7, value=250.0)
    run.event("alert", time=T0 + 131, rule="above(1.0)", value=2.0)  # no key: not an alert
    run.metrics(0, {"loss": 1.0})


def test_alert_events_read_back_as_alerts_in_file_order(files: StoreFiles) -> None:
    """Alert events of run.jsonl become RunRecord.alerts, values decoded, keyless ones skipped."""
    _alert_run(files)
    alerts = load(files, "r1").alerts
    assert [(a.key, a.rule, a.step, a.seg, a.count) for a in alerts] == [
        ("train/loss", "not_finite()", 120, 0, 1),
        ("grad", "above(100.0)", 7, 1, 1),
    ]
    assert math.isnan(alerts[0].value) and alerts[1].value == 250.0
    assert alerts[0].message == "train/loss = nan at step 120: not finite"
    assert alerts[1].message == ""  # a field the event lacks keeps its default
    assert alerts[0].time == dt.datetime.fromtimestamp(T0 + 123.5, dt.UTC)


def test_alerts_are_the_same_read_whole_from_the_query_cache_and_after_an_append(
    files: StoreFiles,
) -> None:
    """Records built from the cached fold give the same alerts as a read of the whole file."""
    _alert_run(files)
    whole = Store(files.root, cache=False).run("r1").alerts
    first = Store(files.root).run("r1").alerts  # builds the cache
    assert any((files.root / ".cache" / "query").iterdir())  # the cache was written
    cached = Store(files.root).run("r1").alerts  # reads the saved fold
    listed = [record.alerts for record in Store(files.root).runs()]
    assert len(whole) == 2
    assert dumps_tagged(whole) == dumps_tagged(first) == dumps_tagged(cached)
    assert dumps_tagged(listed) == dumps_tagged([whole])
    files.run("r1").event("alert", time=T0 + 200, key="lr", rule="below(0.1)", step=9, value=0.0)
    appended = Store(files.root).run("r1").alerts  # the fold continued with the new line
    assert [a.key for a in appended] == ["train/loss", "grad", "lr"]
    assert dumps_tagged(appended) == dumps_tagged(Store(files.root, cache=False).run("r1").alerts)


def test_an_alert_that_fires_in_a_run_reads_back_in_its_record(tmp_path: Path) -> None:
    """run.watch() firing on a logged NaN appends an alert event that Store().run() shows."""
    import warnings

    import runjournal
    from runjournal.alerts import not_finite

    store = tmp_path / "live"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunjournalWarning)
        with runjournal.start(store=store, system_metrics=False) as run:
            run.watch("loss", not_finite())
            run.log({"loss": 0.5}, step=1)
            run.log({"loss": math.nan}, step=2)
    (alert,) = Store(store).run(run.id).alerts
    assert (alert.key, alert.rule, alert.step, alert.count) == ("loss", "not_finite()", 2, 1)
    assert math.isnan(alert.value) and "nan" in alert.message
    assert b'"event":"alert"' in (store / "runs" / run.id / "run.jsonl").read_bytes()


def test_error_events_keep_the_largest_count_per_cause_and_key(files: StoreFiles) -> None:
    """Cumulative error counts: the largest count per (cause, key) wins, whatever the order."""
    run = files.run("r1").start()
    run.event("error", cause="invalid_value", key="acc", message="first", count=1)
    run.event("error", cause="invalid_value", key="acc", message="later", count=9)
    run.event("error", cause="invalid_value", key="acc", message="stale", count=4)
    run.event("error", cause="dropped", key=None, message="buffer full", count=120)
    errors = {(e.cause, e.key): (e.count, e.message) for e in load(files, "r1").errors}
    assert errors == {
        ("invalid_value", "acc"): (9, "later"),
        ("dropped", None): (120, "buffer full"),
    }


def test_failed_end_event_gives_the_exception(files: StoreFiles) -> None:
    """A failed run's end event carries the exception type, message and traceback."""
    exception = {"type": "ValueError", "message": "bad batch", "traceback": "Traceback...\n"}
    files.run("r1").start().end("failed", exception=exception)
    record = load(files, "r1")
    assert (record.status, record.exception) == ("failed", exception)
    assert record.end_time == dt.datetime.fromtimestamp(T0 + 60, dt.UTC)
    assert record.duration == 60.0


def test_start_event_fields_are_on_the_record(files: StoreFiles) -> None:
    """Name, experiment, host, pid, job id, format and library come from the start event."""
    files.run("r1").start(name="brisk-heron-7", experiment="mnist", pid=81234)
    record = load(files, "r1")
    assert (record.id, record.name, record.experiment) == ("r1", "brisk-heron-7", "mnist")
    assert (record.pid, record.job_id, record.format, record.library) == (
        81234,
        "4242",
        1,
        "runjournal 0.1.0",
    )
    assert record.start_time == dt.datetime.fromtimestamp(T0, dt.UTC)
    assert record.start_time.tzinfo is not None
    assert (record.segments, record.end_time, record.duration) == (1, None, None)


def test_unknown_events_fields_and_files_are_ignored_silently(files: StoreFiles) -> None:
    """Readers ignore event kinds, fields and files they do not know, without a warning."""
    run = files.run("r1").start(future_field={"x": 1})
    run.event("checkpoint", path="ckpt/7")
    run.append("environment.json", b"{}")
    run.append("something-new.bin", b"\x00\x01")
    run.metrics(0, {"loss": 1.0})
    record = load(files, "r1")
    assert record.skipped == [] and record.metrics == {"loss": 1.0}


# --------------------------------------------------------- tolerant reading


def test_torn_last_line_of_run_jsonl_is_skipped_with_one_warning_naming_the_file(
    files: StoreFiles,
) -> None:
    """A line torn by a crash is skipped and reported; the lines before it load."""
    run = files.run("r1").start(name="kept").append("run.jsonl", b'{"event": "tags", "ti')
    with pytest.warns(RunjournalWarning, match=r"runs/r1/run\.jsonl: skipped 1 ") as caught:
        record = load(files, "r1")
    assert len(caught) == 1
    assert record.name == "kept"
    assert [(s.file, s.line, s.reason) for s in record.skipped] == [
        ("run.jsonl", 2, "incomplete last line")
    ]
    assert run.id == record.id


def test_garbage_lines_in_params_give_one_warning_with_their_count(files: StoreFiles) -> None:
    """Several bad lines in one file give a single warning that counts them."""
    run = files.ended_run("r1").params({"lr": 0.1})
    run.append("params.jsonl", b"garbage\n[1, 2]\n")
    run.params({"depth": 3})
    with pytest.warns(RunjournalWarning, match=r"runs/r1/params\.jsonl: skipped 2 ") as caught:
        record = load(files, "r1")
    assert len(caught) == 1
    assert record.params == {"lr": 0.1, "depth": 3}
    assert [(s.line, s.reason) for s in record.skipped] == [
        (2, "not valid JSON"),
        (3, "not a JSON object"),
    ]


def test_nul_tail_of_metrics_is_reported_when_metrics_are_read(files: StoreFiles) -> None:
    """NUL bytes left by a crash are skipped when the history is read, not when listing."""
    run = files.ended_run("r1").metrics(0, {"loss": 1.0}).metrics(1, {"loss": 0.5})
    run.append("metrics.jsonl", b"\x00" * 64)
    record = load(files, "r1")  # no warning: the metrics file is not read yet
    assert record.skipped == []
    with pytest.warns(RunjournalWarning, match=r"runs/r1/metrics\.jsonl: skipped 1 "):
        assert record.metrics == {"loss": 0.5}
    assert [s.file for s in record.skipped] == ["metrics.jsonl"]
    record.history()  # read once: no second warning


def test_metrics_record_without_a_step_is_skipped_with_its_line_number(files: StoreFiles) -> None:
    """A valid JSON line that is not a metrics record is reported with its line number."""
    run = files.ended_run("r1").metrics(0, {"loss": 1.0})
    run.append(
        "metrics.jsonl", b'{"time": 1.0, "m": {"loss": 2}}\n\n{"step": 2, "m": {"x": "str"}}\n'
    )
    run.metrics(3, {"loss": 0.25})
    record = load(files, "r1")
    with pytest.warns(RunjournalWarning, match="skipped 2 "):
        rows = record.history()
    assert [(r["step"], r["value"]) for r in rows] == [(0, 1.0), (3, 0.25)]
    assert [(s.line, s.reason) for s in record.skipped] == [
        (2, "metrics record without an integer step"),
        (4, "values that are not numbers: 'x'"),
    ]


def test_run_directory_without_start_loads_with_status_unknown(files: StoreFiles) -> None:
    """A directory with no start event still loads: status unknown, a problem, no warning."""
    files.run("20261123-144846-9f3a0c1e")
    record = load(files, "20261123-144846-9f3a0c1e")
    assert record.status == UNKNOWN
    assert record.start_time == dt.datetime(2026, 11, 23, 14, 48, 46, tzinfo=dt.UTC)
    assert [(s.file, s.line, s.reason) for s in record.skipped] == [
        ("run.jsonl", 0, "no start event")
    ]


def test_run_without_start_but_with_events_takes_its_first_event_time(files: StoreFiles) -> None:
    """Without a start event, the start time is the first event's time."""
    files.run("custom-id").event("note", time=T0 + 7, text="orphan note")
    record = load(files, "custom-id")
    assert record.start_time == dt.datetime.fromtimestamp(T0 + 7, dt.UTC)
    assert (record.status, record.notes[0].text) == (UNKNOWN, "orphan note")


def test_run_in_a_newer_format_loads_what_it_can_with_a_warning(files: StoreFiles) -> None:
    """A run of a newer format is not refused: known fields load, a problem is recorded."""
    files.run("r1").start(format=2, name="from-the-future").end()
    with pytest.warns(RunjournalWarning, match=r"runs/r1/run\.jsonl: written in format 2.*upgrade"):
        record = load(files, "r1")
    assert (record.name, record.status, record.format) == ("from-the-future", "completed", 2)
    assert "upgrade runjournal" in record.skipped[0].reason


# ------------------------------------------------------------------ metrics


def test_history_rows_are_sorted_by_step_and_keep_file_order_within_a_step(
    files: StoreFiles,
) -> None:
    """history() gives plain rows sorted by step; two values at one step keep their order."""
    run = files.ended_run("r1")
    run.metrics(2, {"loss": 0.5}).metrics(0, {"loss": 1.0, "lr": 0.1}).metrics(2, {"loss": 0.4})
    rows = load(files, "r1").history()
    assert rows == [
        {"step": 0, "time": T0, "key": "loss", "value": 1.0},
        {"step": 0, "time": T0, "key": "lr", "value": 0.1},
        {"step": 2, "time": T0 + 2, "key": "loss", "value": 0.5},
        {"step": 2, "time": T0 + 2, "key": "loss", "value": 0.4},
    ]


def test_history_filters_by_keys_and_inclusive_step_range(files: StoreFiles) -> None:
    """keys selects metrics; steps=(lo, hi) is inclusive and either side may be open."""
    run = files.ended_run("r1")
    for step in range(5):
        run.metrics(step, {"loss": float(step), "acc": step / 10})
    record = load(files, "r1")
    assert [r["step"] for r in record.history("loss", steps=(1, 3))] == [1, 2, 3]
    assert [r["key"] for r in record.history(["acc"], steps=(None, 0))] == ["acc"]
    assert len(record.history(steps=(4, None))) == 2
    with pytest.raises(InvalidArgumentError):
        record.history(steps=(1, 2, 3))  # type: ignore[arg-type]


def test_resumed_run_replaces_relogged_steps_and_raw_keeps_every_row(files: StoreFiles) -> None:
    """After a resume, steps logged again replace the old ones; the raw view keeps all rows."""
    run = files.run("r1").start()
    for step in range(4):
        run.metrics(step, {"loss": 1.0 - step / 10, "lr": 0.1})
    run.resume(1, time=T0 + 3600)  # restarted from the checkpoint at step 1
    for step in (2, 3, 4):
        run.metrics(step, {"loss": 0.5 - step / 100}, seg=1)
    record = load(files, "r1")
    default = [(r["step"], r["key"], r["value"]) for r in record.history("loss")]
    assert default == [
        (0, "loss", 1.0),
        (1, "loss", 0.9),
        (2, "loss", 0.48),
        (3, "loss", 0.47),
        (4, "loss", 0.46),
    ]
    assert [r["value"] for r in record.history("lr")] == [0.1] * 4  # not re-logged: kept
    raw = record.history("loss", raw=True)
    assert [(r["step"], r["segment"]) for r in raw] == [
        (0, 0),
        (1, 0),
        (2, 0),
        (2, 1),
        (3, 0),
        (3, 1),
        (4, 1),
    ]
    assert record.segments == 2 and record.summary["loss"].count == 5


def test_summary_ignores_nan_for_min_and_max_and_metrics_is_the_last_value(
    files: StoreFiles,
) -> None:
    """summary gives last/min/max with steps; NaN is a last value but never a min or max."""
    run = files.ended_run("r1")
    for step, loss in enumerate([0.9, math.nan, 0.2, 0.7, math.nan]):
        run.metrics(step, {"loss": loss})
    run.metrics(0, {"all_nan": math.nan})
    record = load(files, "r1")
    loss = record.summary["loss"]
    assert math.isnan(loss.last) and loss.last_step == 4
    assert (loss.min, loss.min_step, loss.max, loss.max_step, loss.count) == (0.2, 2, 0.9, 0, 5)
    assert (record.summary["all_nan"].min, record.summary["all_nan"].max_step) == (None, None)
    assert set(record.metrics) == {"loss", "all_nan"}


def test_extra_writer_files_are_read_and_rows_name_their_writer(files: StoreFiles) -> None:
    """metrics.<writer>.jsonl files are read too; rows get a writer only when there are several."""
    run = files.ended_run("r1").metrics(0, {"loss": 1.0})
    assert "writer" not in load(files, "r1").history()[0]
    run.metrics(0, {"loss": 2.0}, file_name="metrics.rank1.jsonl")
    run.append(".tmp-metrics.rank2.jsonl", b'{"step": 0, "seg": 0, "m": {"loss": 3}}\n')
    rows = load(files, "r1").history()
    assert [(r["writer"], r["value"]) for r in rows] == [(None, 1.0), ("rank1", 2.0)]


def test_model_dump_includes_metrics_and_dumps_as_valid_json(files: StoreFiles) -> None:
    """model_dump carries metrics and summary; the tagged JSON form is strict JSON."""
    files.ended_run("r1").metrics(0, {"loss": math.nan, "tokens": 2**70})
    dumped = load(files, "r1").model_dump()
    assert dumped["metrics"]["tokens"] == 2**70 and math.isnan(dumped["metrics"]["loss"])
    assert dumped["summary"]["tokens"]["max"] == 2**70
    text = dumps_tagged(dumped)
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"invalid JSON {name}"))
    assert parsed["metrics"] == {"loss": {"$float": "nan"}, "tokens": {"$int": str(2**70)}}


def test_repr_does_not_read_the_metrics(files: StoreFiles) -> None:
    """Printing a record shows its fields without reading its metric history."""
    files.ended_run("r1").append("metrics.jsonl", b"torn")
    record = load(files, "r1")
    assert "r1" in repr(record)  # a warning would fail the test: metrics stayed unread


def test_column_reads_any_column_of_the_run_table(files: StoreFiles) -> None:
    """column() resolves plain, params.*, metrics.* and tags.* names; unknown ones raise."""
    run = files.ended_run("r1").params({"model": {"depth": 50}}).metrics(0, {"val/acc": 0.5})
    run.event("tags", tags={"baseline": True})
    record = load(files, "r1")
    assert record.column("params.model.depth") == 50
    assert record.column("metrics.val/acc") == 0.5
    assert (record.column("tags.baseline"), record.column("tags.missing")) == (True, None)
    assert (record.column("status"), record.column("duration")) == ("completed", 60.0)
    with pytest.raises(InvalidArgumentError, match="unknown column"):
        record.column("colour")


_run_numbers = itertools.count()


@settings(max_examples=60, deadline=None)
@given(lines=history_lines)
def test_any_metric_history_reads_back_identical(
    tmp_path_factory: pytest.TempPathFactory, lines: list[tuple[int, dict]]
) -> None:
    """Every float (NaN, inf, -0.0, subnormals), int of any size and key reads back exactly."""
    files = StoreFiles(tmp_path_factory.getbasetemp() / "property-store")
    run = files.ended_run(f"run-{next(_run_numbers)}")
    for step, values in lines:
        run.metrics(step, values, time=T0)
    rows = load(files, run.id).history()
    expected = expected_rows(lines)
    assert [(r["step"], r["key"]) for r in rows] == [(step, key) for step, key, _ in expected]
    assert all(
        same_value(r["value"], value) for r, (_, _, value) in zip(rows, expected, strict=True)
    )


def test_names_that_look_like_tags_are_plain_names(files: StoreFiles) -> None:
    """A param, tag or metric named "$float" or "$int" is a name, not a tagged value."""
    run = files.ended_run("r1").params({"$float": "nan", "x": {"$int": 5}})
    run.event("tags", tags={"$int": "7"})
    run.metrics(0, {"$float": 1.5})
    record = load(files, "r1")
    assert record.params == {"$float": "nan", "x": {"$int": 5}}
    assert record.flat_params == {"$float": "nan", "x.$int": 5}
    assert record.tags == {"$int": "7"}
    assert record.metrics == {"$float": 1.5}
    assert [change.key for change in record.param_history] == ["$float", "x.$int"]


def test_fields_of_the_wrong_type_read_as_missing(files: StoreFiles) -> None:
    """A start event with wrongly typed fields still loads; those fields read as None."""
    files.run("r1").start(name=7, experiment=["x"], pid="123", job_id=5).end(
        exception={"$float": "nan"}
    )
    record = load(files, "r1")
    assert (record.name, record.experiment, record.pid, record.job_id) == ("", None, None, None)
    assert record.exception == {"$float": "nan"}
    assert record.status == "completed"


def test_a_run_that_cannot_be_read_at_all_still_lists(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unforeseen failure reading one run gives a placeholder record and a warning."""
    from runjournal.query import _reader

    def broken(*args: object) -> None:
        raise ValueError("unforeseen")

    files.ended_run("r1")
    files.ended_run("r2")
    monkeypatch.setattr(_reader, "_merge_params", broken)
    with pytest.warns(RunjournalWarning, match=r"runs/r\d: cannot be read: ValueError") as caught:
        runs = Store(files.root).runs()
    assert len(caught) == 2
    assert [(run.id, run.status) for run in runs] == [("r1", UNKNOWN), ("r2", UNKNOWN)]


def test_query_exports_one_sorted_all() -> None:
    """runjournal.query re-exports its public names in one sorted __all__."""
    import runjournal.query as query

    assert query.__all__ == sorted(query.__all__)
    assert all(hasattr(query, name) for name in query.__all__)
