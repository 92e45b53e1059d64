"""The scale case of issue 5: reading a store of 10,000 runs and 50 million metric values.

Generates (with runjournal's own writer, in parallel processes) a store of
``10,000 x scale`` runs, each with 20 params and 5 metrics logged at 1,000
steps, then measures, each in a fresh process:

- ``load_runs()`` cold: without the query cache (``cache=False``), and the
  first query of the store, which builds the cache (``.cache/`` deleted first);
- ``load_runs()`` warm, and a filtered ``load_runs(where=...)`` warm;
- ``load_metrics(keys=["loss"])`` over every run, warm, with the peak RSS of
  the process (``resource.getrusage``);
- the incremental reload: ``load_runs()`` after 100 more steps were logged to
  10 runs (resumed with ``runjournal.start(..., resume=True)``), with the
  bytes of run files it read.

Medians of repeats. At full scale the store takes about 1.8 GB of disk
(178 KB per run) and the query cache about 0.7 GB more; generating it takes
a few minutes on 2 cores. ``--scale 0.01`` (100 runs) checks the script in
seconds. ``--store PATH`` keeps the store (and reuses one already there).

Usage: python benchmarks/bench_scale.py [--scale F] [--store PATH] [--repeats R] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RUNS, PARAMS, STEPS = 10_000, 20, 1_000
METRICS = ("loss", "val_loss", "acc", "lr", "grad_norm")
WHERE = "params.lr >= 0.01 and metrics.val_loss < 0.5 and tags.model = 'resnet'"
TARGETS = {
    "load_runs_cold_seconds": 30.0,
    "load_runs_warm_seconds": 0.5,
    "load_runs_filtered_warm_seconds": 0.3,
    "incremental_reload_seconds": 0.5,
    "load_metrics_loss_peak_rss_mb": 2048.0,
}


# ------------------------------------------------------------------ generating


def _generate(job: tuple[str, int, int]) -> int:
    """Log ``count`` runs into the store (one worker process)."""
    import runjournal

    store, first, count = job
    rng = random.Random(first)
    for index in range(first, first + count):
        params: dict[str, Any] = {f"p{j:02}": rng.random() for j in range(PARAMS - 2)}
        params["lr"] = 10 ** rng.uniform(-4, -1)
        params["model"] = rng.choice(["resnet", "vit", "mlp"])
        run = runjournal.start(
            "scale",
            store=store,
            name=f"run-{index}",
            params=params,
            tags={"model": params["model"]},
            capture=False,
            strict=False,
        )
        for step in range(STEPS):
            run.log(
                {
                    "loss": 1.0 / (step + 1) + rng.random() * 0.01,
                    "val_loss": rng.random(),
                    "acc": step / STEPS,
                    "lr": params["lr"],
                    "grad_norm": rng.random(),
                },
                step=step,
            )
        run.end()
    return count


def generate(store: Path, runs: int, workers: int) -> float:
    """Generate the store with ``workers`` processes; seconds taken."""
    begin = time.perf_counter()
    share = -(-runs // workers)
    jobs = [(str(store), start, min(share, runs - start)) for start in range(0, runs, share)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_generate, jobs)
    return time.perf_counter() - begin


def _disk_mb(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return total / 2**20


# ------------------------------------------------------------------ measuring (children)


def child(task: str, store: str, repeats: int) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    import warnings

    warnings.simplefilter("ignore")
    import pandas  # noqa: F401  (imported before timing, as a user would have)

    from runjournal.query import Store, _scan, load_metrics, load_runs

    opened = Store(store)
    if task == "cold_nocache":
        return _timed(lambda: load_runs(opened, cache=False), 1)
    if task == "cold_build":
        return _timed(lambda: load_runs(opened), 1)
    if task == "warm":
        load_runs(opened)
        return {
            "all": _timed(lambda: load_runs(opened), repeats),
            "filtered": _timed(lambda: load_runs(opened, where=WHERE), repeats),
            "rows": len(load_runs(opened, where=WHERE)),
        }
    if task == "metrics":
        rows: list[int] = []
        result = _timed(lambda: rows.append(len(load_metrics(opened, keys=["loss"]))), 1)
        result["rows"] = rows[0]
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return result
    if task in ("reload", "reload-polling"):
        # warm: what a notebook that polls a store has done before (once, or for a while)
        for _ in range(1 if task == "reload" else 3):
            load_runs(opened)
        appended = append_steps(Path(store))
        _scan.COUNTER.reset()
        result = _timed(lambda: load_runs(opened), 1)
        result["bytes_appended"] = appended
        result["bytes_read"] = _scan.COUNTER.data
        result["check_bytes_read"] = _scan.COUNTER.check
        return result
    raise ValueError(task)


def _timed(call: Any, repeats: int) -> dict[str, Any]:
    """Wall and CPU seconds of ``call`` (CPU: this process and the workers it started)."""
    times, cpus = [], []
    for _ in range(repeats):
        begin, cpu = time.perf_counter(), _cpu()
        call()
        times.append(time.perf_counter() - begin)
        cpus.append(_cpu() - cpu)
    return {
        "median_seconds": statistics.median(times),
        "median_cpu_seconds": statistics.median(cpus),
        "seconds": times,
        "load_average": os.getloadavg()[0],
    }


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def in_child(task: str, store: Path, repeats: int = 1) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", task, "--store", str(store)]
    command += ["--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def append_steps(store: Path, runs: int = 10, steps: int = 100) -> int:
    """Resume ``runs`` runs and log ``steps`` more steps to each; bytes appended."""
    import runjournal

    ids = sorted(p.name for p in (store / "runs").iterdir())
    chosen = random.Random(len(ids)).sample(ids, min(runs, len(ids)))
    before = _metric_bytes(store, chosen)
    for run_id in chosen:
        run = runjournal.start(store=store, run_id=run_id, resume=True, capture=False)
        last = STEPS + steps * (run.segment - 1)  # new steps after the last: no replay
        for step in range(steps):
            run.log({"loss": 0.001, "val_loss": 0.4, "acc": 1.0, "lr": 0.001}, step=last + step)
        run.end()
    return _metric_bytes(store, chosen) - before


def _metric_bytes(store: Path, ids: list[str]) -> int:
    return sum(
        (store / "runs" / i / name).stat().st_size
        for i in ids
        for name in ("metrics.jsonl", "run.jsonl")
    )


# ------------------------------------------------------------------ main


def measure(store: Path, repeats: int, cold_repeats: int) -> dict[str, Any]:
    cache = store / ".cache"
    results: dict[str, Any] = {}
    cold = [in_child("cold_nocache", store) for _ in range(cold_repeats)]
    results["load_runs_cold_nocache_seconds"] = statistics.median(c["median_seconds"] for c in cold)
    results["load_runs_cold_nocache_cpu_seconds"] = statistics.median(
        c["median_cpu_seconds"] for c in cold
    )
    builds = []
    for _ in range(cold_repeats):
        shutil.rmtree(cache, ignore_errors=True)
        builds.append(in_child("cold_build", store))
    results["load_runs_cold_build_cache_seconds"] = statistics.median(
        b["median_seconds"] for b in builds
    )
    results["load_runs_cold_build_cache_cpu_seconds"] = statistics.median(
        b["median_cpu_seconds"] for b in builds
    )
    results["load_runs_cold_seconds"] = min(
        results["load_runs_cold_nocache_seconds"], results["load_runs_cold_build_cache_seconds"]
    )
    results["cache_mb"] = round(_disk_mb(cache), 1)
    warm = in_child("warm", store, repeats)
    results["load_runs_warm_seconds"] = warm["all"]["median_seconds"]
    results["load_runs_warm_cpu_seconds"] = warm["all"]["median_cpu_seconds"]
    results["load_runs_filtered_warm_seconds"] = warm["filtered"]["median_seconds"]
    results["load_runs_filtered_warm_cpu_seconds"] = warm["filtered"]["median_cpu_seconds"]
    results["filtered_rows"] = warm["rows"]
    in_child("metrics", store)  # builds the columns' first use (page cache, chunk files)
    metrics = [in_child("metrics", store) for _ in range(max(1, repeats // 2))]
    results["load_metrics_loss_warm_seconds"] = statistics.median(
        m["median_seconds"] for m in metrics
    )
    results["load_metrics_loss_warm_cpu_seconds"] = statistics.median(
        m["median_cpu_seconds"] for m in metrics
    )
    results["load_metrics_loss_peak_rss_mb"] = max(m["peak_rss_mb"] for m in metrics)
    results["load_metrics_loss_rows"] = metrics[0]["rows"]
    reloads, cpus, appended, read = [], [], [], []
    for _ in range(repeats):
        reload = in_child("reload", store)
        reloads.append(reload["median_seconds"])
        cpus.append(reload["median_cpu_seconds"])
        appended.append(reload["bytes_appended"])
        read.append(reload["bytes_read"])
    polling = [in_child("reload-polling", store)["median_seconds"] for _ in range(repeats)]
    results["incremental_reload_polling_seconds"] = statistics.median(polling)
    results["incremental_reload_seconds"] = statistics.median(reloads)
    results["incremental_reload_cpu_seconds"] = statistics.median(cpus)
    results["incremental_bytes_appended"] = appended
    results["incremental_bytes_read"] = read
    results["load_average_1min_at_end"] = os.getloadavg()[0]
    results["targets"] = {
        name: {"target": limit, "measured": results[name], "met": results[name] < limit}
        for name, limit in TARGETS.items()
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 10,000 runs")
    parser.add_argument("--store", type=Path, help="keep (or reuse) the store here")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold-repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, str(args.store), args.repeats)))
        return
    runs = max(1, round(RUNS * args.scale))
    temporary = None
    if args.store is None:
        temporary = tempfile.mkdtemp(prefix="rj-scale-")
        args.store = Path(temporary) / "store"
    try:
        existing = (
            len(list((args.store / "runs").iterdir())) if (args.store / "runs").is_dir() else 0
        )
        seconds = generate(args.store, runs - existing, args.workers) if existing < runs else 0.0
        results = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores,"
            f" Python {platform.python_version()}",
            "runs": runs,
            "points": runs * len(METRICS) * STEPS,
            "generate_seconds": round(seconds, 1),
            "store_mb": round(_disk_mb(args.store / "runs"), 1),
            **measure(args.store, args.repeats, args.cold_repeats),
        }
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
