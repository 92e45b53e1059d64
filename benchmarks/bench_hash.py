"""Data hashing throughput beside ``sha256sum`` on the same file, in the same run.

Measures, on this machine (medians over repeats):

- ``hash_data`` of a 1 GiB file in ``full`` mode, without a cache, against
  ``sha256sum`` of the same file (and ``hashlib.file_digest`` as a floor). The
  file is read once by each before timing, so every timed read comes from the
  page cache: this compares hashing, not the disk;
- the second, cached hash of the same file (``hash_data`` with a store, and
  ``run.log_data``, which also writes the record);
- a directory of 10,000 small files: ``stat`` mode, ``full`` mode without a
  cache (files hashed in parallel threads), and ``full`` mode answered by the
  cache (its stats only).

Every file is created in a temporary directory and removed at the end.

Usage: python benchmarks/bench_hash.py [--size-mb N] [--files N] [--repeats R]
    [--dir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import runjournal
from runjournal.capture.data import hash_data
from runjournal.store import init_store

AN_HOUR_AGO_NS = time.time_ns() - 3600 * 10**9
"""Files are dated back so the cache may keep them (fresh files are never cached)."""


def seconds(action: Callable[[], object]) -> float:
    begin = time.perf_counter()
    action()
    return time.perf_counter() - begin


def median_ms(action: Callable[[], object], repeats: int) -> float:
    return statistics.median(seconds(action) for _ in range(repeats)) * 1000


def make_big_file(path: Path, size_mb: int) -> None:
    block = os.urandom(1 << 20)
    with path.open("wb") as file:
        for index in range(size_mb):
            file.write(block[index % 251 :] + block[: index % 251])  # no two blocks alike
    os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))


def make_tree(root: Path, files: int) -> None:
    for index in range(files):
        path = root / f"d{index % 100:02}" / f"f{index:05}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1024))
        os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))


def sha256sum(path: Path) -> str:
    done = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


def file_digest(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def big_file_results(directory: Path, size_mb: int, repeats: int) -> dict[str, object]:
    path = directory / "big.bin"
    make_big_file(path, size_mb)
    ours = hash_data(path).hash  # also warms the page cache, as does the line below
    has_sha256sum = shutil.which("sha256sum") is not None
    if has_sha256sum:
        assert sha256sum(path) == ours, "sha256sum and hash_data disagree"
    tool, runjournal_s, floor = [], [], []
    for _ in range(repeats):  # interleaved, so noise hits every side alike
        if has_sha256sum:
            tool.append(seconds(lambda: sha256sum(path)))
        runjournal_s.append(seconds(lambda: hash_data(path)))
        floor.append(seconds(lambda: file_digest(path)))
    gib = size_mb / 1024
    results: dict[str, object] = {
        "file_mib": size_mb,
        "hash_data_s": statistics.median(runjournal_s),
        "hash_data_gib_per_s": gib / statistics.median(runjournal_s),
        "hashlib_file_digest_s": statistics.median(floor),
    }
    if has_sha256sum:
        results["sha256sum_s"] = statistics.median(tool)
        results["ratio_hash_data_to_sha256sum"] = statistics.median(runjournal_s) / (
            statistics.median(tool)
        )
    store = init_store(directory / "store")
    hash_data(path, store=store)  # the first hash fills the cache
    results["cached_hash_data_ms"] = median_ms(lambda: hash_data(path, store=store), 50)
    with runjournal.start(store=store, strict=True) as run:
        results["cached_log_data_ms"] = median_ms(lambda: run.log_data("big", path), 50)
    path.unlink()
    return results


def tree_results(directory: Path, files: int, repeats: int) -> dict[str, object]:
    root = directory / "tree"
    make_tree(root, files)
    store = init_store(directory / "tree-store")
    hash_data(root, store=store)  # fills the cache, and the page cache
    return {
        "files": files,
        "stat_mode_ms": median_ms(lambda: hash_data(root, mode="stat"), repeats),
        "full_uncached_ms": median_ms(lambda: hash_data(root), repeats),
        "full_cached_ms": median_ms(lambda: hash_data(root, store=store), repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="where to create the files (default: temp)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        big = big_file_results(directory, args.size_mb, args.repeats)
        tree = tree_results(directory, args.files, args.repeats)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "page_cache": "warm: each file was read before timing, so this measures hashing",
        "repeats": args.repeats,
        "big_file": big,
        "directory": tree,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
