"""The metric summary of a run's end event: exact, free for the reader, used only when it holds.

The writer folds what it wrote to ``metrics.jsonl`` into the end event
(``runjournal._end_summary``); the reader makes a run's row from it without
opening the metrics file (``runjournal.query._end_summary``), but only while
the file is exactly what the summary covers. These tests check that a row
made from the summary is byte for byte the row made from the history, on
random histories, and that every case where the summary does not hold falls
back to the history.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runjournal
from _children import child_env, events, run_child
from _histories import metric_keys, metric_values
from runjournal import _end_summary
from runjournal._end_summary import MetricsSummary
from runjournal.errors import InvalidValueError
from runjournal.format import dumps_line
from runjournal.query import _scan, load_metrics, load_runs
from runjournal.query._catalog import Catalog, Entry
from runjournal.query._end_summary import summary_entries
from runjournal.query._metricsfile import MetricsPart
from runjournal.query._row import _summary_json
from runjournal.values import coerce_metrics

keys = st.one_of(
    st.sampled_from(["loss", "acc", "lr", "time", "m", "step", "null", "true", '},{"m":']),
    metric_keys,
)
"""Metric names: a few that recur, some that look like the line's own fields, any others."""

values = st.one_of(metric_values, st.booleans())
steps = st.one_of(st.none(), st.integers(-3, 40), st.sampled_from([-(2**63), 10**15, 2**63 - 3]))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("log"), st.dictionaries(keys, values, max_size=4), steps),
        st.tuples(st.just("flush")),  # the lines reach the file
        st.tuples(st.just("fold")),  # what the flusher thread does after a flush
    ),
    max_size=40,
)
slices = st.sampled_from([64, 1000, 256 << 10])
"""Bytes parsed at once by the writer's fold: tiny ones fold a history in many pieces."""


@contextlib.contextmanager
def slice_size(size: int) -> Iterator[None]:
    saved = _end_summary._SLICE
    _end_summary._SLICE = size
    try:
        yield
    finally:
        _end_summary._SLICE = saved


def entry(store: Path, run_id: str, *, history: bool = False) -> Entry:
    """The run's catalog entry read from the files (no cache), its metrics folded if ``history``."""
    found = Catalog(store, cache=False).entries(metrics=True, captured=False, history=history)
    return found[run_id]


def row_bytes(made: Entry) -> bytes:
    assert made.row is not None
    return orjson.dumps(made.row)


def assert_row_from_summary(store: Path, run_id: str) -> None:
    """The row made from the end event is the row made from the history, byte for byte."""
    summarized, folded = entry(store, run_id), entry(store, run_id, history=True)
    assert summarized.digest().summarized is not None  # made without reading metrics.jsonl
    assert folded.digest().summarized is None
    assert row_bytes(summarized) == row_bytes(folded)


def assert_row_from_history(store: Path, run_id: str) -> Entry:
    """The summary of the end event is not used; the row is the history's."""
    made = entry(store, run_id)
    assert made.digest().summarized is None and made.digest().metrics is not None
    assert row_bytes(made) == row_bytes(entry(store, run_id, history=True))
    return made


def log_steps(run: runjournal.Run, count: int, start: int = 0) -> None:
    for step in range(start, start + count):
        run.log({"loss": 1.0 / (step + 1), "acc": step * 0.01}, step=step)


