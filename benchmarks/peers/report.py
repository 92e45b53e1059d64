"""Print the table and the targets of a results file (``benchmarks/results/peers.json``).

Usage: python -m benchmarks.peers.report [FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.peers._report import markdown, targets

DEFAULT = Path(__file__).resolve().parents[1] / "results" / "peers.json"


def render_targets(results: dict[str, object]) -> str:
    """One line per target: met or missed, and runjournal's speed-up over the reference."""
    lines = []
    for item in targets(results):  # type: ignore[arg-type]
        mark = {True: "met", False: "MISSED", None: "not measured"}[item["met"]]
        speedup, needed = item["speedup"], item["needed"]
        figure = "" if speedup is None else f" (speed-up {speedup:.2f}, target {needed:g})"
        lines.append(f"- {item['target']}: {mark}{figure}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, nargs="?", default=DEFAULT)
    results = json.loads(parser.parse_args().file.read_text())
    print(markdown(results))
    print(render_targets(results))


if __name__ == "__main__":
    main()
