"""Console capture into output.log, and the `runjournal logs` and `runjournal tail` commands."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import runjournal
from runjournal import cli
from runjournal.errors import InvalidArgumentError

_SCRIPT = """
import os, subprocess, sys, runjournal
run = runjournal.start(store=sys.argv[1], capture_output={mode!r}, system_metrics=False)
print("printed line")
sys.stderr.write("stderr line\\n")
os.write(1, b"fd1 line\\n")
subprocess.run([sys.executable, "-c", "print('child line')"], check=True)
run.end()
print("after end")
print(run.id, file=sys.stderr)
"""


def _run_script(
    tmp_path: Path, mode: object, source: str = _SCRIPT
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run a script that logs to a run of the store and prints the run id last on stderr."""
    store = tmp_path / "store"
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source.format(mode=mode)))
    done = subprocess.run(
        [sys.executable, str(script), str(store)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stderr.strip().splitlines()[-1]
    return done, store / "runs" / run_id / "output.log"


def test_fd_mode_captures_print_fd_writes_and_children(tmp_path: Path) -> None:
    done, log = _run_script(tmp_path, "fd")
    for line in ("printed line", "fd1 line", "child line", "after end"):
        assert line in done.stdout  # still reaches the terminal
    assert "stderr line" in done.stderr
    logged = log.read_text()
    for line in ("printed line", "fd1 line", "child line", "stderr line"):
        assert line + "\n" in logged
    assert "after end" not in logged


_SLOW_SCRIPT = """
import os, subprocess, sys, time, runjournal
from runjournal import _console

forward = _console._Pipe._forward
def slow_forward(self, chunk, *, log):  # a loaded machine: the copy thread lags behind
    time.sleep(0.3)
    forward(self, chunk, log=log)
_console._Pipe._forward = slow_forward

run = runjournal.start(store=sys.argv[1], capture_output={mode!r}, system_metrics=False)
for index in range(5):
    os.write(1, b"line %d\\n" % index)
    time.sleep(0.05)
late = "import time; time.sleep(1); print('late child line', flush=True)"
child = subprocess.Popen([sys.executable, "-c", late])  # holds the pipe past the run
run.end()
os.write(2, run.id.encode() + b"\\n")
child.wait()
time.sleep(1)  # the copy thread forwards what the child wrote
"""


def test_fd_mode_logs_everything_written_before_end_however_far_the_copy_lags(
    tmp_path: Path,
) -> None:
    """A lagging copy thread loses nothing; a child outliving the run reaches only the terminal."""
    done, log = _run_script(tmp_path, "fd", _SLOW_SCRIPT)
    logged = log.read_text()
    assert logged == "".join(f"line {index}\n" for index in range(5))
    assert "late child line" in done.stdout


def test_python_mode_captures_what_python_prints(tmp_path: Path) -> None:
    done, log = _run_script(tmp_path, True)
    for line in ("printed line", "fd1 line", "child line", "after end"):
        assert line in done.stdout
    logged = log.read_text()
    assert "printed line\n" in logged and "stderr line\n" in logged
    assert "fd1 line" not in logged and "child line" not in logged  # below Python's streams
    assert "after end" not in logged


def test_python_mode_restores_the_streams(capsys: pytest.CaptureFixture[str]) -> None:
    before = sys.stdout, sys.stderr
    run = runjournal.start(capture_output=True, system_metrics=False)
    assert sys.stdout is not before[0]
    print("hello")
    run.end()
    assert (sys.stdout, sys.stderr) == before
    assert "hello" in capsys.readouterr().out
    assert run.dir is not None and (run.dir / "output.log").read_text() == "hello\n"


def test_no_capture_by_default_and_bad_values_are_refused() -> None:
    with runjournal.start(system_metrics=False) as run:
        print("not captured")
    assert run.dir is not None and not (run.dir / "output.log").exists()
    with pytest.raises(InvalidArgumentError):
        runjournal.start(capture_output="pipe")  # type: ignore[arg-type]


def test_logs_prints_output_log(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    _, log = _run_script(tmp_path, "fd")
    capfdbinary.readouterr()
    store = str(tmp_path / "store")
    assert cli.main(["--store", store, "logs", log.parent.name]) == 0
    assert capfdbinary.readouterr().out == log.read_bytes()


def test_logs_without_output_log_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with runjournal.start(system_metrics=False) as run:
        pass
    assert cli.main(["logs", run.id]) == 1
    assert "no output.log" in capsys.readouterr().err


def _end_later(run: runjournal.Run, action: object = None, delay: float = 0.4) -> threading.Thread:
    def later() -> None:
        time.sleep(delay)
        if callable(action):
            action()
        time.sleep(delay)
        run.end()

    thread = threading.Thread(target=later)
    thread.start()
    return thread


def test_logs_follow_prints_new_output_and_exits_when_the_run_ends(
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    run = runjournal.start(system_metrics=False, flush_interval=0.05)
    assert run.dir is not None
    log = run.dir / "output.log"
    log.write_bytes(b"first\n")  # as the flusher would append it

    def append() -> None:
        with log.open("ab") as file:
            file.write(b"second\n")

    thread = _end_later(run, append)
    began = time.monotonic()
    assert cli.main(["logs", run.id, "-f", "--interval", "0.05"]) == 0
    thread.join()
    assert time.monotonic() - began < 10
    assert capfdbinary.readouterr().out == b"first\nsecond\n"


def test_tail_shows_last_rows_then_new_ones(capsys: pytest.CaptureFixture[str]) -> None:
    run = runjournal.start(system_metrics=False, flush_interval=0.05)
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1)})
    run.flush()
    thread = _end_later(run, lambda: run.log({"loss": float("nan"), "lr": 0.1}))
    assert cli.main(["tail", run.id, "-n", "2", "--interval", "0.05"]) == 0
    thread.join()
    out = capsys.readouterr().out.splitlines()
    assert out == ["step 3  loss=0.25", "step 4  loss=0.2", "step 5  loss=nan  lr=0.1"]


def test_fd_capture_restores_descriptors_in_process(tmp_path: Path) -> None:
    """After end(), fd 1 is the original again (checked in a child, where fd 1 is a pipe)."""
    script = tmp_path / "restore.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys, runjournal
            before = os.fstat(1).st_ino
            run = runjournal.start(store={str(tmp_path / "s")!r}, capture_output="fd",
                                   system_metrics=False)
            during = os.fstat(1).st_ino
            run.end()
            print(before == os.fstat(1).st_ino, before != during)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_fd_capture_with_a_closed_stdout_is_a_recorded_problem(tmp_path: Path) -> None:
    """A daemon without descriptor 1 still gets its run; the capture is reported, not raised."""
    script = tmp_path / "closed.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys, warnings, runjournal
            os.close(1)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                run = runjournal.start(store={str(tmp_path / "s")!r}, capture_output="fd",
                                       system_metrics=False)
            run.log({{"x": 1.0}})
            run.end()
            sys.stderr.write("\\n".join(str(w.message) for w in caught) + "\\n")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "console" in done.stderr and "capture incomplete" in done.stderr


def test_the_traceback_of_a_failed_run_is_in_output_log(tmp_path: Path) -> None:
    """Python prints it after end() restored the streams, so the run logs it itself."""
    script = tmp_path / "fails.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, runjournal
            run = runjournal.start(store={str(tmp_path / "s")!r}, capture_output=True,
                                   system_metrics=False)
            print(run.dir, file=sys.stderr)
            print("working")
            raise ValueError("boom")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "ValueError: boom" in done.stderr
    logged = (Path(done.stderr.splitlines()[0]) / "output.log").read_text()
    assert "\nworking\nTraceback" in logged and logged.endswith("ValueError: boom\n")
