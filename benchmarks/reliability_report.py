"""Run the reliability suite and write its figures into docs/reliability.md.

The suite (``tests/reliability``) counts, per scenario, what it tried and
what was lost, corrupted or leaked, and writes the counts as JSON when
``RUNJOURNAL_RELIABILITY_REPORT`` names a file (see
``tests/reliability/_tally.py``). This script runs it that way and replaces
the table between the ``reliability-table`` markers of docs/reliability.md.
A failing suite writes no table: the figures are only published when every
scenario held.

Usage: python benchmarks/reliability_report.py [--soak N] [--doc PATH] [--json FILE]
       python benchmarks/reliability_report.py --from-json FILE   (render only)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- reliability-table:start -->", "<!-- reliability-table:end -->"


def run_suite(soak: int, report: Path) -> tuple[int, str]:
    """Run tests/reliability; returns pytest's exit code and its last line."""
    env = {**os.environ, "RUNJOURNAL_RELIABILITY_REPORT": str(report), "RUNJOURNAL_STRICT": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/reliability"]
    if soak > 1:
        command.append(f"--soak={soak}")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    sys.stdout.write(done.stdout if done.returncode else done.stdout[-3000:])  # all of a failure
    sys.stdout.write(done.stderr)
    return done.returncode, lines[-1] if lines else ""


def _expected(tally: dict[str, Any]) -> str:
    return "; ".join(f"{what}: {count:,}" for what, count in sorted(tally["expected"].items()))


def render(data: dict[str, Any], summary: str) -> str:
    """The Markdown table and the line that says how it was made."""
    rows = [
        "| scenario | repetitions | runs | lines written | lost | corrupted | leaked"
        " | expected, reported damage |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    total = {"repetitions": 0, "runs": 0, "lines": 0, "lost": 0, "corrupted": 0, "leaked": 0}
    for tally in data["scenarios"]:
        rows.append(
            f"| {tally['scenario']} | {tally['repetitions']:,} | {tally['runs']:,}"
            f" | {tally['lines']:,} | {tally['lost']} | {tally['corrupted']} | {tally['leaked']}"
            f" | {_expected(tally) or '-'} |"
        )
        for key in total:
            total[key] += tally[key]
    rows.append(
        f"| **all** | **{total['repetitions']:,}** | **{total['runs']:,}**"
        f" | **{total['lines']:,}** | **{total['lost']}** | **{total['corrupted']}**"
        f" | **{total['leaked']}** | |"
    )
    made = (
        f"Measured {dt.date.today().isoformat()} on {platform.machine()}, {data['cpus']} cores,"
        f" Python {platform.python_version()}; soak factor {data['soak']};"
        f" {data['seconds']:.0f} s; pytest: {summary}."
    )
    return "\n".join([START, "", made, "", *rows, "", END])


def write_table(doc: Path, table: str) -> None:
    text = doc.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), flags=re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{doc} has no {START} ... {END} markers")
    doc.write_text(pattern.sub(lambda _: table, text), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--soak", type=int, default=1, help="repetition factor (default 1)")
    parser.add_argument("--doc", type=Path, default=DOC, help="the page to update")
    parser.add_argument("--json", type=Path, default=None, help="also keep the raw counts here")
    parser.add_argument("--from-json", type=Path, default=None, help="render a saved report")
    args = parser.parse_args()

    if args.from_json is not None:
        data = json.loads(args.from_json.read_text())
        write_table(args.doc, render(data, "from a saved report"))
        return 0
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "reliability.json"
        code, summary = run_suite(args.soak, report)
        if code != 0:
            print(f"\nthe suite failed ({summary}): {args.doc} is left as it was", file=sys.stderr)
            return code
        data = json.loads(report.read_text())
        if args.json is not None:
            args.json.write_text(json.dumps(data, indent=2) + "\n")
    write_table(args.doc, render(data, summary))
    print(f"\nwrote the table into {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
