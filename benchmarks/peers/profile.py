"""Profile one scenario of one tool (runjournal by default) with cProfile.

Usage: python -m benchmarks.peers.profile SCENARIO [--tool NAME] [--size full|small]
                                          [--top N] [--sort tottime|cumulative]

Runs in this process, in a scratch directory; ``table`` and ``history`` first
write the store of ``many`` (not profiled) and read it without a cache. Prints
the top functions; what the figures in docs/performance.md quote.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
from pathlib import Path

from benchmarks.peers._tools import TOOLS, adapter
from benchmarks.peers._workload import SIZES, Timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=("start", "hot", "many", "table", "history"))
    parser.add_argument("--tool", choices=sorted(TOOLS), default="runjournal")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", choices=("tottime", "cumulative"), default="tottime")
    args = parser.parse_args()
    tool, sizes = adapter(args.tool), SIZES[args.size]
    with tempfile.TemporaryDirectory(prefix="rj-profile-") as tmp:
        root = Path(tmp)
        os.chdir(root)
        if args.scenario in ("table", "history"):
            tool.many(root, sizes, Timer())
            tool.drop_cache(root)
            tool.import_reader()  # imports are not what is profiled
        elif args.scenario != "start":
            tool.import_tool()
        profiler = cProfile.Profile()
        profiler.enable()
        if args.scenario == "start":
            tool.start(root)
        elif args.scenario in ("hot", "many"):
            getattr(tool, args.scenario)(root, sizes, Timer())
        else:
            getattr(tool, args.scenario)(root, Timer())
        profiler.disable()
    pstats.Stats(profiler).strip_dirs().sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
