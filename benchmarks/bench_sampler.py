"""The overhead of the system sampler: CPU time per sample, and the share of one core it costs.

Runs a real run with the sampler at a short interval for a while, reads the
CPU time the sampler thread spent (``time.thread_time`` around each sample,
kept by the sampler itself), and reports:

- CPU milliseconds per sample (median over repeats);
- the share of one core at the default interval (10 s): per-sample CPU time / 10 s;
- the wall-clock time ``start()`` + ``end()`` costs with and without the sampler.

Target: under 1% of one core at the default interval.

Usage: python benchmarks/bench_sampler.py [--samples N] [--repeats R] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import runjournal
from runjournal._sampler import DEFAULT_INTERVAL

_INTERVAL = 0.02


def cpu_per_sample(store: Path, samples: int) -> float:
    """Seconds of CPU the sampler thread spent per sample, over ``samples`` samples."""
    run = runjournal.start(store=store, system_metrics=_INTERVAL, capture=False)
    sampler = run._sampler
    assert sampler is not None
    while sampler.samples < samples:
        time.sleep(_INTERVAL)
    run.end()
    return sampler.cpu_seconds / sampler.samples


def start_end_seconds(store: Path, system_metrics: bool, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        runjournal.start(store=store, system_metrics=system_metrics, capture=False).end()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        store = Path(directory) / "store"
        per_sample = statistics.median(
            cpu_per_sample(store, args.samples) for _ in range(args.repeats)
        )
        with_sampler = start_end_seconds(store, True, 50)
        without = start_end_seconds(store, False, 50)
    result = {
        "cpu_ms_per_sample": per_sample * 1e3,
        "default_interval_s": DEFAULT_INTERVAL,
        "core_percent_at_default": 100 * per_sample / DEFAULT_INTERVAL,
        "start_end_ms_with_sampler": with_sampler * 1e3,
        "start_end_ms_without_sampler": without * 1e3,
    }
    print(f"sampler CPU per sample:         {result['cpu_ms_per_sample']:.3f} ms")
    print(
        f"share of one core at {DEFAULT_INTERVAL:g} s:     "
        f"{result['core_percent_at_default']:.4f} % (target < 1 %)"
    )
    print(f"start()+end() with sampler:     {result['start_end_ms_with_sampler']:.2f} ms")
    print(f"start()+end() without sampler:  {result['start_end_ms_without_sampler']:.2f} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
