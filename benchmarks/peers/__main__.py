"""Measure runjournal beside the other trackers; write medians and ratios as JSON.

Usage: python -m benchmarks.peers [--size full|small] [--repeats N] [--tools a,b]
                                  [--json FILE] [--markdown FILE] [--audit-network]

Every measurement runs in a fresh process (``run_one``). The repeats are
interleaved (each repeat runs every tool once), so a burst of load from
elsewhere hits all tools alike; the load average is recorded with each
measurement. A scenario that took longer than ``--slow`` seconds once is not
repeated for that tool (the results give the number of samples); one that
takes longer than ``--timeout`` is stopped, and the table shows the bound
(``>``) that the timeout gives.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.peers._netaudit import audit
from benchmarks.peers._offline import environment
from benchmarks.peers._project import make_project, snapshot_runjournal
from benchmarks.peers._report import markdown, summarize, targets
from benchmarks.peers._spawn import spawn
from benchmarks.peers._tools import TOOLS
from benchmarks.peers._workload import SIZES
from benchmarks.peers.report import render_targets

READS = ("table-cold", "history-cold", "table", "history")
RESULTS = Path(__file__).resolve().parents[1] / "results"


class Session:
    """One benchmark session: a scratch project per tool, the environment, the samples."""

    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        self.args = args
        self.scratch = scratch
        self.runjournal = snapshot_runjournal(scratch / "runjournal-src")
        self.contexts: dict[str, tuple[Path, dict[str, str]]] = {}
        self.samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.slow: set[tuple[str, str]] = set()
        self.kept: dict[str, Path] = {}

    def env(self, tool: str) -> dict[str, str]:
        """The environment of the tool's processes (its own project on ``PYTHONPATH``)."""
        return self._context(tool)[1]

    def root(self, tool: str, *parts: str) -> Path:
        """A scratch directory inside the tool's project (ignored by its git)."""
        path = self._context(tool)[0].joinpath("scratch", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _context(self, tool: str) -> tuple[Path, dict[str, str]]:
        # One project per tool: what one tool writes there (DVCLive's dvc.yaml, say)
        # must not change the git state that the next tool captures.
        if tool not in self.contexts:
            project = make_project(self.scratch / "projects" / tool, dict(os.environ))
            env = environment(self.scratch, [project, self.runjournal])
            self.contexts[tool] = (project, env)
        return self.contexts[tool]

    def run(self, tool: str, scenario: str, root: Path) -> dict[str, Any]:
        """Measure once (unless known slow and already measured); keep the sample."""
        per_tool = self.samples.setdefault(tool, {})
        taken = per_tool.setdefault(scenario, [])
        if (tool, scenario) in self.slow and taken and scenario != "noop":
            return taken[-1]
        result = spawn(
            tool,
            scenario,
            root,
            size=self.args.size,
            env=self.env(tool),
            timeout=self.args.timeout,
        )
        taken.append(result)
        if (
            result.get("wall", 0) > self.args.slow
            or "unsupported" in result
            or "timed_out" in result
        ):
            self.slow.add((tool, scenario))
        status = result.get("error") or result.get("unsupported") or f"{result['wall']:.2f} s"
        print(f"  {tool:14} {scenario:13} {status}", flush=True)
        return result

    def probe(self, tools: list[str]) -> dict[str, Any]:
        """Versions of the usable tools; the reason for each unusable one."""
        found: dict[str, Any] = {}
        for tool in tools:
            result = spawn(
                tool,
                "probe",
                self.root(tool, "probe"),
                size=self.args.size,
                env=self.env(tool),
                timeout=self.args.timeout,
            )
            found[tool] = result.get("versions") or {"error": result.get("error", "?")}
            if "error" in result:
                found[tool]["log"] = result.get("log", "")
        return found

    def preflight(self) -> list[str]:
        """Every scenario of runjournal at the small size: the problems (none, we hope)."""
        root = self.root("runjournal", "preflight")
        problems = []
        for scenario in ("start", "hot", "many", "bytes", *READS):
            target = root / (scenario if scenario in ("start", "hot") else "many")
            result = spawn(
                "runjournal",
                scenario,
                target,
                size="small",
                env=self.env("runjournal"),
                timeout=self.args.timeout,
            )
            if "error" in result:
                problems.append(f"{scenario}: {result['error']}\n{result.get('log', '')}")
        return problems

    def repeat(self, tools: list[str], index: int) -> None:
        """Every scenario of every tool once, each tool in its own scratch directory."""
        for _ in range(3):  # the harness's own start-up, subtracted from ``start``
            self.run("floor", "noop", self.root("floor", f"r{index}", "noop"))
        for tool in tools:
            base = self.root(tool, f"r{index}")
            self.run(tool, "start", self.root(tool, f"r{index}", "start"))
            self.run(tool, "hot", self.root(tool, f"r{index}", "hot"))
            many = self._many(tool, base / "many")
            if many is None:  # no complete store to read
                continue
            for scenario in ("bytes", *READS):
                self.run(tool, scenario, many)
            if tool not in self.kept:
                shutil.rmtree(base, ignore_errors=True)

    def _many(self, tool: str, root: Path) -> Path | None:
        if tool in self.kept:
            return self.kept[tool]
        root.mkdir(parents=True, exist_ok=True)
        if "error" in self.run(tool, "many", root):
            self.slow.add((tool, "many"))  # a timeout, say: do not try again
            return None
        if (tool, "many") in self.slow:  # not written again: later repeats read this store
            self.kept[tool] = root
        return root


def _git(*args: str) -> str:
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    return done.stdout


def runjournal_source() -> str:
    """The commit of the runjournal checkout measured, and whether src/ had changes."""
    try:
        commit, changed = _git("rev-parse", "--short", "HEAD").strip(), _git("status", "-s", "src")
    except OSError as error:
        return f"unknown ({error})"
    count = len(changed.splitlines())
    return commit + (f" with {count} changed files in src/" if count else "")


def digest(directory: Path) -> str:
    """A short hash of every file under ``directory``, naming the source measured."""
    sha = hashlib.sha256()
    for path in sorted(directory.rglob("*.py")):
        sha.update(path.relative_to(directory).as_posix().encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()[:12]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per measurement")
    parser.add_argument("--slow", type=float, default=60, help="do not repeat past this")
    parser.add_argument("--json", type=Path, default=RESULTS / "peers.json")
    parser.add_argument("--markdown", type=Path, default=RESULTS / "peers.md")
    parser.add_argument("--audit-network", action="store_true", help="strace connect() calls")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    tools = [name.strip() for name in args.tools.split(",") if name.strip()]
    for name in ("floor", "runjournal"):
        if name not in tools:
            tools.insert(0, name)
    started = {"time": time.time(), "loadavg": os.getloadavg(), "source": runjournal_source()}
    with tempfile.TemporaryDirectory(prefix="rj-peers-") as tmp:
        session = Session(args, Path(tmp))
        if problems := session.preflight():
            raise SystemExit("runjournal fails at the small size:\n" + "\n".join(problems))
        print("probing the tools", flush=True)
        versions = session.probe(tools)
        usable = [tool for tool in tools if "error" not in versions[tool]]
        network = audit(session, usable) if args.audit_network else None
        for index in range(args.repeats):
            print(f"repeat {index + 1} of {args.repeats}", flush=True)
            order = usable[index % len(usable) :] + usable[: index % len(usable)]
            session.repeat(order, index)
        results = {
            "date": time.strftime("%Y-%m-%d", time.localtime(started["time"])),
            "machine": (
                f"{platform.machine()}, {os.cpu_count()} cores, Python"
                f" {platform.python_version()}, {platform.system()} {platform.release()}"
            ),
            "size": args.size,
            "sizes": vars(SIZES[args.size]),
            "repeats": args.repeats,
            "seconds": time.time() - started["time"],
            "loadavg_before": started["loadavg"],
            "loadavg_after": os.getloadavg(),
            "runjournal_source": f"{started['source']}, snapshot {digest(session.runjournal)}",
            "versions": versions,
            "network": network,
            **summarize(session.samples, SIZES[args.size]),
            "samples": session.samples,
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    results["targets"] = targets(results)
    args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    table = markdown(results) + "\n" + render_targets(results)
    args.markdown.write_text(table)
    print(table)
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
