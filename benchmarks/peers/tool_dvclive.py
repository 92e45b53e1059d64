"""DVCLive, one ``Live(dir=...)`` directory per run, with its defaults.

The project is a git repository but not a DVC one, so ``save_dvc_exp`` (on by
default) finds no DVC repo and only warns. DVCLive has no reader API (``dvc
exp show`` needs a DVC repository and git-committed experiments), so the runs
are read from the files it writes, as its docs suggest: ``params.yaml`` and
``metrics.json`` per run for the table, ``plots/metrics/<key>.tsv`` for the
history (``step`` and value: DVCLive records no time per point).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.peers._adapter import Adapter
from benchmarks.peers._workload import Sizes, Timer, metrics_at, params_of

if TYPE_CHECKING:
    import pandas as pd


def _log_steps(live: Any, steps: int) -> None:
    log_metric, next_step = live.log_metric, live.next_step
    for step in range(steps):
        for key, value in metrics_at(step).items():
            log_metric(key, value)
        next_step()


class Dvclive(Adapter):
    name = "dvclive"
    distributions = ("dvclive", "dvc")
    notes = "Live(dir=...) / log_params / log_metric x3 + next_step() / end()"

    def import_tool(self) -> None:
        import dvclive  # noqa: F401

    def start(self, root: Path) -> None:
        from dvclive import Live

        with Live(dir=str(root / "dvclive")) as live:
            live.log_param("lr", 0.01)

    def hot(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        from dvclive import Live

        live = Live(dir=str(root / "dvclive"))
        timer.begin()
        _log_steps(live, sizes.hot_steps)
        live.end()

    def many(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        from dvclive import Live

        timer.begin()
        for index in range(sizes.runs):
            with Live(dir=str(self.store(root) / f"run-{index:05d}")) as live:
                live.log_params(params_of(index))
                _log_steps(live, sizes.run_steps)

    def table(self, root: Path, timer: Timer) -> pd.DataFrame:
        import pandas as pd
        import yaml

        timer.begin()
        rows = []
        for run_dir in sorted(self.store(root).iterdir()):
            row: dict[str, Any] = {"run_id": run_dir.name}
            params = yaml.safe_load((run_dir / "params.yaml").read_text())
            row.update({f"params.{key}": value for key, value in params.items()})
            summary = json.loads((run_dir / "metrics.json").read_text())
            row.update({f"metrics.{key}": value for key, value in summary.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def history(self, root: Path, timer: Timer) -> pd.DataFrame:
        import pandas as pd

        timer.begin()
        frames = []
        for run_dir in sorted(self.store(root).iterdir()):
            for tsv in sorted((run_dir / "plots" / "metrics").glob("*.tsv")):
                points = pd.read_csv(tsv, sep="\t")
                frames.append(
                    pd.DataFrame(
                        {
                            "run_id": run_dir.name,
                            "step": points["step"],
                            "key": tsv.stem,
                            "value": points[tsv.stem],
                        }
                    )
                )
        return pd.concat(frames, ignore_index=True)

    def store(self, root: Path) -> Path:
        return root / "runs"
