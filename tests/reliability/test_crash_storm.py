"""A crash storm: hundreds of short training processes, each SIGKILLed at a random moment.

Every child (``_storm_child.py``) logs metrics, params, tags, notes (and data
references once ``Run.log_data`` exists) and reports what it knows is on disk.
A third of them are stopped by a hook at an exact place (inside ``start()``,
inside a flush, inside ``end()``, while the store marker is being placed,
with and without hard links) and killed there; the others are killed after a
random delay, after a random flush, or after ``end()``. Eight run at a time.

Afterwards the store is audited: every run loads; every reported line is
there, exactly, once; nothing but a torn last line is damaged; no file under a
final name is half written; statuses say what happened; nothing was written
outside the stores; ``runjournal doctor --fix`` then moves the torn lines
aside without losing any reported line.
"""

from __future__ import annotations

import contextlib
import random
import re
import subprocess
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from _disk import audit_store, changes, snapshot
from _storm_child import FREE_MODES, HOOKED_MODES

import runjournal
from _children import Child, assert_exact_values, child_env, printed_numbers
from runjournal.doctor import Kind, check_store, fix_store

HERE = Path(__file__).resolve().parent
CHILDREN = 200
AT_ONCE = 8
TIMER_MAX = 0.4
"""Seconds within which a ``timer`` child is killed, from its spawn or from its start()."""

# One cycle of modes: hooked places once each, free kills more often.
CYCLE = [*HOOKED_MODES, *(["timer"] * 6), *(["after-flush"] * 3), "after-end"]
assert set(CYCLE) == set(HOOKED_MODES) | set(FREE_MODES)


@dataclass
class Outcome:
    """One child: what it was told, what it printed, how it ended."""

    index: int
    mode: str
    seed: int
    store: Path
    stdout: list[str]
    stderr: str
    code: int

    @property
    def run_id(self) -> str:
        return f"storm-{self.index:05d}"

    def reported(self, word: str) -> list[int]:
        return printed_numbers(self.stdout, word)

    def said(self, line: str) -> bool:
        return line in self.stdout


@pytest.fixture
def storm_store(tmp_path: Path) -> Path:
    """The store every storm child writes to (the first child creates it)."""
    return tmp_path / "storm-store"


@pytest.fixture
def marker_stores(tmp_path: Path) -> Path:
    """The parent of the fresh stores of the children killed while creating a store."""
    path = tmp_path / "marker-stores"
    path.mkdir()
    return path


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    """A small input file the children log as a data reference."""
    path = tmp_path / "inputs" / "train.csv"
    path.parent.mkdir()
    path.write_text("x,y\n1,2\n3,4\n")
    return path


def _drive(
    index: int, mode: str, seed: int, store: Path, data_file: Path, kill_rng: random.Random
) -> Outcome:
    """Run one child and SIGKILL it at the moment its mode says."""
    env = child_env(store)
    env["PYTHONPATH"] = f"{HERE}:{env['PYTHONPATH']}"
    env["STORM_DATA_FILE"] = str(data_file)
    args = [mode, str(index), str(seed)]
    with Child("from _storm_child import main\nmain()", env, args) as child:
        if mode == "timer":
            if kill_rng.random() < 0.5:  # else from spawn: import and start() are fair game too
                child.expect(r"run \S+")
            with contextlib.suppress(subprocess.TimeoutExpired):  # the random moment has come
                child.proc.wait(kill_rng.uniform(0.0, TIMER_MAX))
        elif mode == "after-flush":
            target = kill_rng.randrange(25, 1000)
            while int(child.expect(r"flushed (\d+)")[1]) < target:
                pass
        elif mode == "after-end":
            child.expect("ended")
        else:
            child.expect(rf"paused {re.escape(mode)}")
        child.kill()
        code = child.wait()
    return Outcome(index, mode, seed, store, child.stdout_lines, child.stderr, code)


def _storm(
    count: int, storm_store: Path, marker_stores: Path, data_file: Path, seed: int
) -> list[Outcome]:
    rng = random.Random(seed)
    plan = []
    for index in range(count):
        mode = CYCLE[index % len(CYCLE)]
        store = marker_stores / f"m{index}" if mode.startswith("marker") else storm_store
        plan.append((index, mode, rng.randrange(2**32), store, random.Random(rng.random())))
    with ThreadPoolExecutor(AT_ONCE) as pool:
        futures = [
            pool.submit(_drive, index, mode, child_seed, store, data_file, kill_rng)
            for index, mode, child_seed, store, kill_rng in plan
        ]
        return [future.result() for future in futures]


