"""trackio, local (SQLite under ``TRACKIO_DIR``), no Space, no dashboard.

Runs are listed with ``trackio.Api().runs(project)`` and their config read
with ``Run.config``; trackio keeps no per-run summary, so the last values of
the runs table and the history both come from ``SQLiteStorage.get_logs`` (the
reader behind trackio's dashboard), one call per run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.peers._adapter import Adapter
from benchmarks.peers._workload import (
    EXPERIMENT,
    METRIC_KEYS,
    Sizes,
    Timer,
    metrics_at,
    params_of,
)

if TYPE_CHECKING:
    import pandas as pd


def _trackio(root: Path) -> Any:
    os.environ["TRACKIO_DIR"] = str(root / "trackio")  # read once, at import
    import trackio

    return trackio


class Trackio(Adapter):
    name = "trackio"
    distributions = ("trackio",)
    notes = "trackio.init(project, config=) / trackio.log(..., step=) / trackio.finish()"

    def import_tool(self) -> None:
        import trackio  # noqa: F401

    def start(self, root: Path) -> None:
        trackio = _trackio(root)
        trackio.init(project=EXPERIMENT, config={"lr": 0.01})
        trackio.finish()

    def hot(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        trackio = _trackio(root)
        trackio.init(project=EXPERIMENT)
        timer.begin()
        log = trackio.log
        for step in range(sizes.hot_steps):
            log(metrics_at(step), step=step)
        trackio.finish()

    def many(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        trackio = _trackio(root)
        timer.begin()
        for index in range(sizes.runs):
            trackio.init(project=EXPERIMENT, config=params_of(index))
            for step in range(sizes.run_steps):
                trackio.log(metrics_at(step), step=step)
            trackio.finish()

    def table(self, root: Path, timer: Timer) -> pd.DataFrame:
        import pandas as pd

        trackio = _trackio(root)
        from trackio.sqlite_storage import SQLiteStorage

        timer.begin()
        rows = []
        for run in trackio.Api().runs(EXPERIMENT):
            row: dict[str, Any] = {"run_id": run.id, "name": run.name}
            row.update({f"params.{k}": v for k, v in run.config.items() if not k.startswith("_")})
            logs = SQLiteStorage.get_logs(EXPERIMENT, run.name, run_id=run.id)
            if logs:
                row.update({f"metrics.{key}": logs[-1].get(key) for key in METRIC_KEYS})
            rows.append(row)
        return pd.DataFrame(rows)

    def history(self, root: Path, timer: Timer) -> pd.DataFrame:
        import pandas as pd

        trackio = _trackio(root)
        from trackio.sqlite_storage import SQLiteStorage

        timer.begin()
        frames = []
        for run in trackio.Api().runs(EXPERIMENT):
            logs = pd.DataFrame(SQLiteStorage.get_logs(EXPERIMENT, run.name, run_id=run.id))
            long = logs.melt(
                id_vars=["step", "timestamp"],
                value_vars=list(METRIC_KEYS),
                var_name="key",
            )
            long.insert(0, "run_id", run.id)
            frames.append(long)
        frame = pd.concat(frames, ignore_index=True)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        return frame.rename(columns={"timestamp": "time"})
