"""Artifact copy throughput beside ``cp`` of the same file, in the same run.

Measures, on this machine (medians over repeats):

- ``store_file`` (what ``run.log_artifact`` does: a kernel copy into
  ``blobs/``, hashed as it is made, then linked into place) of one file, into
  a fresh store each time so that the copy is never skipped as already stored;
- the same with the kernel copy turned off: the portable copy (read, hash,
  write) that ``store_file`` falls back to;
- ``cp`` of the same file to the same file system, and ``cp`` followed by
  ``sha256sum`` of the copy (the shell equivalent of what an artifact store
  must do);
- ``run.log_artifact`` of content already stored (read, hash and copy, then
  the copy is dropped: no new blob);
- ``hashlib.file_digest`` (sha256) of the file alone: the floor, since the
  content must be hashed to be named.

The source is read once before timing, so every read comes from the page
cache: this compares copying and hashing, not the disk. Target: the artifact
copy within 1.3x of ``cp``.

Usage: python benchmarks/bench_artifacts.py [--size-mb N] [--repeats R] [--dir DIR] [--json FILE]
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
from runjournal import _blobs
from runjournal._blobs import store_file
from runjournal.store import init_store


def median_s(action: Callable[[], object], repeats: int, reset: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        reset()
        begin = time.perf_counter()
        action()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def measure(work: Path, size_mb: int, repeats: int) -> dict[str, object]:
    source = work / "model.bin"
    with source.open("wb") as file:
        for _ in range(size_mb):
            file.write(os.urandom(1 << 20))
    source.read_bytes()  # warm the page cache
    store = work / "store"
    copy = work / "copy.bin"

    def fresh_store() -> None:
        shutil.rmtree(store, ignore_errors=True)
        init_store(store)

    def no_copy() -> None:
        copy.unlink(missing_ok=True)

    cp = median_s(lambda: subprocess.run(["cp", source, copy], check=True), repeats, no_copy)
    cp_sum = median_s(
        lambda: subprocess.run(
            f"cp '{source}' '{copy}' && sha256sum '{copy}' >/dev/null", shell=True, check=True
        ),
        repeats,
        no_copy,
    )
    stored = median_s(lambda: store_file(store, str(source)), repeats, fresh_store)
    kernel, _blobs.KERNEL_COPY = _blobs.KERNEL_COPY, False
    try:
        portable = median_s(lambda: store_file(store, str(source)), repeats, fresh_store)
    finally:
        _blobs.KERNEL_COPY = kernel
    fresh_store()
    with runjournal.start(store=store) as run:
        run.log_artifact(source)

        again = median_s(lambda: run.log_artifact(source), repeats, lambda: None)

    def sha256_only() -> None:
        with source.open("rb") as file:
            hashlib.file_digest(file, "sha256")

    floor = median_s(sha256_only, repeats, lambda: None)
    mb = float(size_mb)
    return {
        "size_mb": size_mb,
        "repeats": repeats,
        "cp_s": round(cp, 4),
        "cp_sha256sum_s": round(cp_sum, 4),
        "store_file_s": round(stored, 4),
        "store_file_portable_s": round(portable, 4),
        "log_artifact_already_stored_s": round(again, 4),
        "sha256_only_s": round(floor, 4),
        "ratio_vs_sha256_only": round(stored / floor, 2),
        "store_file_mb_per_s": round(mb / stored, 1),
        "cp_mb_per_s": round(mb / cp, 1),
        "ratio_vs_cp": round(stored / cp, 2),
        "portable_ratio_vs_cp": round(portable / cp, 2),
        "sha256_only_ratio_vs_cp": round(floor / cp, 2),
        "ratio_vs_cp_sha256sum": round(stored / cp_sum, 2),
        "target_ratio_vs_cp": 1.3,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        results = measure(Path(work), args.size_mb, args.repeats)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
