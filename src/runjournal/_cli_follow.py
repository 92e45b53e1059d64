"""``runjournal logs`` and ``runjournal tail``: a run's console output and metrics, live.

Both read the run's files from an offset and poll for new bytes, so they work
on any file system (NFS, Lustre) and from another host; a follow ends when the
run is no longer ``running`` (after printing what it wrote last), or on Ctrl-C.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_tail(parser)
    >>> args = parser.parse_args(["r1", "-n", "5"])
    >>> args.ref, args.lines, args.interval
    ('r1', 5, 0.5)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from runjournal._terminal import format_number, safe
from runjournal.format import RUNS_DIR, Status, decode_value
from runjournal.query import Store

__all__ = ["add_logs", "add_tail", "format_row"]

_OUTPUT = "output.log"
_METRICS = "metrics.jsonl"
_TAIL_BYTES = 1 << 18
_READ_BYTES = 1 << 20


def add_logs(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``runjournal logs``."""
    parser.description = (
        "Print a run's captured console output (output.log, from start(capture_output=...))."
    )
    parser.add_argument("ref", metavar="RUN", help="a run id, a unique id prefix or a run name")
    parser.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new output until the run ends"
    )
    _add_interval(parser)
    parser.set_defaults(handler=_logs)


def add_tail(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``runjournal tail``."""
    parser.description = (
        "Print a run's last metric rows, then new rows as they land, until the run ends."
    )
    parser.add_argument("ref", metavar="RUN", help="a run id, a unique id prefix or a run name")
    parser.add_argument(
        "--lines", "-n", type=int, default=10, metavar="N", help="rows to show first (default 10)"
    )
    _add_interval(parser)
    parser.set_defaults(handler=_tail)


def _add_interval(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="how often to look for new lines (default 0.5)",
    )


def _logs(store: Store, args: argparse.Namespace) -> tuple[str, int]:
    run_id = store.run(args.ref).id
    path = store.path / RUNS_DIR / run_id / _OUTPUT
    if not args.follow and not path.is_file():
        print(
            f"runjournal: run {run_id} has no {_OUTPUT}: start it with capture_output=True",
            file=sys.stderr,
        )
        return "", 1
    out = sys.stdout.buffer
    return _follow(
        store, run_id, path, out.write, out.flush, follow=args.follow, every=args.interval
    )


def _tail(store: Store, args: argparse.Namespace) -> tuple[str, int]:
    run_id = store.run(args.ref).id
    path = store.path / RUNS_DIR / run_id / _METRICS
    offset, first = _last_lines(path, max(args.lines, 0))
    rows = _RowPrinter()
    rows.feed(first)
    return _follow(
        store,
        run_id,
        path,
        rows.feed,
        sys.stdout.flush,
        follow=True,
        every=args.interval,
        offset=offset,
    )


def _follow(
    store: Store,
    run_id: str,
    path: Path,
    emit: Callable[[bytes], object],
    flush: Callable[[], object],
    *,
    follow: bool,
    every: float,
    offset: int = 0,
) -> tuple[str, int]:
    """Emit the bytes of ``path`` from ``offset``; with ``follow``, until the run ends."""
    try:
        while True:
            live = follow and store.run(run_id).status == Status.RUNNING
            offset = _emit_new(path, offset, emit)  # after the status: the last bytes are read
            flush()
            if not live:
                return "", 0
            time.sleep(every)
    except BrokenPipeError:  # `runjournal logs -f RUN | head`
        _discard_stdout()
        return "", 1


def _emit_new(path: Path, offset: int, emit: Callable[[bytes], object]) -> int:
    """Emit the bytes from ``offset`` to the end of the file; the new offset."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            while chunk := file.read(_READ_BYTES):
                emit(chunk)
                offset += len(chunk)
    except FileNotFoundError:
        pass
    return offset


def _last_lines(path: Path, count: int) -> tuple[int, bytes]:
    """The end offset of ``path`` and its last ``count`` complete lines (from its last 256 KiB)."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            start = max(0, size - _TAIL_BYTES)
            file.seek(start)
            tail = file.read(size - start)
    except FileNotFoundError:
        return 0, b""
    end = tail.rfind(b"\n") + 1  # a torn last line waits for its end
    lines = tail[:end].splitlines(keepends=True)
    if start:
        lines = lines[1:]  # the first one may be cut
    kept = lines[-count:] if count else []
    return start + end, b"".join(kept)


class _RowPrinter:
    """Turns metric lines, in chunks cut anywhere, into printed rows."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        data = self._partial + chunk
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        for line in data[:end].splitlines():
            row = format_row(line)
            if row is not None:
                sys.stdout.write(row + "\n")


def format_row(line: bytes) -> str | None:
    """One metrics line as ``step N  key=value ...``; None for a line that is not one.

    Example:
        >>> format_row(b'{"step": 3, "time": 1.0, "m": {"loss": 0.25, "x": {"$float": "nan"}}}')
        'step 3  loss=0.25  x=nan'
        >>> format_row(b"torn") is None
        True
    """
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("m"), dict):
        return None
    values = decode_value(record["m"])
    cells = [f"{safe(str(key))}={format_number(value)}" for key, value in values.items()]
    return "  ".join([f"step {record.get('step')}", *cells])


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail again."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
