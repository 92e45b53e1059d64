"""Shared by the tests and the executed doc examples: every test runs in its own directory.

Each test (and each doc example) starts in an empty temporary working directory,
so the default store ``./.runjournal`` is a fresh one, and runs a test forgot
to end are ended afterwards so that they cannot leak into the next test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runjournal import _lifecycle


@pytest.fixture(autouse=True)
def _isolated_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name in (
        "RUNJOURNAL_STORE",
        "RUNJOURNAL_EXPERIMENT",
        "RUNJOURNAL_RUN_ID",
        "RUNJOURNAL_MODE",
        "RUNJOURNAL_UMASK",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
    for run in _lifecycle.live_runs():
        run._end_from_lifecycle("completed", None)
