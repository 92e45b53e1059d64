"""MLtraq, a SQLite session: one experiment, one ``experiment.run()`` per run.

MLtraq keeps an experiment in memory and writes it with ``persist()``, so
nothing is on disk until then (the hot loop and the 200 runs persist once, at
the end, as its docs do). Params go in ``run.fields`` (``run.params`` is
cleared after a run) and metrics in a ``mltraq.Sequence``. The runs table is
``load_experiment(...).runs.df()`` with the last row of each sequence; the
history concatenates the sequences.
"""

from __future__ import annotations

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


def _session(root: Path) -> Any:
    import mltraq

    return mltraq.create_session(f"sqlite:///{root / 'mltraq.db'}")


def _log_run(experiment: Any, params: dict[str, Any], steps: int) -> None:
    import mltraq

    with experiment.run() as run:
        run.fields.params = params
        run.fields.metrics = mltraq.Sequence()
        append = run.fields.metrics.append
        for step in range(steps):
            append(step=step, **metrics_at(step))


class Mltraq(Adapter):
    name = "mltraq"
    distributions = ("mltraq",)
    notes = "experiment.run() / run.fields + mltraq.Sequence().append / experiment.persist()"

    def import_tool(self) -> None:
        import mltraq  # noqa: F401

    def start(self, root: Path) -> None:
        experiment = _session(root).create_experiment(EXPERIMENT)
        with experiment.run() as run:
            run.fields.params = {"lr": 0.01}
        experiment.persist()

    def hot(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        experiment = _session(root).create_experiment(EXPERIMENT)
        timer.begin()
        _log_run(experiment, {}, sizes.hot_steps)
        experiment.persist()

    def many(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        experiment = _session(root).create_experiment(EXPERIMENT)
        timer.begin()
        for index in range(sizes.runs):
            _log_run(experiment, params_of(index), sizes.run_steps)
        experiment.persist()

    def table(self, root: Path, timer: Timer) -> pd.DataFrame:
        import pandas as pd

        session = _session(root)
        timer.begin()
        runs = session.load_experiment(EXPERIMENT).runs
        frame = runs.df(max_level=1)
        last = [run.fields.metrics.df().iloc[-1] for run in runs.values()]
        for key in METRIC_KEYS:
            frame[f"metrics.{key}"] = pd.Series([row[key] for row in last], dtype="float64")
        return frame.drop(columns=["metrics"], errors="ignore")

    def history(self, root: Path, timer: Timer) -> pd.DataFrame:
        import pandas as pd

        session = _session(root)
        timer.begin()
        frames = []
        for run in session.load_experiment(EXPERIMENT).runs.values():
            long = run.fields.metrics.df().melt(
                id_vars=["step", "timestamp"], value_vars=list(METRIC_KEYS), var_name="key"
            )
            long.insert(0, "run_id", run.id_run)
            frames.append(long)
        return pd.concat(frames, ignore_index=True).rename(columns={"timestamp": "time"})