# ------------------------------------------------------------------ exactness


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations, slices)
def test_the_row_from_the_end_event_is_the_row_from_the_history(
    ops: list[tuple[Any, ...]], size: int
) -> None:
    """Random keys, values (NaN, infinities, -0.0, big ints, bools), steps up, down, again."""
    with tempfile.TemporaryDirectory() as tmp, slice_size(size):
        store = Path(tmp) / "store"
        run = runjournal.start(store=store, capture=False, flush_interval=3600)
        writer = run._writer
        assert writer is not None and writer.summary is not None
        for op in ops:
            if op[0] == "log":
                with contextlib.suppress(InvalidValueError):  # no step after 2**63 - 1
                    run.log(op[1], step=op[2])
            elif op[0] == "flush":
                run.flush()
            else:
                writer.summary.fold()
        run.end()
        assert run.dir is not None
        end = events(run.dir, "end")[-1]
        if not (run.dir / "metrics.jsonl").exists():
            assert "summary" not in end  # nothing written, nothing to summarize
            return
        size_written = (run.dir / "metrics.jsonl").stat().st_size
        assert end["summary"]["file"] == "metrics.jsonl"
        assert end["summary"]["bytes"] == size_written
        assert_row_from_summary(store, run.id)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-(2**63), 2**63 - 1), st.dictionaries(keys, values, max_size=4)),
        max_size=30,
    ),
    st.lists(st.integers(1, 400), max_size=10),
    st.lists(st.booleans(), max_size=10),
    slices,
)
def test_the_writers_fold_equals_the_readers_on_any_cut_of_the_bytes(
    lines: list[tuple[int, dict[str, Any]]], cuts: list[int], folds: list[bool], size: int
) -> None:
    """Bytes reach the summary as writes do, cut anywhere (a line in two writes included)."""
    data = b"".join(
        dumps_line({"step": step, "time": 1.5, "seg": 0, "m": coerce_metrics(m)[0]})
        for step, m in lines
    )
    summary = MetricsSummary("metrics.jsonl")
    summary.opened(0)
    position = 0
    with slice_size(size):
        for cut, fold in zip(cuts, [*folds, *[False] * len(cuts)], strict=False):
            summary.written(data[position : position + cut])
            position = min(position + cut, len(data))
            if fold:
                summary.fold()
        summary.written(data[position:])
        result = summary.result(whole=True)
    if not data:
        assert result is None
        return
    assert result is not None and result["bytes"] == len(data)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "metrics.jsonl").write_bytes(data)
        part = MetricsPart.read(Path(tmp), ["metrics.jsonl"], None)
        expected = [_summary_json(key, found) for key, found in part.summary().items()]
    assert orjson.dumps(summary_entries(result)) == orjson.dumps(expected)


def test_an_incomplete_last_line_gives_no_summary() -> None:
    summary = MetricsSummary("metrics.jsonl")
    summary.opened(0)
    summary.written(b'{"step":0,"time":1.0,"seg":0,"m":{"x":1}}\n{"step":1,')
    assert summary.result() is None


def test_a_file_that_was_not_empty_or_was_reopened_gives_no_summary() -> None:
    line = b'{"step":0,"time":1.0,"seg":0,"m":{"x":1}}\n'
    resumed = MetricsSummary("metrics.jsonl")
    resumed.opened(100)  # another segment's lines are in it
    resumed.written(line)
    assert resumed.result() is None
    reopened = MetricsSummary("metrics.jsonl")
    reopened.opened(0)
    reopened.written(line)
    reopened.opened(0)  # deleted under the writer and made again: the first line is gone
    reopened.written(line)
    assert reopened.result() is None


def test_a_line_that_is_not_what_the_writer_writes_gives_no_summary() -> None:
    for bad in (
        b'{"step":0,"time":1.0,"seg":0,"m":{"x":"high"}}\n',
        b'{"step":0.5,"time":1.0,"seg":0,"m":{"x":1}}\n',
        b'{"time":1.0,"seg":0,"m":{"x":1}}\n',
        b'{"step":0,"time":1.0,"seg":0,"m":{"x":true}}\n',
        b"[1, 2]\n",
        b"not json\n",
    ):
        summary = MetricsSummary("metrics.jsonl")
        summary.opened(0)
        summary.written(b'{"step":0,"time":1.0,"seg":0,"m":{"x":1,"y":2}}\n' + bad)
        assert summary.result() is None, bad


# ------------------------------------------------------------------ the reader's shortcut


def test_a_cold_listing_reads_two_files_per_finished_run(tmp_path: Path) -> None:
    """Without a cache, the rows of ended runs come from run.jsonl and params.jsonl alone."""
    store = tmp_path / "store"
    for index in range(3):
        with runjournal.start(store=store, capture=False, params={"i": index}) as run:
            log_steps(run, 50)
    _scan.COUNTER.reset()
    rows = Catalog(store, cache=False).entries(metrics=True, captured=False)
    assert _scan.COUNTER.files == 2 * len(rows) == 6
    frame = load_runs(store, cache=False)
    assert frame["metrics.loss"].tolist() == [1.0 / 50] * 3


