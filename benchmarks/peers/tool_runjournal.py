"""runjournal, with its defaults: capture on, flushing every second."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.peers._adapter import Adapter, remove_tree
from benchmarks.peers._workload import EXPERIMENT, Sizes, Timer, metrics_at, params_of

if TYPE_CHECKING:
    import pandas as pd


class Runjournal(Adapter):
    name = "runjournal"
    distributions = ("runjournal",)
    notes = (
        "runjournal.start(params=...) / run.log(..., step=) / run.end(), default capture on;"
        " load_runs() and load_metrics()"
    )

    def import_tool(self) -> None:
        import runjournal  # noqa: F401

    def import_reader(self) -> None:
        import pandas  # noqa: F401

        import runjournal.query  # noqa: F401

    def start(self, root: Path) -> None:
        import runjournal

        runjournal.start(EXPERIMENT, store=self.store(root), params={"lr": 0.01}).end()

    def hot(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        import runjournal

        run = runjournal.start(EXPERIMENT, store=self.store(root))
        timer.begin()
        log = run.log
        for step in range(sizes.hot_steps):
            log(metrics_at(step), step=step)
        run.end()

    def many(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        import runjournal

        store = self.store(root)
        timer.begin()
        for index in range(sizes.runs):
            with runjournal.start(EXPERIMENT, store=store, params=params_of(index)) as run:
                for step in range(sizes.run_steps):
                    run.log(metrics_at(step), step=step)

    def table(self, root: Path, timer: Timer) -> pd.DataFrame:
        import pandas as pd  # noqa: F401

        import runjournal

        load_runs = runjournal.load_runs  # imports the read side, before the clock
        timer.begin()
        return load_runs(self.store(root))

    def history(self, root: Path, timer: Timer) -> pd.DataFrame:
        import pandas as pd  # noqa: F401

        import runjournal

        load_metrics = runjournal.load_metrics
        timer.begin()
        return load_metrics(self.store(root))

    def store(self, root: Path) -> Path:
        return root / "store"

    def drop_cache(self, root: Path) -> None:
        remove_tree(self.store(root) / ".cache")
