"""Real git repositories in ``tmp_path`` for the capture tests, made with a fixed identity.

The identity and settings are passed with ``-c`` so that no user or system
git configuration (a signing key, another default branch) changes a test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

IDENTITY = [
    "-c",
    "user.name=Ada",
    "-c",
    "user.email=ada@example.com",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "tag.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
    "-c",
    "protocol.file.allow=always",
]


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with the fixed identity; its output, stripped."""
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def make_repo(path: Path, files: dict[str, bytes] | None = None) -> Path:
    """A repository at ``path`` with one commit of ``files``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    for name, content in (files or {"train.py": b"print('hi')\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(content)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "first")
    return path