def test_the_query_cache_keeps_summarized_rows_and_folds_the_history_when_asked(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    with runjournal.start(store=store, capture=False) as run:
        log_steps(run, 30)
    cold = load_runs(store)
    assert entry(store, run.id).digest().summarized is not None
    _scan.COUNTER.reset()
    assert load_runs(store).equals(cold) and _scan.COUNTER.files == 0  # answered from the index
    history = load_metrics(store)
    assert len(history) == 60
    _scan.COUNTER.reset()
    assert load_metrics(store).equals(history)
    assert _scan.COUNTER.files == 0  # the columns the first history read kept
    assert load_runs(store).equals(cold)


def test_a_crashed_run_reads_its_history(tmp_path: Path) -> None:
    """No end event, no summary: the history is read."""
    store = tmp_path / "store"
    child = run_child(
        """
        run = runjournal.start(capture=False)
        for step in range(20):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        run.flush()
        print("id", run.id, flush=True)
        os._exit(0)
        """,
        child_env(store),
    )
    run_id = next(line.split()[1] for line in child.stdout_lines if line.startswith("id "))
    made = assert_row_from_history(store, run_id)
    assert made.row is not None and made.row["metrics"]["summary"][0][1] == 1.0 / 20


def test_a_resumed_run_reads_its_history(tmp_path: Path) -> None:
    """The first segment's summary does not cover the second's lines; the second gives none."""
    store = tmp_path / "store"
    with runjournal.start(store=store, capture=False) as run:
        log_steps(run, 10)
    assert run.dir is not None and "summary" in events(run.dir, "end")[0]
    with runjournal.start(store=store, run_id=run.id, resume=True, capture=False) as again:
        log_steps(again, 10, start=3)  # a restart from an older checkpoint
    ends = events(run.dir, "end")
    assert len(ends) == 2 and "summary" not in ends[1]
    made = assert_row_from_history(store, run.id)
    assert made.row is not None
    assert made.row["metrics"]["summary"][0][1:] == [1.0 / 13, 12, 1.0 / 13, 12, 1.0, 0, 13]


def test_a_resume_that_logs_nothing_reads_its_history(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with runjournal.start(store=store, capture=False) as run:
        log_steps(run, 10)
    with runjournal.start(store=store, run_id=run.id, resume=True, capture=False):
        pass
    assert_row_from_history(store, run.id)


def test_a_resume_that_writes_the_whole_file_summarizes_it(tmp_path: Path) -> None:
    """A first segment that logged nothing leaves no file: the second writes all of it."""
    store = tmp_path / "store"
    with runjournal.start(store=store, capture=False) as run:
        pass
    with runjournal.start(store=store, run_id=run.id, resume=True, capture=False) as again:
        log_steps(again, 10)
    assert_row_from_summary(store, run.id)


def test_a_run_resumed_and_still_running_reads_its_history(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with runjournal.start(store=store, capture=False) as run:
        log_steps(run, 10)
    again = runjournal.start(store=store, run_id=run.id, resume=True, capture=False)
    try:
        assert_row_from_history(store, run.id)  # the last lifecycle event is the resume
    finally:
        again.end()


def test_an_extra_writers_file_makes_the_reader_read_the_history(tmp_path: Path) -> None:
    store = tmp_path / "store"
    run = runjournal.start(store=store, capture=False)
    log_steps(run, 10)
    rank = runjournal.attach(run.id, store=store, writer="rank1")
    rank.log({"loss": 0.001}, step=50)
    rank.end()
    run.end()
    made = assert_row_from_history(store, run.id)
    assert made.row is not None and made.row["metrics"]["summary"][0][1:3] == [0.001, 50]


def test_a_backlog_too_large_at_end_gives_no_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """end() does not fold more than END_FOLD_LIMIT bytes: the reader reads the history."""
    monkeypatch.setattr(_end_summary, "END_FOLD_LIMIT", 1000)
    store = tmp_path / "store"
    with runjournal.start(store=store, capture=False, flush_interval=3600) as run:
        log_steps(run, 100)  # about 6 kB, all unfolded at the end
    assert run.dir is not None and "summary" not in events(run.dir, "end")[0]
    assert_row_from_history(store, run.id)
    with runjournal.start(store=store, capture=False, flush_interval=3600) as folded:
        log_steps(folded, 100)
        folded.flush()
        assert folded._writer is not None and folded._writer.summary is not None
        folded._writer.summary.fold()  # the flusher thread's work: nothing left for end()
        log_steps(folded, 5, start=100)
    assert_row_from_summary(store, folded.id)


def test_a_backlog_the_flusher_cannot_keep_up_with_gives_no_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_end_summary, "MAX_BACKLOG", 1000)
    store = tmp_path / "store"
    with runjournal.start(store=store, capture=False, flush_interval=3600) as run:
        log_steps(run, 50)
        run.flush()
        assert run._writer is not None and run._writer.summary is not None
        assert not run._writer.summary.usable  # given up, and its bytes let go
    assert run.dir is not None and "summary" not in events(run.dir, "end")[0]
    assert_row_from_history(store, run.id)


@pytest.mark.parametrize("change", ["append", "truncate", "edit", "replace"])
def test_a_metrics_file_changed_after_the_end_reads_its_history(
    tmp_path: Path, change: str
) -> None:
    """A file of another size than the summary says is read; so is the reader's row."""
    store = tmp_path / "store"
    with runjournal.start(store=store, capture=False) as run:
        log_steps(run, 10)
    assert run.dir is not None
    assert_row_from_summary(store, run.id)
    path = run.dir / "metrics.jsonl"
    data = path.read_bytes()
    if change == "append":
        path.write_bytes(data + b'{"step":99,"time":1.0,"seg":0,"m":{"loss":-1.0}}\n')
    elif change == "truncate":
        path.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1])  # the last line gone
    elif change == "edit":
        path.write_bytes(data.replace(b'"loss":0.1,', b'"loss":-10.125,'))
    else:
        os.unlink(path)
        path.write_bytes(data + data)  # another file, twice the lines
    made = assert_row_from_history(store, run.id)
    assert made.row is not None
    if change in ("append", "edit"):
        assert made.row["metrics"]["summary"][0][3] < 0  # the new smallest loss