def _lines_of(path: Path) -> list[dict[str, Any]]:
    """The complete, decodable lines of a file (a torn last line left out)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return [orjson.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]


def _check_run(outcome: Outcome, lost: Counter[str]) -> str:
    """Every reported record of one killed child is on disk, exactly; returns the status."""
    assert outcome.code == -9, f"{outcome.mode} child exited {outcome.code}:\n{outcome.stderr}"
    run_dir = outcome.store / "runs" / outcome.run_id
    events = _lines_of(run_dir / "run.jsonl")
    has_start = any(event["event"] == "start" for event in events)
    has_end = any(event["event"] == "end" for event in events)
    started = outcome.said(f"run {outcome.run_id}")
    if started:
        assert has_start, f"{outcome.run_id}: start() returned but its start event is missing"
    if not run_dir.exists():
        assert not started
        return "absent"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torn lines are reported by warnings: expected here
        record = runjournal.Store(outcome.store).run(outcome.run_id)
        rows = record.history(raw=True)
    assert {s.reason for s in record.skipped} <= {"incomplete last line", "no start event"}, (
        outcome.run_id,
        record.skipped,
    )
    expected_status = "completed" if has_end else "crashed" if has_start else "unknown"
    assert record.status == expected_status, (outcome.run_id, outcome.mode, record.status)
    if outcome.said("ended"):
        assert record.status == "completed"

    steps = sorted({row["step"] for row in rows})
    assert steps == list(range(len(steps))), f"{outcome.run_id}: steps are not a prefix"
    assert len(rows) == 6 * len(steps), f"{outcome.run_id}: a line is on disk twice"
    assert_exact_values(rows, range(len(steps)))
    flushed = max(outcome.reported("flushed"), default=0)
    if len(steps) < flushed:
        lost["metric lines"] += (flushed - len(steps)) * 6
    ending = outcome.reported("ending")
    if ending and outcome.mode.startswith("end"):
        # Paused at the end event: every line logged before end() is written first.
        assert len(steps) == ending[0], (outcome.run_id, len(steps), ending)

    if started:
        assert record.params["seed"] == outcome.seed and record.tags["child"] == outcome.index
    for k in outcome.reported("param"):
        if record.params.get(f"p{k}") != {"k": k, "inverse": 1 / (k + 1)}:
            lost["params"] += 1
    for k in outcome.reported("tag"):
        if record.tags.get(f"t{k}") != k:
            lost["tags"] += 1
    texts = [note.text for note in record.notes]
    for k in outcome.reported("note"):
        if f"note {k}: \u00e9t\u00e9 \U0001f680" not in texts:
            lost["notes"] += 1
    if outcome.reported("data"):
        names = {line.get("name") for line in _lines_of(run_dir / "data.jsonl")}
        missing = sum(f"d{k}" not in names for k in outcome.reported("data"))
        if missing:
            lost["data refs"] += missing
    return record.status


def _check_marker_store(outcome: Outcome) -> None:
    """A store killed while its marker was placed: no partial marker, and it still works."""
    assert outcome.code == -9, outcome.stderr
    marker = outcome.store / "runjournal.json"
    assert not marker.exists(), "the kill came before the marker was placed"
    assert [p.name for p in outcome.store.iterdir() if not p.name.startswith(".tmp-")] == []
    with runjournal.start(store=outcome.store) as run:
        run.log({"after": 1.0})
    assert orjson.loads(marker.read_bytes())["format"] == 1
    assert runjournal.Store(outcome.store).run(run.id).metrics == {"after": 1.0}


def test_a_storm_of_sigkilled_writers_loses_no_reported_line(
    tmp_path: Path,
    storm_store: Path,
    marker_stores: Path,
    data_file: Path,
    soak: int,
    tally: Any,
) -> None:
    """200+ children killed anywhere: every reported record is on disk, exactly; nothing broken."""
    outside = snapshot(tmp_path, exclude=(storm_store, marker_stores))
    count = CHILDREN * soak
    outcomes = _storm(count, storm_store, marker_stores, data_file, seed=random.randrange(2**32))
    assert changes(outside, snapshot(tmp_path, exclude=(storm_store, marker_stores))) == []

    lost: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome.mode.startswith("marker"):
            _check_marker_store(outcome)
            statuses["store never created"] += 1
        else:
            statuses[_check_run(outcome, lost)] += 1
    assert dict(lost) == {}, dict(lost)

    audit = audit_store(storm_store)
    assert audit.bad == [], audit.bad[:5]
    assert audit.half_written == []
    assert len({path for path, _ in audit.torn}) == len(audit.torn)  # at most one per file
    reported = sum(max(o.reported("flushed"), default=0) for o in outcomes) * 6

    result = tally("crash storm (SIGKILL anywhere)")
    result.repetitions += count
    result.runs += sum(1 for _ in (storm_store / "runs").iterdir())
    result.lines += audit.lines
    result.lost += sum(lost.values())
    result.corrupted += len(audit.bad) + len(audit.half_written)
    result.expect("torn last lines", len(audit.torn))
    result.expect("runs killed before their start event", statuses["unknown"])
    result.expect("left-over .tmp- files", len(audit.temp_files))
    result.expect("metric values reported flushed, all found", reported)
    print(f"statuses: {dict(statuses)}; modes: {dict(Counter(o.mode for o in outcomes))}")

    # The doctor finds exactly that damage, and --fix moves it aside losing nothing reported.
    report = check_store(storm_store, temp_age=0)
    kinds = Counter(problem.kind for problem in report.problems)
    assert set(kinds) <= {Kind.TORN_LINE, Kind.NO_START, Kind.TEMP_FILE}, kinds
    assert kinds[Kind.TORN_LINE] == len(audit.torn)
    assert kinds[Kind.NO_START] == statuses["unknown"]
    fixed = fix_store(storm_store, temp_age=0)
    assert fixed.removed_lines == len(audit.torn)
    assert {problem.kind for problem in fixed.after.problems} <= {Kind.NO_START}
    for outcome in outcomes:
        if not outcome.mode.startswith("marker"):
            _check_run(outcome, lost)
    assert dict(lost) == {}, dict(lost)
    assert audit_store(storm_store).torn == []


END_RACE = """
import threading
from runjournal import _writer
run = runjournal.start(flush_interval=0.001, heartbeat_interval=3600)
print("run", run.id, flush=True)
writer = run._writer
real_write_all = _writer.AppendFile._write_all
stalled = threading.Event()

