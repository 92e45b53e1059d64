"""The work every adapter does, its sizes, and the clock the adapters start.

Scenarios (each one in a fresh process):

- ``start``: import the tool, start a run, log one param, end the run;
- ``hot``: one run, 3 metrics per step for ``hot_steps`` steps, finish included;
- ``many``: ``runs`` runs, each with 10 params and 3 metrics per step for
  ``run_steps`` steps;
- ``table`` / ``history``: load the store of ``many`` into pandas: one row per
  run (params and last metrics), and the long history (one row per point);
- ``bytes``: the size and file count of the store of ``many``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

METRIC_KEYS = ("loss", "accuracy", "lr")
EXPERIMENT = "bench"
SCENARIOS = ("start", "hot", "many", "table", "history", "bytes")


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does."""

    hot_steps: int
    runs: int
    run_steps: int
    params: int = 10

    @property
    def hot_points(self) -> int:
        return self.hot_steps * len(METRIC_KEYS)

    @property
    def many_points(self) -> int:
        return self.runs * self.run_steps * len(METRIC_KEYS)


SIZES = {
    "full": Sizes(hot_steps=20_000, runs=200, run_steps=200),
    "small": Sizes(hot_steps=500, runs=8, run_steps=20),
}


def metrics_at(step: int) -> dict[str, float]:
    """The three metrics logged at ``step`` (plain floats, as a training loop has them)."""
    return {"loss": 1.0 / (step + 1), "accuracy": step * 1e-6, "lr": 0.001}


def params_of(run: int) -> dict[str, float | int | str]:
    """Ten params of mixed types, different for each run."""
    return {
        "lr": 0.001 * (run + 1),
        "batch_size": 32 + run % 4,
        "optimizer": ("adam", "sgd")[run % 2],
        "epochs": 10,
        "dropout": 0.1,
        "seed": run,
        "model": "mlp",
        "layers": 4,
        "momentum": 0.9,
        "weight_decay": 1e-4,
    }


class Timer:
    """Times a scenario: from creation (before any import) or from :meth:`begin`.

    An adapter calls :meth:`begin` once its setup (imports, opening a session)
    is done, so that ``seconds`` measures the work alone and ``total_seconds``
    the work with the setup.
    """

    def __init__(self) -> None:
        self.created = time.perf_counter()
        self.began: float | None = None

    def begin(self) -> None:
        """Start the clock of the work proper (the first call counts)."""
        if self.began is None:
            self.began = time.perf_counter()

    def result(self) -> dict[str, float]:
        """The elapsed seconds, with and without the setup."""
        now = time.perf_counter()
        began = self.began if self.began is not None else self.created
        return {"seconds": now - began, "total_seconds": now - self.created}
