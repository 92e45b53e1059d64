"""start() across processes: a requeued job resumes its run; a live run cannot be resumed.

Only the process-level behaviour of ``_start.py``; the argument checks of
``start()`` are unit-tested in ``test_run.py``.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import runjournal
from _children import Child, child_env, events, load_record, read_jsonl, run_child
from runjournal.errors import RunInProgressError

JOB = "slurm-4242"

# The same script every time the job runs: SLURM requeues it with the same
# RUNJOURNAL_RUN_ID, and start(resume="allow") creates the run or resumes it.
# An optional argument is the step of the checkpoint it restarts from.
TRAIN = """
from runjournal.errors import RunjournalWarning
warnings.simplefilter("error", RunjournalWarning)  # a param change warning fails the job
PARAMS = {"lr": 0.1, "model": {"depth": 50, "widths": [64, 128]}, "seed": 7}
run = runjournal.start("requeue", params=PARAMS, resume="allow")
run.log_params(PARAMS)  # re-logged by the training code as well: unchanged, so nothing new
restart_from = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] else None
for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 5):
    value = {"loss": 100 * run.segment + i}
    if i == 0 and restart_from is not None:
        run.log(value, step=restart_from)
    else:
        run.log(value)
print("segment", run.segment, flush=True)
"""


@pytest.fixture
def job_env(tmp_path: Path) -> dict[str, str]:
    """The environment of every attempt of SLURM job 4242."""
    return child_env(tmp_path / "store", RUNJOURNAL_RUN_ID=JOB, SLURM_JOB_ID="4242")


@pytest.fixture
def store(job_env: dict[str, str]) -> Path:
    """The store the job's attempts write to."""
    return Path(job_env["RUNJOURNAL_STORE"])


def _attempt(job_env: dict[str, str], *args: str) -> None:
    child = run_child(TRAIN, job_env, args=args)
    assert child.proc.returncode == 0, child.stderr


def test_a_requeued_job_resumes_its_run_as_a_second_segment(
    job_env: dict[str, str], store: Path
) -> None:
    """Two attempts with one RUNJOURNAL_RUN_ID: one run, 2 segments, steps go on, 1 params line."""
    _attempt(job_env, "", "10")
    _attempt(job_env)

    assert [path.name for path in (store / "runs").iterdir()] == [JOB]
    run_dir = store / "runs" / JOB
    lifecycle = [(e["event"], e["seg"]) for e in events(run_dir) if e["event"] != "heartbeat"]
    assert lifecycle == [("start", 0), ("end", 0), ("resume", 1), ("end", 1)]
    assert [line["seg"] for line in read_jsonl(run_dir / "params.jsonl")] == [0]
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert [(line["seg"], line["step"]) for line in metrics] == [
        *((0, step) for step in range(10)),
        *((1, step) for step in range(10, 15)),
    ]

    record = load_record(store, JOB)
    assert (record.status, record.segments, record.job_id) == ("completed", 2, "4242")
    assert record.params == {"lr": 0.1, "model": {"depth": 50, "widths": [64, 128]}, "seed": 7}
    assert [(row["step"], row["value"]) for row in record.history("loss")] == [
        *((step, step) for step in range(10)),
        *((step, 100 + step - 10) for step in range(10, 15)),
    ]


def test_steps_relogged_after_restarting_from_an_older_checkpoint_replace_the_old_ones(
    job_env: dict[str, str], store: Path
) -> None:
    """Steps re-logged by the resumed segment win in the default view; the raw view keeps all."""
    _attempt(job_env, "", "10")  # steps 0..9
    _attempt(job_env, "6", "6")  # the last checkpoint was step 6: steps 6..11

    record = load_record(store, JOB)
    assert [(row["step"], row["value"]) for row in record.history("loss")] == [
        *((step, step) for step in range(6)),
        *((step, 100 + step - 6) for step in range(6, 12)),
    ]
    raw = [(row["step"], row["segment"], row["value"]) for row in record.history("loss", raw=True)]
    assert raw == sorted(
        [(step, 0, step) for step in range(10)]
        + [(step, 1, 100 + step - 6) for step in range(6, 12)],
        key=lambda row: (row[0], row[1]),
    )


HOLD_RUN_OPEN = """
run = runjournal.start(resume="allow")
run.log({"loss": 1.0})
print("started", run.id, flush=True)
sys.stdin.readline()  # until the test lets it finish
"""


def test_resuming_a_run_whose_process_is_alive_raises_run_in_progress(
    job_env: dict[str, str], store: Path
) -> None:
    """A run still being written by a live process on this host cannot be resumed."""
    with Child(HOLD_RUN_OPEN, job_env) as holder:
        holder.expect(f"started {JOB}")
        before = (store / "runs" / JOB / "run.jsonl").read_bytes()
        for resume in (True, "allow"):
            with pytest.raises(RunInProgressError) as raised:
                runjournal.start(store=store, run_id=JOB, resume=resume)
            assert raised.value.ref == JOB and str(holder.pid) in str(raised.value)
        assert (store / "runs" / JOB / "run.jsonl").read_bytes() == before  # nothing appended
        holder.close_stdin()
        assert holder.wait() == 0, holder.stderr

    resumed = runjournal.start(store=store, run_id=JOB, resume=True)
    assert resumed.segment == 1
    resumed.end()


def test_a_run_whose_process_was_killed_can_be_resumed(
    job_env: dict[str, str], store: Path
) -> None:
    """After kill -9 the run reads as crashed, and the requeued job resumes it."""
    with Child(HOLD_RUN_OPEN, job_env) as holder:
        holder.expect(f"started {JOB}")
        holder.send(signal.SIGKILL)
        assert holder.wait() == -signal.SIGKILL
    assert load_record(store, JOB).status == "crashed"

    _attempt(job_env)
    record = load_record(store, JOB)
    assert (record.status, record.segments) == ("completed", 2)
    kinds = [e["event"] for e in events(store / "runs" / JOB) if e["event"] != "heartbeat"]
    assert kinds == ["start", "resume", "end"]