def write_all(self, chunk):
    background = threading.current_thread() is not threading.main_thread()
    if background and chunk and self.path.name == "metrics.jsonl" and not stalled.is_set():
        stalled.set()  # this flush measured its lines before the last ones were logged
        deadline = time.monotonic() + 1.0
        while not writer._event_lines["run.jsonl"] and time.monotonic() < deadline:
            time.sleep(0.001)  # until end() has queued its end event (or a second)
    real_write_all(self, chunk)
    if self.path.name == "run.jsonl" and b'"event":"end"' in chunk:
        print("end event written", flush=True)
        threading.Event().wait()  # killed here

_writer.AppendFile._write_all = write_all
step = 0
while not stalled.is_set():
    run.log({"x": step})
    step += 1
for _ in range(100):
    run.log({"x": step})
    step += 1
print("ending", step, flush=True)
run.end()
"""


def test_the_end_event_is_written_after_every_line_logged_before_end(
    tmp_path: Path, tally: Any
) -> None:
    """Killed just after its end event is written, a run holds every line logged before end()."""
    store = tmp_path / "store"
    with Child(END_RACE, child_env(store)) as child:
        run_id = child.expect(r"run (\S+)")[1]
        child.expect("end event written")
        child.kill()
        child.wait()
    logged = printed_numbers(child.stdout_lines, "ending")[0]
    record = runjournal.Store(store).run(run_id)
    assert record.status == "completed"
    steps = [row["step"] for row in record.history()]
    assert steps == list(range(logged)), f"completed, yet {logged - len(steps)} lines are missing"
    result = tally("crash storm (SIGKILL anywhere)")
    result.repetitions += 1
    result.runs += 1
    result.lines += len(steps)
