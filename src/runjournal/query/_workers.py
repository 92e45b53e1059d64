"""Reading many runs at once in worker processes, for the query cache's first build.

A query that finds hundreds of runs to read (a store seen for the first time,
or a cache just deleted) spends nearly all its time parsing JSON, which one
Python process does on one core. :func:`read_runs` splits those runs among a
few worker processes, each of which reads its runs, saves their digests and
metric columns into the query cache, and sends back their index entries; the
caller then writes the index.

Workers are fresh interpreters started as ``python -m runjournal.query._workers``
(never a fork, which is not safe in a process with threads, and never a
re-import of the caller's script). They talk JSON on their standard input and
output. A worker that fails costs nothing but time: the caller reads its
runs itself.

Example:
    >>> worker_count(10)
    1
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from runjournal import _env

__all__ = ["MIN_RUNS", "read_runs", "worker_count"]

MIN_RUNS = 200
"""Fewer runs to read than this are read in the calling process."""
_MAX_WORKERS = 8


def worker_count(runs: int) -> int:
    """How many worker processes to read ``runs`` runs with (1: read them here)."""
    if runs < MIN_RUNS or not sys.executable:
        return 1
    setting = _env.text(_env.QUERY_WORKERS)
    if setting is not None:
        try:
            return max(1, min(int(setting), runs // (MIN_RUNS // 2) or 1))
        except ValueError:
            return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, _MAX_WORKERS, runs // (MIN_RUNS // 2)))


def read_runs(
    store: Path, jobs: list[tuple[str, bool]], *, metrics: bool, captured: bool, clock: int
) -> dict[str, list[Any]]:
    """Read runs in worker processes; by run id, ``[entry, error]`` (one of them None).

    ``jobs`` are ``(run_id, known)``: whether the cache holds a digest to continue.
    Runs a worker could not read are left out: the caller reads them itself.
    """
    count = worker_count(len(jobs))
    groups = [jobs[index::count] for index in range(count)]
    workers = []
    for group in groups:
        job = {
            "store": str(store),
            "runs": group,
            "metrics": metrics,
            "captured": captured,
            "clock": clock,
        }
        workers.append(_start(orjson.dumps(job)))
    results: dict[str, list[Any]] = {}
    for worker in workers:
        if worker is None:
            continue
        assert worker.stdout is not None
        output = worker.stdout.read()
        worker.stdout.close()
        if worker.wait() != 0:
            continue
        try:
            for run_id, entry, error in orjson.loads(output):
                results[run_id] = [entry, error]
        except (orjson.JSONDecodeError, TypeError, ValueError):
            continue
    return results


def _start(job: bytes) -> subprocess.Popen[bytes] | None:
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "runjournal.query._workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None
    assert process.stdin is not None
    try:
        process.stdin.write(job)
        process.stdin.close()
    except OSError:
        process.kill()
        process.wait()
        return None
    return process


def _work(job: dict[str, Any]) -> list[list[Any]]:
    """Read the runs of a job, saving their digests; their entries (or errors)."""
    import warnings

    from runjournal.query._cache import QueryCache, chunk_info
    from runjournal.query._catalog import index_entry
    from runjournal.query._digest import refresh
    from runjournal.query._metricsfile import paused_gc
    from runjournal.query._row import make_row

    store = Path(job["store"])
    cache = QueryCache(store)
    results: list[list[Any]] = []
    with paused_gc(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the caller gives the warnings, from the rows
        for run_id, known in job["runs"]:
            run_dir = store / "runs" / run_id
            old = cache.load_state(run_id) if known else None
            metrics = job["metrics"] or (old is not None and old.metrics is not None)
            captured = job["captured"] or (old is not None and old.git is not None)
            try:
                digest = refresh(
                    run_dir, old, metrics=metrics, captured=captured, clock_ns=job["clock"]
                )
                if digest is None:
                    continue
                row = make_row(run_dir, digest)
            except (ValueError, RecursionError) as error:
                results.append([run_id, None, f"{type(error).__name__}: {error}"])
                continue
            if cache.save_state(digest):
                entry = index_entry(digest, row)
                entry["chunks"] = chunk_info(digest)
                results.append([run_id, entry, None])
    return results


def main() -> None:
    """Read a job (JSON) on standard input, write the entries (JSON) on standard output."""
    job = orjson.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(orjson.dumps(_work(job)))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
