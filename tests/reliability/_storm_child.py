"""One child of the crash storm: a short training loop that is SIGKILLed by the test.

Run as ``from _storm_child import main; main()`` inside a :class:`_children.Child`
with ``argv = [mode, index, seed]``. It logs metrics, params, tags, notes (and
data references when ``Run.log_data`` exists) and reports on stdout what is
on disk for sure, so the test can check it after the kill:

- ``run <id>`` once ``start()`` returned (the start event, params and tags are written);
- ``param <k>``, ``tag <k>``, ``note <k>``, ``data <k>`` once that call returned;
- ``flushed <n>`` once ``run.flush()`` returned: steps ``0..n-1`` are written;
- ``ending <n>`` just before ``run.end()``: ``n`` steps were logged in all;
- ``ended`` once ``run.end()`` returned; the child then waits to be killed;
- ``paused <where>`` when a hook of the mode stopped it at the moment to kill.

Modes whose name starts with a place install a hook that stops the child
exactly there (after writing part of the bytes when the mode says ``torn``),
so that the kill lands inside start, inside a flush or inside end
deterministically; ``timer`` and ``after-*`` modes have no hook and are killed
when the test decides.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import runjournal
from _children import metric_values
from runjournal import _start, _writer
from runjournal import store as store_module

ITERATIONS = 40
LINES_PER_ITERATION = 25

HOOKED_MODES = (
    "start-mkdir",  # the run directory exists, nothing in it yet
    "start-event-torn",  # part of the start event is written
    "start-params",  # the start event is written, the start params are not
    "flush-torn",  # a metrics flush wrote part of its bytes
    "flush-between",  # a metrics flush is about to write
    "note-torn",  # a note event is half written
    "params-torn",  # a log_params line is half written
    "end-before",  # end() flushed every metric and is about to write the end event
    "end-torn",  # the end event is half written
    "marker",  # creating a fresh store: the marker is about to be linked into place
    "marker-no-link",  # the same where hard links fail: about to be renamed into place
)
FREE_MODES = ("timer", "after-flush", "after-end")
MODES = HOOKED_MODES + FREE_MODES


def say(*words: object) -> None:
    """One report line on stdout, written at once (os.write: no buffer a kill could lose)."""
    os.write(1, (" ".join(map(str, words)) + "\n").encode())


def stop_here(where: str) -> None:
    """Report the pause and wait for SIGKILL (forever)."""
    say("paused", where)
    while True:
        time.sleep(60)


def _cut(chunk: bytes | bytearray, rng: random.Random) -> int:
    """A random length of a strict prefix of ``chunk`` that ends inside a line."""
    if len(chunk) < 2:
        return 0
    cut = rng.randrange(1, len(chunk))
    while cut > 1 and chunk[cut - 1 : cut] == b"\n":
        cut -= 1
    return cut


def install_write_hook(mode: str, rng: random.Random) -> None:
    """Stop in ``AppendFile._write_all`` at the write the mode names."""
    real = _writer.AppendFile._write_all
    metric_writes = {"count": 0}
    target_write = rng.randrange(1, 12)

    def wanted(name: str, chunk: bytes | bytearray) -> bool:
        if not chunk:
            return False
        if mode == "start-event-torn":
            return name == "run.jsonl" and b'"event":"start"' in chunk
        if mode == "start-params":
            return name == "params.jsonl"
        if mode in ("flush-torn", "flush-between"):
            if name != "metrics.jsonl":
                return False
            metric_writes["count"] += 1
            return metric_writes["count"] >= target_write
        if mode == "note-torn":
            return name == "run.jsonl" and b'"event":"note"' in chunk
        if mode == "params-torn":
            return name == "params.jsonl" and b'"p' in chunk and b'"seed"' not in chunk
        if mode in ("end-before", "end-torn"):
            return name == "run.jsonl" and b'"event":"end"' in chunk
        return False

    def hooked(self: Any, chunk: bytes | bytearray) -> None:
        if wanted(self.path.name, chunk):
            if mode.endswith("torn"):
                cut = _cut(chunk, rng)
                os.write(self._usable_fd(), bytes(chunk[:cut]))
            stop_here(mode)
        real(self, chunk)

    _writer.AppendFile._write_all = hooked  # type: ignore[method-assign]


def install_start_hook() -> None:
    """Stop right after ``start()`` created the run directory."""
    real = _start.create_run_dir

    def hooked(root: Path, run_id: str | None = None) -> tuple[str, Path]:
        created = real(root, run_id)
        stop_here("start-mkdir")
        return created

    _start.create_run_dir = hooked  # type: ignore[assignment]


def install_marker_hook(*, no_link: bool) -> None:
    """Stop when the store marker is about to be put in place (by link, or by rename).

    Also when the final name is opened for writing, however the library would
    do it: then the kill shows whether a partial marker can be left there.
    """
    real_link, real_replace, real_open = os.link, os.replace, os.open

    def link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if str(dst).endswith("runjournal.json"):
            if no_link:
                raise PermissionError(1, "Operation not permitted (no hard links here)")
            stop_here("marker")
        real_link(src, dst, *args, **kwargs)

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if str(dst).endswith("runjournal.json"):
            stop_here("marker-no-link")
        real_replace(src, dst, *args, **kwargs)

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if str(path).endswith("/runjournal.json") and flags & os.O_CREAT:
            stop_here("marker-no-link" if no_link else "marker")
        return fd

    os.link = link
    os.replace = replace
    os.open = open_
    assert store_module.os is os


def main() -> None:
    """The child's whole life: hooks, start, the loop, end, then wait for the kill."""
    mode, index, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    if mode == "start-mkdir":
        install_start_hook()
    elif mode.startswith("marker"):
        install_marker_hook(no_link=mode == "marker-no-link")
    elif mode in HOOKED_MODES:
        install_write_hook(mode, rng)
    data_file = Path(os.environ["STORM_DATA_FILE"])
    can_log_data = hasattr(runjournal.Run, "log_data")
    run = runjournal.start(
        "storm",
        run_id=f"storm-{index:05d}",
        params={"seed": seed, "mode": mode},
        tags={"child": index},
        flush_interval=rng.choice((0.005, 0.05, 1.0)),
        heartbeat_interval=0.05,
    )
    say("run", run.id)
    step = 0
    for k in range(ITERATIONS):
        for _ in range(LINES_PER_ITERATION):
            run.log(metric_values(step))
            step += 1
        if k % 5 == 1:
            run.log_params({f"p{k}": {"k": k, "inverse": 1 / (k + 1)}})
            say("param", k)
        elif k % 5 == 2:
            run.tag({f"t{k}": k})
            say("tag", k)
        elif k % 5 == 3:
            run.note(f"note {k}: \u00e9t\u00e9 \U0001f680")
            say("note", k)
        elif k % 5 == 4 and can_log_data:
            run.log_data(f"d{k}", data_file)  # type: ignore[attr-defined]
            say("data", k)
        run.flush()
        say("flushed", step)
        time.sleep(0.002)  # a training step
    say("ending", step)
    run.end()
    say("ended")
    threading.Event().wait()  # until SIGKILL
