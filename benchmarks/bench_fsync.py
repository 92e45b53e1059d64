"""The cost of ``durability="fsync"``: per log call, per flush, per note, beside buffered.

Both modes are measured in one process, interleaved over repeats, on the same
file system (the directory given, by default a temporary one under the
current directory, since ``/tmp`` may be a tmpfs where fsync costs nothing):

- ``run.log`` of a 3-metric dict, each call timed: the hot path, which never
  syncs, so both modes should match;
- ``run.flush()`` after every ``--lines`` log calls: buffered hands the lines
  to the OS, fsync also waits for the disk;
- ``run.note`` (params, tags and notes are written at once): one write, and
  with fsync one fsync per call.

Usage: python benchmarks/bench_fsync.py [--flushes N] [--lines L] [--repeats R]
       [--dir PATH] [--json FILE] [--doc docs/reliability.md]

With ``--doc`` the table is written between the ``fsync-table`` markers of
that page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import runjournal


def measure(store: Path, durability: str, flushes: int, lines: int) -> dict[str, list[int]]:
    """Nanoseconds of every log call, every flush and every note of one run."""
    timer = time.perf_counter_ns
    run = runjournal.start(
        store=store,
        durability=durability,  # type: ignore[arg-type]
        flush_interval=3600,
        heartbeat_interval=3600,
        capture=False,
    )
    times: dict[str, list[int]] = {"log": [], "flush": [], "note": []}
    step = 0
    for flush in range(flushes):
        for _ in range(lines):
            metrics = {"loss": 1.0 / (step + 1), "accuracy": step * 1e-6, "lr": 0.001}
            begin = timer()
            run.log(metrics)
            times["log"].append(timer() - begin)
            step += 1
        begin = timer()
        run.flush()
        times["flush"].append(timer() - begin)
        if flush % 4 == 0:
            begin = timer()
            run.note(f"checkpoint {flush}")
            times["note"].append(timer() - begin)
    run.end()
    return times


def summary(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_us": round(statistics.median(ordered) / 1000, 3),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] / 1000, 3),
        "max_us": round(ordered[-1] / 1000, 1),
        "count": len(ordered),
    }


def file_system(path: Path) -> str:
    try:
        found = (
            subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=True)
            .stdout.splitlines()[-1]
            .split()
        )
        return f"{found[1]} ({found[0]})"
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flushes", type=int, default=200, help="flushes per run")
    parser.add_argument("--lines", type=int, default=100, help="log calls between flushes")
    parser.add_argument("--repeats", type=int, default=5, help="runs per mode, interleaved")
    parser.add_argument("--dir", type=Path, default=None, help="where the stores are written")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--doc", type=Path, default=None, help="write the table into this page")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-fsync-", dir=args.dir or Path.cwd()))
    samples: dict[str, dict[str, list[int]]] = {
        mode: {"log": [], "flush": [], "note": []} for mode in ("buffered", "fsync")
    }
    try:
        for repeat in range(args.repeats):
            for mode in ("buffered", "fsync") if repeat % 2 == 0 else ("fsync", "buffered"):
                times = measure(base / f"{mode}-{repeat}", mode, args.flushes, args.lines)
                for kind, values in times.items():
                    samples[mode][kind] += values
        results: dict[str, Any] = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python"
            f" {platform.python_version()}, runjournal {runjournal.__version__}",
            "file_system": file_system(base),
            "lines_per_flush": args.lines,
            "repeats": args.repeats,
        }
        for mode, kinds in samples.items():
            results[mode] = {kind: summary(values) for kind, values in kinds.items()}
        for kind in ("log", "flush", "note"):
            buffered = results["buffered"][kind]["median_us"]
            fsync = results["fsync"][kind]["median_us"]
            ratio = round(fsync / buffered, 2) if buffered else None
            results[f"{kind}_fsync_over_buffered"] = ratio
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    if args.doc is not None:
        write_table(args.doc, table(results))


START, END = "<!-- fsync-table:start -->", "<!-- fsync-table:end -->"


def table(results: dict[str, Any]) -> str:
    """The results as a Markdown table between the page's markers."""
    rows = [
        START,
        "",
        f"Measured {dt.date.today().isoformat()} on {results['machine']}, file system"
        f" {results['file_system']}; {results['repeats']} runs per mode, medians (p99):",
        "",
        "| | buffered | fsync | fsync / buffered |",
        "| --- | ---: | ---: | ---: |",
    ]
    names = {
        "log": "`run.log` (per call)",
        "flush": f"`run.flush()` of {results['lines_per_flush']} lines",
        "note": "`run.note` (written at once)",
    }
    for kind, name in names.items():
        buffered, fsync = results["buffered"][kind], results["fsync"][kind]
        rows.append(
            f"| {name} | {buffered['median_us']:,.2f} µs ({buffered['p99_us']:,.1f})"
            f" | {fsync['median_us']:,.2f} µs ({fsync['p99_us']:,.1f})"
            f" | {results[f'{kind}_fsync_over_buffered']}x |"
        )
    return "\n".join([*rows, "", END])


def write_table(doc: Path, text: str) -> None:
    page = doc.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), flags=re.DOTALL)
    if not pattern.search(page):
        raise SystemExit(f"{doc} has no {START} ... {END} markers")
    doc.write_text(pattern.sub(lambda _: text, page), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
