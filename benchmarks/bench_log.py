"""The cost of the logging hot path, beside a raw floor measured in the same run.

Measures, on this machine, in one process (medians over repeats):

- ``run.log`` of a 3-metric dict, per call, over N calls: median, p99, max, and
  the number of calls over 5 ms; beside the floor: orjson-encoding the same
  records and appending them to a buffered file; without and with ``step=``;
- one run of 20,000 steps x 3 metrics logged as fast as Python can (the
  hot-loop scenario of ``benchmarks/peers``): the whole loop and ``end()``
  per point, and ``end()`` alone, with the end event's metric summary (the
  default) and without it;
- the same with a slow file system (every flush sleeps), to show that the
  training loop never waits for the disk;
- ``import runjournal`` in a fresh interpreter (``-X importtime``), and whether
  the write path imported pydantic or pandas;
- ``start()`` + ``end()`` of an empty run.

Usage: python benchmarks/bench_log.py [--calls N] [--repeats R] [--json FILE] [--no-startup]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

import runjournal
from runjournal import _writer
from runjournal import run as run_module

STALL_NS = 5_000_000
SLOW_FLUSH_SECONDS = 0.2


def per_call_ns(log: Callable[[int], None], calls: int) -> list[int]:
    """Time every call separately (perf_counter_ns costs the same on both sides)."""
    timer = time.perf_counter_ns
    times = [0] * calls
    for i in range(calls):
        begin = timer()
        log(i)
        times[i] = timer() - begin
    return times


def metrics_for(i: int) -> dict[str, float]:
    return {"loss": 1.0 / (i + 1), "accuracy": i * 1e-6, "lr": 0.001}


def floor_times(directory: Path, calls: int) -> list[int]:
    """orjson-encode the same records and append them to a buffered file."""
    option = orjson.OPT_APPEND_NEWLINE
    with (directory / "floor.jsonl").open("ab", buffering=1 << 20) as file:
        write, dumps, now = file.write, orjson.dumps, time.time

        def log(i: int) -> None:
            write(dumps({"step": i, "time": now(), "seg": 0, "m": metrics_for(i)}, option=option))

        return per_call_ns(log, calls)


def runjournal_times(directory: Path, calls: int, *, step: bool = False) -> list[int]:
    run = runjournal.start(store=directory / "store", strict=False, capture=False)
    if step:

        def log(i: int) -> None:
            run.log(metrics_for(i), step=i)

    else:

        def log(i: int) -> None:
            run.log(metrics_for(i))

    times = per_call_ns(log, calls)
    run.end()
    return times


@contextlib.contextmanager
def end_summary(enabled: bool) -> Iterator[None]:
    """Runs started inside keep (the default) or leave out the metric summary of their end."""
    original = _writer.RunWriter

    def writer(*args: Any, **kwargs: Any) -> Any:
        if "summarize" in kwargs:
            kwargs["summarize"] = enabled
        return original(*args, **kwargs)

    run_module.RunWriter = writer  # type: ignore[attr-defined, assignment]
    try:
        yield
    finally:
        run_module.RunWriter = original  # type: ignore[attr-defined]


def hot_loop(directory: Path, steps: int, *, summary: bool) -> dict[str, float]:
    """The peers' hot loop: ``steps`` x 3 metrics with ``step=`` as fast as possible, then end()."""
    with end_summary(summary):
        run = runjournal.start(store=directory / "hot", strict=False, capture=False)
    log = run.log
    begin = time.perf_counter()
    for i in range(steps):
        log(metrics_for(i), step=i)
    ended = time.perf_counter()
    run.end()
    done = time.perf_counter()
    assert run.dir is not None
    last = (run.dir / "run.jsonl").read_bytes().splitlines()[-1]
    return {
        "us_per_point": (done - begin) / (steps * 3) * 1e6,
        "end_ms": (done - ended) * 1000,
        "summarized": float(b'"summary"' in last),
    }