def test_a_changed_metrics_file_invalidates_a_cached_summarized_row(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with runjournal.start(store=store, capture=False) as run:
        log_steps(run, 10)
    assert run.dir is not None
    assert load_runs(store)["metrics.loss"].tolist() == [0.1]
    with (run.dir / "metrics.jsonl").open("ab") as file:
        file.write(b'{"step":99,"time":1.0,"seg":0,"m":{"loss":-1.0}}\n')
    assert load_runs(store)["metrics.loss"].tolist() == [-1.0]
    assert load_runs(store, cache=False)["metrics.loss"].tolist() == [-1.0]


def test_a_malformed_summary_is_not_used(tmp_path: Path) -> None:
    """An end event whose summary makes no sense (edited by hand, another tool) is read past."""
    store = tmp_path / "store"
    with runjournal.start(store=store, capture=False) as run:
        log_steps(run, 10)
    assert run.dir is not None
    path = run.dir / "run.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    end = orjson.loads(lines[-1])
    end["summary"]["metrics"]["loss"]["count"] = "ten"
    path.write_bytes(b"".join(lines[:-1]) + orjson.dumps(end) + b"\n")
    assert_row_from_history(store, run.id)


def test_the_end_event_keeps_its_summary_out_of_the_row(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with runjournal.start(store=store, capture=False) as run:
        log_steps(run, 3)
    made = entry(store, run.id)
    assert made.row is not None and "summary" not in made.row["last"]
    assert made.row["last"]["status"] == "completed"


# ------------------------------------------------------------------ steps


def test_eight_threads_after_an_explicit_step_get_distinct_automatic_steps(
    tmp_path: Path,
) -> None:
    """The automatic steps are made once, under a lock, when the first call omits one."""
    run = runjournal.start(store=tmp_path / "store", capture=False, flush_interval=3600)
    run.log({"x": 0.0}, step=100)  # the next automatic step is 101, kept as an int
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(400):
            run.log({"x": 1.0})

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.end()
    assert run.dir is not None
    steps = [
        orjson.loads(line)["step"] for line in (run.dir / "metrics.jsonl").read_bytes().splitlines()
    ]
    assert steps[0] == 100 and sorted(steps[1:]) == list(range(101, 101 + 8 * 400))


def test_automatic_steps_count_on_from_the_last_explicit_one(tmp_path: Path) -> None:
    run = runjournal.start(store=tmp_path / "store", capture=False)
    run.log({"x": 1.0})
    run.log({"x": 1.0}, step=7)
    run.log({"x": 1.0})
    run.log({"x": 1.0})
    run.log({"x": 1.0}, step=3)
    run.log({"x": 1.0})
    run.log({"x": 1.0}, step=2**63 - 1)
    with pytest.raises(InvalidValueError, match="no step follows"):
        run.log({"x": 1.0})
    run.end()
    assert run.dir is not None
    steps = [
        orjson.loads(line)["step"] for line in (run.dir / "metrics.jsonl").read_bytes().splitlines()
    ]
    assert steps == [0, 7, 8, 9, 3, 4, 2**63 - 1]


def test_the_documented_summary_is_one_a_reader_uses() -> None:
    """The end event example of docs/format.md with a summary is well formed for the reader."""
    doc = (Path(__file__).parent.parent / "docs" / "format.md").read_text(encoding="utf-8")
    examples = [orjson.loads(block) for block in re.findall(r"```json\n(.*?)```", doc, re.DOTALL)]
    (end,) = [example for example in examples if "summary" in example]
    entries = summary_entries(end["summary"])
    assert entries is not None and [entry[0] for entry in entries] == list(
        end["summary"]["metrics"]
    )


# ------------------------------------------------------------------ failed writes


@contextlib.contextmanager
def failing_writes(fd: int, *, times: int, partial: int) -> Iterator[list[int]]:
    """Writes to ``fd`` fail (ENOSPC) ``times`` times, each after one short write of ``partial``."""
    real_write = os.write
    failed: list[int] = []
    short = [False]

    def write(target: int, data: Any) -> int:
        if target != fd or len(failed) >= times:
            return real_write(target, data)
        if partial and not short[0]:  # the disk takes a few bytes, and returns their count
            short[0] = True
            return real_write(target, bytes(data[:partial]))
        short[0] = False
        failed.append(1)
        del data  # as a real os.write, keep no view of the buffer once it has failed
        raise OSError(28, "No space left on device")

    os.write = write
    try:
        yield failed
    finally:
        os.write = real_write


def _lenient_run_and_metrics_fd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, runjournal.Run, int]:
    """A lenient run with 10 steps flushed, and the descriptor of its open metrics file."""
    monkeypatch.delenv("RUNJOURNAL_STRICT", raising=False)
    store = tmp_path / "store"
    run = runjournal.start(store=store, capture=False, flush_interval=3600)
    log_steps(run, 10)
    run.flush()
    assert run._writer is not None
    fd = run._writer._files["metrics.jsonl"]._fd
    assert fd is not None
    return store, run, fd


@pytest.mark.filterwarnings("ignore::runjournal.errors.RunjournalWarning")
def test_writes_cut_short_and_retried_are_summarized_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk cuts writes in the middle of a line; the retries complete it, in order."""
    store, run, fd = _lenient_run_and_metrics_fd(tmp_path, monkeypatch)
    with failing_writes(fd, times=3, partial=7) as failed:
        log_steps(run, 10, start=10)
        run.flush()  # 7 bytes land, the rest is kept and retried
        log_steps(run, 10, start=20)
        run.flush()
    assert len(failed) == 2
    log_steps(run, 10, start=30)
    run.end()
    assert run.dir is not None
    assert [
        orjson.loads(x)["step"] for x in (run.dir / "metrics.jsonl").read_bytes().split(b"\n")[:-1]
    ] == list(range(40))
    assert "summary" in events(run.dir, "end")[0]
    assert_row_from_summary(store, run.id)


@pytest.mark.filterwarnings("ignore::runjournal.errors.RunjournalWarning")
def test_metric_lines_that_cannot_be_written_at_the_end_leave_no_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end event is still written; it just holds no summary of a file it could not finish."""
    store, run, fd = _lenient_run_and_metrics_fd(tmp_path, monkeypatch)
    log_steps(run, 10, start=10)
    with failing_writes(fd, times=100, partial=0):
        run.end()
    assert run.dir is not None
    (end,) = events(run.dir, "end")
    assert end["status"] == "completed" and "summary" not in end
    assert [e["key"] for e in events(run.dir, "error")] == ["metrics.jsonl"]
    assert_row_from_history(store, run.id)


def test_the_flusher_leaves_a_burst_unfolded_until_the_rate_is_low(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lines that came faster than FOLD_RATE wait; once time makes the rate low, they are folded."""
    import time
    import types

    clock = [1000.0]
    fake = types.SimpleNamespace(monotonic=lambda: clock[0], sleep=time.sleep)
    monkeypatch.setattr(_end_summary, "time", fake)
    summary = MetricsSummary("metrics.jsonl")
    summary.opened(0)
    line = b'{"step":0,"time":1.0,"seg":0,"m":{"loss":0.5}}\n'
    burst = line * (2 * _end_summary.FOLD_RATE // len(line))  # two seconds at FOLD_RATE
    summary.written(burst)
    clock[0] += 1.0
    summary.fold_when_quiet()
    assert summary._backlog_bytes == len(burst)  # 2 MiB in 1 s: too fast, left for later
    clock[0] += 1.5
    summary.fold_when_quiet()
    assert summary._backlog_bytes == 0
    result = summary.result()
    assert result is not None and result["metrics"]["loss"]["count"] == burst.count(b"\n")
