"""Run one scenario of one tool in this (fresh) process and print the result as JSON.

Usage: python -m benchmarks.peers.run_one TOOL SCENARIO ROOT [--size full|small]

``SCENARIO`` is one of :data:`benchmarks.peers._workload.SCENARIOS`, or
``probe`` (import the tool, print its versions), ``noop`` (nothing), or ``table-cold`` /
``history-cold`` (drop the tool's cache first). ``ROOT`` is the scratch
directory; ``many`` writes the store that ``table``, ``history`` and ``bytes``
read. The last line printed is one JSON object; a failure prints
``{"error": ...}`` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.peers._adapter import Adapter, NotSupportedError
from benchmarks.peers._tools import TOOLS, adapter
from benchmarks.peers._workload import SIZES, Sizes, Timer


def versions(tool: Adapter) -> dict[str, str]:
    """The installed versions of the tool's distributions."""
    found = {}
    for name in tool.distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def store_size(path: Path) -> dict[str, Any]:
    """Bytes and files under ``path``, in all and by file extension."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    by_suffix: dict[str, int] = {}
    for file in files:
        size = file.stat().st_size
        by_suffix[file.suffix or file.name] = by_suffix.get(file.suffix or file.name, 0) + size
    return {"bytes": sum(by_suffix.values()), "files": len(files), "bytes_by_suffix": by_suffix}


def frame_shape(frame: Any) -> dict[str, Any]:
    """What a loaded DataFrame holds, to check that every tool loaded everything."""
    return {"rows": int(frame.shape[0]), "columns": int(frame.shape[1])}


def measure(tool: Adapter, scenario: str, root: Path, sizes: Sizes) -> dict[str, Any]:
    """Run the scenario and return what the parent records."""
    timer = Timer()
    if scenario == "noop":  # the cost of this harness alone, subtracted from ``start``
        return timer.result()
    if scenario == "probe":
        tool.import_tool()
        return {"versions": versions(tool), **timer.result()}
    if scenario == "start":
        tool.start(root)
        return timer.result()
    if scenario in ("hot", "many"):
        getattr(tool, scenario)(root, sizes, timer)
        return timer.result()
    if scenario in ("table", "history", "table-cold", "history-cold"):
        kind, _, cold = scenario.partition("-")
        if cold:
            tool.drop_cache(root)
            timer = Timer()
        frame = getattr(tool, kind)(root, timer)
        return {**timer.result(), **frame_shape(frame)}
    if scenario == "bytes":
        return store_size(tool.store(root))
    raise SystemExit(f"unknown scenario {scenario!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tool", choices=sorted(TOOLS))
    parser.add_argument("scenario")
    parser.add_argument("root", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    os.chdir(args.root)  # whatever a tool writes to the working directory stays here
    try:
        result = measure(adapter(args.tool), args.scenario, args.root, SIZES[args.size])
    except NotSupportedError as reason:
        result = {"unsupported": str(reason)}
    except Exception as error:
        traceback.print_exc()
        result = {"error": f"{type(error).__name__}: {error}"[:500]}
    result["loadavg"] = os.getloadavg()[0]
    result["ended"] = time.time()
    sys.stdout.flush()
    print("\n" + json.dumps(result), flush=True)
    if "error" in result:
        sys.exit(1)


if __name__ == "__main__":
    main()
