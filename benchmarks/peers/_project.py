"""The user's project (a small clean git repository) and the runjournal measured.

Trackers capture the git state of the training script (runjournal, MLflow and
W&B do), so where the script lives changes what they do at start-up. The
measured processes run this package from a copy committed to a fresh
repository, so every tool sees the same small, clean project whatever the
state of the runjournal checkout, and the stores it writes are ignored by git
as a user's would be.
"""

from __future__ import annotations

import compileall
import shutil
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
RUNJOURNAL_SRC = PACKAGE.parents[1] / "src" / "runjournal"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def make_project(directory: Path, env: dict[str, str]) -> Path:
    """Copy this package into a new git repository at ``directory``; return its root."""
    target = directory / "benchmarks" / "peers"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (directory / "benchmarks" / "__init__.py").write_text("")
    (directory / ".gitignore").write_text("scratch/\n__pycache__/\n")
    git_env = {**env, **GIT_ENV}
    for command in (
        ["git", "init", "--quiet", "--initial-branch=main"],
        ["git", "add", "."],
        ["git", "commit", "--quiet", "-m", "the training project"],
    ):
        subprocess.run(command, cwd=directory, env=git_env, check=True, timeout=60)
    return directory


def snapshot_runjournal(directory: Path) -> Path:
    """Copy runjournal's source as it is now; return the directory to put on ``PYTHONPATH``.

    The measured processes import this copy, so that edits made to the
    checkout while a session runs (it takes half an hour) do not change what
    is measured half-way. It is byte-compiled as an installed package is
    (pip compiles the peers' modules at install), so that no measured process
    pays for compiling it, even where ``PYTHONDONTWRITEBYTECODE`` is set.
    """
    copy = directory / "runjournal"
    shutil.copytree(RUNJOURNAL_SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    compileall.compile_dir(copy, quiet=1)
    return directory
