"""Aim, a local repository, with its defaults (system metrics tracked too).

Aim 3.29 answers SDK queries from an index that its UI server (``aim up``)
keeps up to date in the background; a store freshly written by training
scripts is not indexed yet, so a cold read first rebuilds the index, as
``aim storage reindex`` does (``Repo._recreate_index``). The runs table is
``query_runs().dataframe()`` joined with the last values of
``query_metrics().dataframe(only_last=True)``; the history is
``query_metrics(...).dataframe()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.peers._adapter import Adapter, remove_tree
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

QUERY = f"metric.name in {list(METRIC_KEYS)!r}"


def _log_steps(run: Any, steps: int) -> None:
    track = run.track
    for step in range(steps):
        for key, value in metrics_at(step).items():
            track(value, name=key, step=step)


def _open(repo_dir: Path) -> Any:
    """The repository, indexed (rebuilding the index if it is missing)."""
    from aim import Repo

    repo = Repo.from_path(str(repo_dir))
    if not (repo_dir / ".aim" / "meta" / "index").exists() or not any(repo.iter_runs()):
        repo._recreate_index()
    return repo


class Aim(Adapter):
    name = "aim"
    distributions = ("aim",)
    notes = "aim.Run(repo=, experiment=) / run['hparams'] = ... / run.track(...) x3 / close()"

    def import_tool(self) -> None:
        import aim  # noqa: F401

    def _run(self, root: Path) -> Any:
        from aim import Run

        return Run(repo=str(self.store(root)), experiment=EXPERIMENT)

    def start(self, root: Path) -> None:
        run = self._run(root)
        run["hparams"] = {"lr": 0.01}
        run.close()

    def hot(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        run = self._run(root)
        timer.begin()
        _log_steps(run, sizes.hot_steps)
        run.close()

    def many(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        import aim  # noqa: F401

        timer.begin()
        for index in range(sizes.runs):
            run = self._run(root)
            run["hparams"] = params_of(index)
            _log_steps(run, sizes.run_steps)
            run.close()

    def table(self, root: Path, timer: Timer) -> pd.DataFrame:
        import pandas as pd  # noqa: F401
        from aim.sdk.types import QueryReportMode

        timer.begin()
        repo = _open(self.store(root))
        runs = repo.query_runs("", report_mode=QueryReportMode.DISABLED).dataframe()
        last = repo.query_metrics(QUERY, report_mode=QueryReportMode.DISABLED).dataframe(
            include_props=False, include_params=False, only_last=True
        )
        wide = last.pivot_table(index="run.hash", columns="metric.name", values="value")
        return runs.join(wide.add_prefix("metrics."), on="hash")

    def history(self, root: Path, timer: Timer) -> pd.DataFrame:
        import pandas as pd  # noqa: F401
        from aim.sdk.types import QueryReportMode

        timer.begin()
        repo = _open(self.store(root))
        return repo.query_metrics(QUERY, report_mode=QueryReportMode.DISABLED).dataframe(
            include_props=False, include_params=False
        )

    def store(self, root: Path) -> Path:
        return root / "aim"

    def drop_cache(self, root: Path) -> None:
        remove_tree(self.store(root) / ".aim" / "meta" / "index")
