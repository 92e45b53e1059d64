"""The runs table of the peers' store, read cold: what the end event's metric summary saves.

Writes (once, with runjournal's own writer, default capture on) the store of
the peers' scenario (3): 200 runs x (10 params, 3 metrics x 200 steps); then,
each time in a fresh process with pandas and runjournal imported before the
clock starts, times ``load_runs(store)``:

- ``no cache``: ``.cache/`` deleted first, the default reader (which builds
  the cache as it reads: scenario (4a) "no cache");
- ``cache=False``: ``load_runs(store, cache=False)``, the files alone;
- ``second read``: ``load_runs(store)`` with the cache the first read left.

It also counts the files the reader opened through its scanner (run.jsonl,
params.jsonl and metrics files). Run it with ``PYTHONPATH`` pointing at two
source trees to compare them on stores each wrote.

Usage: python benchmarks/bench_table.py STORE [--repeats 5] [--runs 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

_READ = """
import sys, time, pandas, runjournal, runjournal.query
from runjournal.query import _scan
store, cache = sys.argv[1], sys.argv[2]
load_runs = runjournal.load_runs
begin = time.perf_counter()
frame = load_runs(store) if cache == "on" else load_runs(store, cache=False)
seconds = time.perf_counter() - begin
print(seconds, len(frame), _scan.COUNTER.files)
"""


def generate(store: Path, runs: int) -> None:
    """The store of the peers' scenario (3), written by the runjournal being measured."""
    import runjournal

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.peers._workload import EXPERIMENT, SIZES, metrics_at, params_of

    sizes = SIZES["full"]
    for index in range(runs):
        with runjournal.start(EXPERIMENT, store=store, params=params_of(index)) as run:
            for step in range(sizes.run_steps):
                run.log(metrics_at(step), step=step)


def read_once(store: Path, *, cache: bool) -> tuple[float, int, int]:
    done = subprocess.run(
        [sys.executable, "-c", _READ, str(store), "on" if cache else "off"],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, rows, files = done.stdout.split()
    return float(seconds), int(rows), int(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not (args.store / "runs").is_dir():
        generate(args.store, args.runs)
    if args.repeats < 1:
        return
    samples: dict[str, list[tuple[float, int, int]]] = {
        "no cache": [],
        "cache=False": [],
        "second read": [],
    }
    for _ in range(args.repeats):
        shutil.rmtree(args.store / ".cache", ignore_errors=True)
        samples["no cache"].append(read_once(args.store, cache=True))
        samples["second read"].append(read_once(args.store, cache=True))
        samples["cache=False"].append(read_once(args.store, cache=False))
    results = {
        name: {
            "median_s": statistics.median(s for s, _, _ in found),
            "rows": found[0][1],
            "files_scanned": found[0][2],
            "samples_s": [s for s, _, _ in found],
        }
        for name, found in samples.items()
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
