"""Builders of store files for the read-side tests, written exactly as docs/format.md says.

The tests of the reader must not depend on the writer, so they write the JSON
lines themselves: a store marker, ``run.jsonl`` events, ``params.jsonl`` and
``metrics.jsonl`` records, and the captured files ``environment.json``,
``git.json``, ``git.patch`` and ``data.jsonl`` (defaults: the examples of
docs/format.md). Values go through the format's own encoders, so NaN,
infinities and big integers are tagged as on disk.
"""

from __future__ import annotations

import copy
import hashlib
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


ENVIRONMENT_EXAMPLE: dict[str, Any] = {
    "format": 1,
    "captured_at": 1795000000.1,
    "seg": 0,
    "command": {
        "argv": ["train.py", "--lr", "0.1"],
        "script": "train.py",
        "module": None,
        "cwd": "/home/ada/proj",
        "executable": "/home/ada/proj/.venv/bin/python",
        "timezone": "UTC+01:00",
    },
    "python": {"version": "3.11.7", "implementation": "CPython"},
    "platform": {"system": "Linux", "release": "6.1.0", "machine": "x86_64", "libc": "glibc 2.36"},
    "host": {"hostname": "node042", "user": "ada"},
    "cpu": {"model": "AMD EPYC 7763", "logical_cores": 128, "physical_cores": 64, "affinity": 16},
    "memory": {"total_bytes": 540000000000},
    "gpus": [
        {
            "index": 0,
            "name": "NVIDIA A100-SXM4-80GB",
            "memory_total_bytes": 85899345920,
            "uuid": "GPU-5f1c",
        }
    ],
    "cuda": {"driver_version": "550.54", "cuda_version": "12.4"},
    "packages": {"numpy": "2.4.6", "torch": "2.13.0"},
    "python_env": {"kind": "venv", "name": ".venv", "prefix": "/home/ada/proj/.venv"},
    "scheduler": {
        "kind": "slurm",
        "job_id": "4242",
        "array_task_id": "7",
        "nodelist": "node[042-043]",
        "ntasks": "8",
    },
    "env": {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_ID": "4242", "HF_TOKEN": "<redacted>"},
    "notebook": None,
    "capture_errors": [{"part": "gpus", "message": "timed out after 5.0 s"}],
    "capture_seconds": 0.041,
}
"""The environment.json example of docs/format.md."""

GIT_EXAMPLE: dict[str, Any] = {
    "format": 1,
    "status": "ok",
    "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "branch": "main",
    "detached": False,
    "describe": "v0.3.1-4-g9fceb02",
    "remotes": {"origin": "https://github.com/ada/proj.git"},
    "dirty": False,
    "untracked": ["notes.txt", "scratch/try.py"],
    "untracked_truncated": False,
    "root_name": "proj",
}
"""The git.json example of docs/format.md, clean (``RunFiles.git(patch=...)`` makes it dirty)."""

DATA_EXAMPLE: dict[str, Any] = {
    "time": 1795000001.2,
    "seg": 0,
    "name": "train",
    "role": "input",
    "kind": "directory",
    "path": "/data/imagenet/train",
    "mode": "full",
    "algo": "sha256",
    "hash": "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b",
    "size": 146900000000,
    "files": 1281167,
    "seconds": 0.8,
}
"""The data.jsonl example of docs/format.md."""


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``changes`` merged in object by object; None deletes a key."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


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

    def write(self, file_name: str, data: bytes) -> RunFiles:
        """A written-once file, replaced whole."""
        (self.path / file_name).write_bytes(data)
        return self

    def environment(self, changes: dict[str, Any] | None = None, *, seg: int = 0) -> RunFiles:
        """environment.json (seg 0) or environment.<seg>.json: the format.md example + changes."""
        document = merged(ENVIRONMENT_EXAMPLE, {"seg": seg, **(changes or {})})
        name = "environment.json" if seg == 0 else f"environment.{seg}.json"
        return self.write(name, orjson.dumps(document))

    def git(self, changes: dict[str, Any] | None = None, *, patch: bytes | None = None) -> RunFiles:
        """git.json (the format.md example + changes) and, given a patch, a dirty tree."""
        document = merged(GIT_EXAMPLE, changes or {})
        if patch is not None:
            digest = hashlib.sha256(patch).hexdigest()
            info = {"file": "git.patch", "bytes": len(patch), "sha256": digest}
            document["dirty"] = True
            document["patch"] = {**info, "truncated": False, "cap_bytes": 10485760}
            self.write("git.patch", patch)
        return self.write("git.json", orjson.dumps(document))

    def data(self, **changes: Any) -> RunFiles:
        """One data.jsonl line: the format.md example with these fields changed."""
        return self.append("data.jsonl", line({**DATA_EXAMPLE, **changes}))


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
