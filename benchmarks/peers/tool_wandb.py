"""Weights & Biases in offline mode (``WANDB_MODE=offline``), nothing synced.

An offline run of wandb 0.31 is a binary transaction log (``run-<id>.wandb``),
debug logs and ``files/requirements.txt``: no ``config.yaml`` or
``wandb-summary.json`` is written offline, and W&B has no Python API that
reads an offline run (``wandb.Api()`` talks to a server, after ``wandb sync``;
the log's reader now lives in the Go ``wandb-core``). So neither the runs table
nor the history can be loaded into pandas here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.peers._adapter import Adapter, NotSupportedError
from benchmarks.peers._workload import EXPERIMENT, Sizes, Timer, metrics_at, params_of

if TYPE_CHECKING:
    import pandas as pd

_NO_READER = (
    "W&B offline runs cannot be read back without a server: the run is a binary"
    " run-<id>.wandb log that only `wandb sync` + wandb.Api() read"
)


def _wandb() -> Any:
    import wandb

    return wandb


def _init(wandb: Any, root: Path, config: dict[str, Any] | None = None) -> Any:
    return wandb.init(project=EXPERIMENT, dir=str(root), mode="offline", config=config)


class Wandb(Adapter):
    name = "wandb"
    distributions = ("wandb",)
    notes = "wandb.init(mode='offline', config=...) / run.log(..., step=) / run.finish()"

    def import_tool(self) -> None:
        _wandb()

    def start(self, root: Path) -> None:
        wandb = _wandb()
        run = _init(wandb, root)
        run.config.update({"lr": 0.01})
        run.finish()

    def hot(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        wandb = _wandb()
        run = _init(wandb, root)
        timer.begin()
        log = run.log
        for step in range(sizes.hot_steps):
            log(metrics_at(step), step=step)
        run.finish()

    def many(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        wandb = _wandb()
        timer.begin()
        for index in range(sizes.runs):
            run = _init(wandb, root, config=params_of(index))
            for step in range(sizes.run_steps):
                run.log(metrics_at(step), step=step)
            run.finish()

    def table(self, root: Path, timer: Timer) -> pd.DataFrame:
        raise NotSupportedError(_NO_READER)

    def history(self, root: Path, timer: Timer) -> pd.DataFrame:
        raise NotSupportedError(_NO_READER)
