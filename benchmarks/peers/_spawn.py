"""Spawning one measurement in a fresh process, with a time limit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LOG_TAIL = 2000


def spawn(
    tool: str,
    scenario: str,
    root: Path,
    *,
    size: str,
    env: dict[str, str],
    timeout: float,
    prefix: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run ``run_one TOOL SCENARIO ROOT`` in a new process group; its JSON, plus ``wall``.

    On timeout the whole process group (the tool's helper processes included)
    is killed and the result says so.
    """
    command = [
        *prefix,
        sys.executable,
        "-m",
        "benchmarks.peers.run_one",
        tool,
        scenario,
        str(root),
        "--size",
        size,
    ]
    began = time.perf_counter()
    with subprocess.Popen(
        command,
        env=env,
        cwd=root.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            out, err = process.communicate()
            return {
                "error": f"timed out after {timeout:.0f} s",
                "timed_out": timeout,
                "log": err[-LOG_TAIL:],
            }
    wall = time.perf_counter() - began
    _kill_group(process)  # helpers a tool left behind (none should outlive their run)
    return _parse(out, err, process.returncode, wall)


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _parse(out: str, err: str, code: int, wall: float) -> dict[str, Any]:
    lines = [line for line in out.splitlines() if line.startswith("{")]
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"error": f"exit code {code} and no result"}
    result["wall"] = wall
    if "error" in result:
        result["log"] = err[-LOG_TAIL:]
    return result
