"""The system sampler: real samples, the off switch, end(), psutil errors, reading them back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import runjournal
from runjournal import _sampler
from runjournal.errors import InvalidArgumentError

_DOCUMENTED = {
    "proc/cpu_percent",
    "proc/rss_bytes",
    "proc/threads",
    "proc/open_files",
    "sys/cpu_percent",
    "sys/mem_used_bytes",
    "sys/swap_used_bytes",
}


def _samples(run: runjournal.Run) -> list[dict[str, Any]]:
    assert run.dir is not None
    path = run.dir / "system.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "runjournal-sampler"]


def _run_until(run: runjournal.Run, samples: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    assert run._sampler is not None
    while run._sampler.samples < samples and time.monotonic() < deadline:
        time.sleep(0.02)


def test_samples_land_with_the_documented_series() -> None:
    run = runjournal.start(system_metrics=0.05)
    _run_until(run, 3)
    run.end()
    samples = _samples(run)
    assert len(samples) >= 3
    for sample in samples:
        assert sample["seg"] == 0 and isinstance(sample["time"], float)
        assert set(sample["s"]) >= _DOCUMENTED
        assert all(isinstance(v, (int, float)) for v in sample["s"].values())
    assert samples[0]["s"]["proc/rss_bytes"] > 1_000_000
    assert (
        "sys/disk_read_bytes_per_s" in samples[-1]["s"]
        or "sys/net_sent_bytes_per_s" in (samples[-1]["s"])
    )
    assert not any(key.startswith("gpu") for key in samples[0]["s"])  # no GPU on a test box


def test_end_stops_the_sampler_and_no_sample_follows_the_end() -> None:
    run = runjournal.start(system_metrics=0.02)
    _run_until(run, 1)
    run.end()
    assert not _sampler_threads()
    count = len(_samples(run))
    time.sleep(0.1)
    assert len(_samples(run)) == count
    assert run.dir is not None
    last_event = json.loads((run.dir / "run.jsonl").read_text().splitlines()[-1])
    assert last_event["event"] == "end" and last_event["time"] >= _samples(run)[-1]["time"]


def test_off_switch_and_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    run = runjournal.start(system_metrics=False)
    assert run._sampler is None and not _sampler_threads()
    run.end()
    monkeypatch.setenv("RUNJOURNAL_SYSTEM_METRICS", "0")
    with runjournal.start() as run:
        assert run._sampler is None
    monkeypatch.setenv("RUNJOURNAL_SYSTEM_METRICS", "2.5")
    with runjournal.start() as run:
        assert run._sampler is not None and run._sampler.interval == 2.5
    monkeypatch.delenv("RUNJOURNAL_SYSTEM_METRICS")
    with runjournal.start() as run:
        assert run._sampler is not None and run._sampler.interval == _sampler.DEFAULT_INTERVAL


@pytest.mark.parametrize("bad", [0, -1, "soon", float("nan")])
def test_bad_intervals_are_refused(bad: object) -> None:
    with pytest.raises(InvalidArgumentError):
        runjournal.start(system_metrics=bad)  # type: ignore[arg-type]


def test_disabled_run_has_no_sampler() -> None:
    run = runjournal.start(mode="disabled", system_metrics=0.01)
    assert run._sampler is None
    run.end()


def test_access_denied_drops_that_series_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: psutil.Process) -> int:
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "num_fds", denied)
    run = runjournal.start(system_metrics=0.02)
    _run_until(run, 2)
    run.end()
    samples = _samples(run)
    assert len(samples) >= 2
    assert all("proc/open_files" not in s["s"] and "proc/rss_bytes" in s["s"] for s in samples)


def test_a_failing_sample_does_not_kill_the_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = _sampler._read_system

    def flaky(values: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("psutil broke")
        real(values)

    monkeypatch.setattr(_sampler, "_read_system", flaky)
    run = runjournal.start(system_metrics=0.02)
    _run_until(run, 2)
    run.end()
    assert calls["n"] >= 3 and len(_samples(run)) >= 2


def test_heartbeats_keep_working_with_the_sampler() -> None:
    run = runjournal.start(system_metrics=0.02, heartbeat_interval=0.05, flush_interval=0.02)
    time.sleep(0.3)
    run.end()
    assert run.dir is not None
    events = [
        json.loads(line)["event"] for line in (run.dir / "run.jsonl").read_text().splitlines()
    ]
    assert events.count("heartbeat") >= 2 and _samples(run)


def test_nvidia_smi_rows_parse() -> None:
    values = _sampler.parse_smi("0, 87, 1024, 71, 250.5\n1, [N/A], 0, 40, [N/A]\n")
    assert values["gpu0/mem_used_bytes"] == 1024 * 1024 * 1024
    assert values["gpu1/temp_c"] == 40.0 and "gpu1/util_percent" not in values


def test_load_metrics_with_system(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    with runjournal.start(system_metrics=0.02) as run:
        run.log({"loss": 1.0})
        _run_until(run, 2)
    frame = runjournal.load_metrics(runs=run.id, system=True)
    system = frame[frame["key"].str.startswith("system/")]
    assert set(frame.columns) == {"run_id", "step", "time", "key", "value"}
    assert "system/proc/rss_bytes" in set(system["key"])
    assert sorted(set(system["step"]))[:2] == [0, 1]
    assert list(frame[frame["key"] == "loss"]["value"]) == [1.0]
    only = runjournal.load_metrics(runs=run.id, keys="system/proc/threads", system=True)
    assert set(only["key"]) == {"system/proc/threads"}
    assert "system/proc/rss_bytes" not in set(runjournal.load_metrics(runs=run.id)["key"])
    raw = runjournal.load_metrics(runs=run.id, system=True, raw=True)
    assert (raw["segment"] == 0).all()
    with pytest.raises(InvalidArgumentError):
        runjournal.load_metrics(runs=run.id, system=True, wide=True)


_FORK_AFTER_START = """
import os, sys, runjournal
run = runjournal.start(store=sys.argv[1], capture=False)  # the sampler imports psutil now
pid = os.fork()
if pid == 0:
    import psutil  # hangs if the fork caught the sampler thread inside that import
    os._exit(0)
_, status = os.waitpid(pid, 0)
run.end()
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("attempt", range(3))
def test_a_child_forked_right_after_start_can_import_what_the_sampler_imports(
    tmp_path: Path, attempt: int
) -> None:
    """A fork waits for the sampler's import of psutil, so the child never inherits its lock."""
    script = tmp_path / "fork_after_start.py"
    script.write_text(_FORK_AFTER_START)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
