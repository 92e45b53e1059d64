"""The reliability suite's shared parts: ``--soak``, the child helpers, the tallies, the guards.

``pytest tests/reliability`` runs every scenario at CI size (a few minutes on
two cores). ``pytest tests/reliability --soak`` multiplies every repetition
count by 10 (``--soak=50`` by 50) for a long manual run; ``RUNJOURNAL_SOAK=N``
does the same where the option cannot be passed (``pytest --soak`` from the
repository root does not know the option, since pytest only reads a
sub-directory's options when that directory is named on the command line).

At the end of the session the tallies of ``_tally.py`` are printed and, with
``RUNJOURNAL_RELIABILITY_REPORT=path.json``, written as JSON; see
``benchmarks/reliability_report.py``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
for directory in (HERE.parent, HERE):  # tests/ for _children, this one for the helpers
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from _tally import REPORT_VARIABLE, Tally, all_tallies, summary_lines, tally_for, write_report  # noqa: E402

_STARTED = time.monotonic()
SOAK_VARIABLE = "RUNJOURNAL_SOAK"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        nargs="?",
        const=10,
        default=None,
        type=int,
        metavar="FACTOR",
        help="multiply the reliability suite's repetitions (default factor 10)",
    )


def _soak_factor(config: pytest.Config) -> int:
    option = config.getoption("--soak", default=None)
    if option is None:
        option = int(os.environ.get(SOAK_VARIABLE, "1") or "1")
    return max(1, int(option))


@pytest.fixture(scope="session")
def soak(request: pytest.FixtureRequest) -> int:
    """The repetition factor: 1 in CI, 10 (or as given) with --soak."""
    return _soak_factor(request.config)


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Callable[[str], Tally]:
    """``tally(scenario)``: the figures this test adds to, for docs/reliability.md."""
    return lambda scenario: tally_for(scenario, request.node.nodeid)


@pytest.fixture
def thread_crashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every exception that ends a thread (the flusher, above all) during the test.

    The test may read the list; it must be empty at the end, or the test fails.
    """
    crashes: list[str] = []

    def record(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "?"
        crashes.append(f"{name}: {args.exc_type.__name__}: {args.exc_value}")

    monkeypatch.setattr(threading, "excepthook", record)
    yield crashes
    assert crashes == [], f"a thread died: {crashes}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not all_tallies():
        return
    terminalreporter.section("reliability figures")
    for line in summary_lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get(REPORT_VARIABLE)
    if target and all_tallies():
        write_report(Path(target), _soak_factor(session.config), time.monotonic() - _STARTED)
