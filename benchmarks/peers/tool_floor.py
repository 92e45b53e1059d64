"""The raw floor: orjson lines into a buffered file, and read back into pandas.

The least any JSON-lines logger can do, measured in the same run as the tools:
one directory per run with a ``params.json`` and a ``metrics.jsonl`` of
``{"step", "time", "m": {...}}`` lines, flushed when the run ends. Nothing is
validated, no environment is captured, nothing is flushed while logging.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.peers._adapter import Adapter
from benchmarks.peers._workload import Sizes, Timer, metrics_at, params_of

if TYPE_CHECKING:
    import pandas as pd

BUFFER = 1 << 20


def _write_run(run_dir: Path, params: dict[str, object], steps: int) -> None:
    import orjson

    run_dir.mkdir(parents=True)
    (run_dir / "params.json").write_bytes(orjson.dumps(params))
    option, dumps, now = orjson.OPT_APPEND_NEWLINE, orjson.dumps, time.time
    with (run_dir / "metrics.jsonl").open("ab", buffering=BUFFER) as file:
        write = file.write
        for step in range(steps):
            write(dumps({"step": step, "time": now(), "m": metrics_at(step)}, option=option))


class Floor(Adapter):
    name = "floor"
    distributions = ("orjson",)
    notes = "orjson lines appended to a 1 MiB-buffered file per run; read back with orjson"

    def import_tool(self) -> None:
        import orjson  # noqa: F401

    def start(self, root: Path) -> None:
        _write_run(root / "runs" / "0", {"lr": 0.01}, 0)

    def hot(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        import orjson  # noqa: F401

        timer.begin()
        _write_run(root / "runs" / "0", {}, sizes.hot_steps)

    def many(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        import orjson  # noqa: F401

        timer.begin()
        for run in range(sizes.runs):
            _write_run(root / "runs" / f"{run:05d}", params_of(run), sizes.run_steps)

    def table(self, root: Path, timer: Timer) -> pd.DataFrame:
        import orjson
        import pandas as pd

        timer.begin()
        rows = []
        for run_dir in sorted((root / "runs").iterdir()):
            row: dict[str, object] = {"run_id": run_dir.name}
            params = orjson.loads((run_dir / "params.json").read_bytes())
            row.update({f"params.{key}": value for key, value in params.items()})
            lines = (run_dir / "metrics.jsonl").read_bytes().splitlines()
            if lines:
                last = orjson.loads(lines[-1])["m"]
                row.update({f"metrics.{key}": value for key, value in last.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def history(self, root: Path, timer: Timer) -> pd.DataFrame:
        import orjson
        import pandas as pd

        timer.begin()
        run_ids: list[str] = []
        steps: list[int] = []
        times: list[float] = []
        keys: list[str] = []
        values: list[float] = []
        loads = orjson.loads
        for run_dir in sorted((root / "runs").iterdir()):
            run_id = run_dir.name
            for line in (run_dir / "metrics.jsonl").read_bytes().splitlines():
                record = loads(line)
                step, at = record["step"], record["time"]
                for key, value in record["m"].items():
                    run_ids.append(run_id)
                    steps.append(step)
                    times.append(at)
                    keys.append(key)
                    values.append(value)
        return pd.DataFrame(
            {
                "run_id": run_ids,
                "step": pd.Series(steps, dtype="int64"),
                "time": pd.to_datetime(pd.Series(times, dtype="float64"), unit="s", utc=True),
                "key": keys,
                "value": pd.Series(values, dtype="float64"),
            }
        )