def slow_flush_times(directory: Path, calls: int) -> list[int]:
    """As :func:`runjournal_times`, with every write of the flusher sleeping first."""
    original = _writer.AppendFile._write_all

    def slow(self: _writer.AppendFile, chunk: bytes | bytearray) -> None:
        time.sleep(SLOW_FLUSH_SECONDS)
        original(self, chunk)

    _writer.AppendFile._write_all = slow  # type: ignore[method-assign]
    try:
        run = runjournal.start(store=directory / "slow", strict=False, flush_interval=0.05)

        def log(i: int) -> None:
            run.log(metrics_for(i))

        times = per_call_ns(log, calls)
        run.end()
    finally:
        _writer.AppendFile._write_all = original  # type: ignore[method-assign]
    return times


def summary(times: list[int]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_us": ordered[len(ordered) // 2] / 1000,
        "p99_us": ordered[int(len(ordered) * 0.99)] / 1000,
        "max_ms": ordered[-1] / 1e6,
        "over_5ms": sum(1 for t in ordered if t > STALL_NS),
    }


def import_ms(repeats: int, module: str = "runjournal") -> tuple[float, bool]:
    """Median cumulative import time of ``module``, and whether heavy modules came along."""
    code = f"import {module}, sys; print(any(m in sys.modules for m in ('pydantic', 'pandas')))"
    samples, heavy = [], False
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            capture_output=True,
            text=True,
            check=True,
        )
        heavy = heavy or done.stdout.strip() == "True"
        line = next(x for x in reversed(done.stderr.splitlines()) if x.endswith(f"| {module}"))
        samples.append(int(line.split("|")[1]) / 1000)
    return statistics.median(samples), heavy


def start_end_ms(directory: Path, repeats: int, *, capture: bool) -> float:
    """start() + end() of an empty run; capture=False is the bare cost the core promises."""
    samples = []
    for _ in range(repeats):
        begin = time.perf_counter()
        run = runjournal.start(
            store=directory / "empty", strict=False, capture=capture, system_metrics=capture
        )
        run.end()
        samples.append((time.perf_counter() - begin) * 1000)
    return statistics.median(samples)


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Medians over repeats, except the worst cases, which are the worst of any repeat."""
    worst = {"max_ms", "over_5ms"}
    return {
        key: (max if key in worst else statistics.median)(run[key] for run in runs)
        for key in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--hot-steps", type=int, default=20_000)
    parser.add_argument(
        "--no-startup", action="store_true", help="skip the import and start() measurements"
    )
    args = parser.parse_args()

    floor_runs, log_runs, step_runs, slow_runs = [], [], [], []
    hot_runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for _ in range(args.repeats):  # interleaved, so noise hits every side alike
            floor_runs.append(summary(floor_times(directory, args.calls)))
            log_runs.append(summary(runjournal_times(directory, args.calls)))
            step_runs.append(summary(runjournal_times(directory, args.calls, step=True)))
            for summarized in (True, False, False, True):  # each side first as often
                hot_runs[summarized].append(hot_loop(directory, args.hot_steps, summary=summarized))
        for _ in range(max(1, args.repeats // 2)):
            slow_runs.append(summary(slow_flush_times(directory, args.calls)))
        if not args.no_startup:
            startup = start_end_ms(directory, 20, capture=False)
            startup_captured = start_end_ms(directory, 20, capture=True)
    floor, log, slow = median_of(floor_runs), median_of(log_runs), median_of(slow_runs)
    with_step = median_of(step_runs)
    hot = {
        ("with the end summary" if summarized else "without the end summary"): {
            key: statistics.median(run[key] for run in runs) for key in runs[0]
        }
        for summarized, runs in hot_runs.items()
    }
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "calls": args.calls,
        "repeats": args.repeats,
        "floor": floor,
        "run.log": log,
        "run.log, step=": with_step,
        "run.log, slow flush": slow,
        "ratio_median_to_floor": log["median_us"] / floor["median_us"],
        "ratio_median_to_floor, step=": with_step["median_us"] / floor["median_us"],
        f"hot loop of {args.hot_steps} steps x 3, step=": hot,
    }
    if not args.no_startup:
        imported_ms, heavy = import_ms(max(15, args.repeats))
        orjson_ms, _ = import_ms(max(15, args.repeats), "orjson")
        results.update(
            {
                "import_ms": imported_ms,
                "import_orjson_alone_ms": orjson_ms,
                "import_pulls_pydantic_or_pandas": heavy,
                "start_end_ms": startup,
                "start_end_with_capture_ms": startup_captured,
            }
        )
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
