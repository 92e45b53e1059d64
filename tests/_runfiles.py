"""Builders of store files for the read-side tests, written exactly as docs/format.md says.

The tests of the reader must not depend on the writer, so they write the JSON
lines themselves: a store marker, ``run.jsonl`` events, ``params.jsonl`` and
``metrics.jsonl`` records. Values go through the format's own encoders, so NaN,
infinities and big integers are tagged as on disk.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

from runjournal.format import encode_float, encode_int, wrap_dict
from runjournal.store import init_store

T0 = 1795000000.0
"""A fixed start time (2026-11-18) for runs whose times do not matter."""

OTHER_HOST = "node-far-away.example"
"""A host name that is not this machine's, so only deadlines can tell liveness."""


def encode(value: Any) -> Any:
    """A value in its stored JSON form (tagged floats and ints, wrapped dicts)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return encode_float(value)
    if isinstance(value, int):
        return encode_int(value)
    if isinstance(value, dict):
        return wrap_dict({key: encode(item) for key, item in value.items()})
    if isinstance(value, list):
        return [encode(item) for item in value]
    raise TypeError(value)


def encode_members(values: dict[str, Any]) -> dict[str, Any]:
    """An object of names to values, as stored: the object itself is never wrapped."""
    return {key: encode(value) for key, value in values.items()}


def line(record: dict[str, Any]) -> bytes:
    """One JSON line as the writer would append it."""
    return orjson.dumps(record) + b"\n"


class RunFiles:
    """One run directory being written line by line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def id(self) -> str:
        return self.path.name

    def append(self, file_name: str, data: bytes) -> RunFiles:
        with open(self.path / file_name, "ab") as file:
            file.write(data)
        return self

    def event(self, event: str, *, time: float = T0, seg: int = 0, **fields: Any) -> RunFiles:
        record = {"event": event, "time": time, "seg": seg, **fields}
        return self.append("run.jsonl", line(record))

    def start(
        self,
        *,
        name: str = "brisk-heron-7",
        experiment: str | None = "mnist",
        time: float = T0,
        host: str = OTHER_HOST,
        pid: int = 81234,
        pid_start: float | None = 1794999990.51,
        deadline: float | None = None,
        event: str = "start",
        seg: int = 0,
        **fields: Any,
    ) -> RunFiles:
        return self.event(
            event,
            time=time,
            seg=seg,
            format=fields.pop("format", 1),
            run_id=self.id,
            name=name,
            experiment=experiment,
            host=host,
            pid=pid,
            pid_start=pid_start,
            job_id=fields.pop("job_id", "4242"),
            deadline=time + 150 if deadline is None else deadline,
            library="runjournal 0.1.0",
            **fields,
        )

    def start_here(self, **fields: Any) -> RunFiles:
        """A start event recorded by this very process, which is alive."""
        pid = os.getpid()
        return self.start(
            host=_hostname(), pid=pid, pid_start=psutil.Process(pid).create_time(), **fields
        )

    def resume(self, seg: int, **fields: Any) -> RunFiles:
        return self.start(event="resume", seg=seg, **fields)

    def end(self, status: str = "completed", *, time: float = T0 + 60, seg: int = 0, **fields: Any):
        return self.event("end", time=time, seg=seg, status=status, **fields)

    def params(self, params: dict[str, Any], *, time: float = T0, seg: int = 0) -> RunFiles:
        record = {"time": time, "seg": seg, "params": encode_members(params)}
        return self.append("params.jsonl", line(record))

    def metrics(
        self,
        step: int,
        values: dict[str, Any],
        *,
        time: float | None = None,
        seg: int = 0,
        file_name: str = "metrics.jsonl",
    ) -> RunFiles:
        stamp = T0 + step if time is None else time
        record = {"step": step, "time": stamp, "seg": seg, "m": encode_members(values)}
        return self.append(file_name, line(record))


class StoreFiles:
    """A store on disk, with helpers to add runs to it."""

    def __init__(self, root: Path) -> None:
        self.root = init_store(root.absolute())

    def run(self, run_id: str) -> RunFiles:
        return RunFiles(self.root / "runs" / run_id)

    def ended_run(self, run_id: str, *, start: float = T0, **fields: Any) -> RunFiles:
        """A run that started and completed a minute later."""
        return self.run(run_id).start(time=start, **fields).end(time=start + 60)


def _hostname() -> str:
    from runjournal._process import hostname

    return hostname()


def now() -> float:
    return time.time()
