"""The cost of capture at ``start()``, beside ``start()`` with ``capture=False`` in the same run.

The setting the issue asks for: a git repository of 1,000 tracked files (with a
few uncommitted changes and an untracked file, so that the patch and the
status have work to do) holding the training script, and 300 installed
distributions on top of this venv's own: real ``*.dist-info`` directories,
each with a ``METADATA`` file of a typical size (headers and a 4 KB
description), on a ``PYTHONPATH`` entry, where ``importlib.metadata`` finds
them exactly as it finds installed packages.

Each repeat is a fresh interpreter running the script from the repository,
so the first ``start()`` pays everything a training job pays (reading the
package metadata, importing psutil, the first git calls); later ``start()``
calls in the same process reuse what cannot change. Reported, as medians
over the repeats:

- ``first_start_ms``: the first ``start()`` of a process, capture on (default);
- ``later_start_ms``: later ``start()`` calls in the same process, capture on;
- ``no_capture_start_ms``: ``start(capture=False)`` in the same processes;
- ``capture_seconds``: what ``environment.json`` records for the first start;
- ``git_ms``: ``capture_git`` alone, ``packages_ms``: the first package listing alone.

Usage: python benchmarks/bench_capture.py [--repeats R] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_MS = 150.0
FILES = 1000
PACKAGES = 300
WARM_CALLS = 10

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import runjournal
t1 = time.perf_counter()
run = runjournal.start("bench")
t2 = time.perf_counter()
run.end()
from runjournal.capture import capture_git
from runjournal.capture._packages import clear_cache, installed
later, off = [], []
for _ in range({warm}):
    began = time.perf_counter()
    runjournal.start("bench").end()
    later.append(time.perf_counter() - began)
    began = time.perf_counter()
    runjournal.start("bench", capture=False).end()
    off.append(time.perf_counter() - began)
began = time.perf_counter()
state = capture_git()
git = time.perf_counter() - began
clear_cache()
began = time.perf_counter()
packages, _ = installed()
listing = time.perf_counter() - began
environment = json.loads((run.dir / "environment.json").read_bytes())
print(json.dumps({{
    "import": t1 - t0, "first": t2 - t1, "later": later, "off": off, "git": git,
    "packages_listing": listing, "capture_seconds": environment["capture_seconds"],
    "packages": len(environment["packages"]), "git_status": state.info["status"],
    "dirty": state.info["dirty"], "patch_bytes": state.info["patch"]["bytes"],
}}))
"""


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=Bench", "-c", "user.email=bench@example.com"]
    subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True)


def make_repository(root: Path) -> Path:
    """1,000 tracked files in 50 directories, one commit, then a few changes."""
    repo = root / "proj"
    for index in range(FILES):
        path = repo / f"pkg{index // 20:02d}" / f"module_{index:04d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'"""Module {index}."""\n\n' + "".join(f"X{i} = {i}\n" for i in range(40)))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "1,000 files")
    for index in range(0, 50, 10):  # five modified files, one of them staged
        path = repo / f"pkg{index // 20:02d}" / f"module_{index:04d}.py"
        path.write_text(path.read_text() + "Y = 'changed'\n")
    git(repo, "add", "pkg00/module_0000.py")
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "train.py").write_text(CHILD.format(warm=WARM_CALLS))
    return repo


def make_distributions(root: Path) -> Path:
    """300 ``*.dist-info`` directories with realistic METADATA, on one site directory."""
    site = root / "site"
    description = "A package used to measure capture.\n" * 120  # about 4 KB, as real ones
    for index in range(PACKAGES):
        info = site / f"benchpkg_{index:03d}-{index % 7}.{index}.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\n"
            f"Name: benchpkg-{index:03d}\n"
            f"Version: {index % 7}.{index}.0\n"
            "Summary: a fake distribution for the capture benchmark\n"
            "Requires-Python: >=3.8\n"
            "License: MIT\n\n" + description
        )
        (info / "RECORD").write_text("")
    return site


def one_process(repo: Path, site: Path, store: Path) -> dict[str, Any]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RUNJOURNAL_")},
        "RUNJOURNAL_STORE": str(store),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, str(repo / "train.py")],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo, site = make_repository(root), make_distributions(root)
        runs = [one_process(repo, site, root / "store") for _ in range(args.repeats)]
    first = ms([run["first"] for run in runs])
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "repeats": args.repeats,
        "repository": {
            "tracked_files": FILES,
            "dirty": runs[0]["dirty"],
            "patch_bytes": runs[0]["patch_bytes"],
            "status": runs[0]["git_status"],
        },
        "packages_recorded": runs[0]["packages"],
        "first_start_ms": first,
        "later_start_ms": ms([t for run in runs for t in run["later"]]),
        "no_capture_start_ms": ms([t for run in runs for t in run["off"]]),
        "capture_seconds_recorded_ms": ms([run["capture_seconds"] for run in runs]),
        "git_ms": ms([run["git"] for run in runs]),
        "packages_ms": ms([run["packages_listing"] for run in runs]),
        "import_runjournal_ms": ms([run["import"] for run in runs]),
        "target_ms": TARGET_MS,
        "first_start_within_target": first < TARGET_MS,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
