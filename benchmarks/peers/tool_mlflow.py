"""MLflow's fluent API, on the SQLite store and on the (deprecated) file store.

MLflow 3 refuses the file store unless ``MLFLOW_ALLOW_FILE_STORE=true``: it is
"in maintenance mode"; this adapter sets that variable for the file-store
variant. Metrics are logged synchronously (MLflow's default). The runs table
is ``mlflow.search_runs``; the history has no one-call API and is read with
``MlflowClient.get_metric_history`` per run and key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

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


class _Mlflow(Adapter):
    distributions = ("mlflow", "mlflow-skinny")
    backend: ClassVar[str]

    def _uri(self, root: Path) -> str:
        raise NotImplementedError

    def _setup(self, root: Path) -> Any:
        """Import MLflow and point it at the store under ``root``."""
        import mlflow

        mlflow.set_tracking_uri(self._uri(root))
        mlflow.set_experiment(EXPERIMENT)
        return mlflow

    def import_tool(self) -> None:
        import mlflow  # noqa: F401

    def start(self, root: Path) -> None:
        mlflow = self._setup(root)
        with mlflow.start_run():
            mlflow.log_param("lr", 0.01)

    def hot(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        mlflow = self._setup(root)
        mlflow.start_run()
        timer.begin()
        for step in range(sizes.hot_steps):
            mlflow.log_metrics(metrics_at(step), step=step)
        mlflow.end_run()

    def many(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        mlflow = self._setup(root)
        timer.begin()
        for index in range(sizes.runs):
            with mlflow.start_run():
                mlflow.log_params(params_of(index))
                for step in range(sizes.run_steps):
                    mlflow.log_metrics(metrics_at(step), step=step)

    def table(self, root: Path, timer: Timer) -> pd.DataFrame:
        mlflow = self._setup(root)
        timer.begin()
        return mlflow.search_runs(experiment_names=[EXPERIMENT])

    def history(self, root: Path, timer: Timer) -> pd.DataFrame:
        import pandas as pd

        mlflow = self._setup(root)
        timer.begin()
        client = mlflow.MlflowClient()
        rows = []
        for run in mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list"):
            run_id = run.info.run_id
            for key in METRIC_KEYS:
                for metric in client.get_metric_history(run_id, key):
                    rows.append((run_id, metric.step, metric.timestamp, key, metric.value))
        frame = pd.DataFrame(rows, columns=["run_id", "step", "time", "key", "value"])
        frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
        return frame


class MlflowSqlite(_Mlflow):
    name = "mlflow-sqlite"
    notes = "MLflow, SQLite store (sqlite:///.../mlflow.db), synchronous logging"

    def _uri(self, root: Path) -> str:
        return f"sqlite:///{root / 'mlflow.db'}"


class MlflowFile(_Mlflow):
    name = "mlflow-file"
    notes = "MLflow, file store (file:...), allowed with MLFLOW_ALLOW_FILE_STORE=true"

    def _uri(self, root: Path) -> str:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        return (root / "mlruns").as_uri()
