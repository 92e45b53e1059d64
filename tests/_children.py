"""Child processes for the process-level tests: environments, scripts, and reading what they wrote.

A child is a fresh ``python -c <script>`` (``sys.executable``, so the same venv)
with an explicit environment: the store in ``RUNJOURNAL_STORE``, strictness
set or unset on purpose, and this directory on ``PYTHONPATH`` so that scripts
can import :func:`metric_values`. Its stdout is read line by line in a thread,
so a test can wait for a line the child prints ("flushed 40", "logged 2000")
and then signal it; every wait has a timeout, so a hang fails fast instead of
stalling the suite.
"""

from __future__ import annotations

import math
import os
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

TESTS_DIR = Path(__file__).resolve().parent
TIMEOUT = 60.0
"""Seconds any single wait on a child may take before the test fails."""

PRELUDE = """\
import math, os, signal, sys, time, warnings
import runjournal
from _children import metric_values
"""


def child_env(store: Path, *, strict: bool = True, **extra: str | None) -> dict[str, str]:
    """The environment of a child: this one, minus runjournal settings, plus these.

    Args:
        store: Becomes ``RUNJOURNAL_STORE``.
        strict: Set ``RUNJOURNAL_STRICT=1`` (True) or leave it unset (False).
        extra: More variables; a None value removes the variable.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNJOURNAL_")}
    env["RUNJOURNAL_STORE"] = str(store)
    if strict:
        env["RUNJOURNAL_STRICT"] = "1"
    paths = [str(TESTS_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def script(body: str) -> str:
    """A child script: the common imports, then ``body`` (dedented)."""
    return PRELUDE + textwrap.dedent(body)


class Child:
    """A running child process whose stdout lines arrive in a queue.

    Use as a context manager: a child still running at the end is killed.
    """

    def __init__(self, body: str, env: dict[str, str], args: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script(body), *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout_lines: list[str] = []
        self._stderr: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self._stderr.extend(self.proc.stderr)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    @property
    def stderr(self) -> str:
        """What the child wrote to stderr so far (all of it once :meth:`wait` returned)."""
        return "".join(self._stderr)

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Wait for a stdout line that matches ``pattern`` in full; fail if the child ends first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout} s; stderr:\n{self.stderr}"
                ) from None
            if line is None:
                self.wait()
                raise AssertionError(
                    f"the child exited ({self.proc.returncode}) before printing a line"
                    f" matching {pattern!r}; stdout:\n"
                    + "\n".join(self.stdout_lines[-20:])
                    + f"\nstderr:\n{self.stderr}"
                )
            if match := re.fullmatch(pattern, line):
                return match

    def send(self, signum: int) -> None:
        """Send a signal to the child."""
        os.kill(self.proc.pid, signum)

    def tell(self, line: str) -> None:
        """Write a line to the child's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        """Close the child's stdin (a child blocked reading it then goes on)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Wait for the child to exit and for its output to be read; returns the exit code."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the child did not exit within {timeout} s; stderr:\n{self.stderr}"
            ) from None
        for reader in self._readers:
            reader.join(timeout)
        return code

    def kill(self) -> None:
        """SIGKILL the child if it still runs, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
        for reader in self._readers:
            reader.join(TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run_child(
    body: str, env: dict[str, str], args: Sequence[str] = (), timeout: float = TIMEOUT
) -> Child:
    """Run a child script to its end and return it (exit code in ``child.proc.returncode``)."""
    with Child(body, env, args) as child:
        child.close_stdin()
        child.wait(timeout)
    return child


def printed_numbers(lines: list[str], word: str) -> list[int]:
    """The numbers N of the lines ``<word> N`` a child printed, in order."""
    return [int(m[1]) for line in lines if (m := re.fullmatch(rf"{word} (\d+)", line))]


# -- values that must come back exactly ---------------------------------------------


def metric_values(i: int) -> dict[str, float | int]:
    """The metrics a test child logs at its ``i``-th call: values that stress exactness.

    Shortest-repr floats, a subnormal, ints past 2**63 and past 2**64 (a tagged
    integer), -0.0, NaN and both infinities.
    """
    special = (math.inf, -math.inf, math.nan, -0.0, 0.1)[i % 5]
    return {
        "loss": 1 / (i + 3),
        "lr": 0.1 * i,
        "tiny": 5e-324 * (i % 7),
        "tokens": 2**63 + i,
        "huge": 2**70 + i,
        "special": special,
    }


def same_number(found: object, expected: object) -> bool:
    """Whether two logged numbers are the same: type, value, NaN-ness and the sign of zero."""
    if type(found) is not type(expected):
        return False
    if isinstance(expected, float):
        assert isinstance(found, float)
        if math.isnan(expected):
            return math.isnan(found)
        return found == expected and math.copysign(1, found) == math.copysign(1, expected)
    return found == expected


def assert_exact_values(rows: list[dict[str, Any]], steps: range) -> None:
    """The history ``rows`` hold exactly :func:`metric_values` of each step in ``steps``."""
    found = {(row["step"], row["key"]): row["value"] for row in rows}
    for step in steps:
        for key, expected in metric_values(step).items():
            assert (step, key) in found, f"step {step} key {key!r} is missing"
            value = found[(step, key)]
            assert same_number(value, expected), f"step {step} {key}: {value!r} != {expected!r}"


# -- the files on disk ----------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file, each of which must be one JSON object."""
    records = []
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path.name} does not end with a newline"
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line[:80]!r}") from None
        assert isinstance(record, dict), f"{path.name}:{number} is not an object"
        records.append(record)
    return records


def events(run_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The events of a run's ``run.jsonl`` (of one kind, if given), in file order."""
    found = read_jsonl(run_dir / "run.jsonl")
    return [event for event in found if kind is None or event["event"] == kind]


def metric_steps(run_dir: Path, name: str = "metrics.jsonl") -> list[int]:
    """The ``step`` of every line of a run's metrics file, in file order."""
    path = run_dir / name
    return [record["step"] for record in read_jsonl(path)] if path.exists() else []


def load_record(store: Path, run_id: str) -> Any:
    """The run as the reader sees it (``runjournal.Store(store).run(run_id)``)."""
    import runjournal

    return runjournal.Store(store).run(run_id)


def tolerant_history(record: Any, **options: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """A record's history and the reasons of skipped lines, whose warnings are expected.

    For runs whose last line may be torn (a SIGKILL mid-write, a read during a
    write): the reader warns about such a line, which is its documented
    behaviour, so the warning is caught here and the reasons are returned.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = record.history(**options)
    return rows, [skipped.reason for skipped in record.skipped]
