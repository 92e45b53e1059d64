"""Load the runs of ``examples/quickstart.py`` back: with pandas, then in plain Python.

Run it after the quickstart, with the same store::

    RUNJOURNAL_STORE=/tmp/demo-store python examples/show_results.py

``make demo`` runs both.
"""

from __future__ import annotations

import pandas as pd

import runjournal

EXPERIMENT = "logreg"
ACCURACY = "metrics.val/accuracy"
DISPLAY = {  # compact tables: no wrapping, four decimals
    "display.width": 120,
    "display.max_columns": 20,
    "display.max_colwidth": 32,
    "display.float_format": "{:.4f}".format,
}


def with_pandas() -> None:
    # One row per run; params.<name>, metrics.<name> (the last value) and tags.<name> columns.
    runs = runjournal.load_runs(experiment=EXPERIMENT)
    if runs.empty:
        raise SystemExit(f"no runs of experiment {EXPERIMENT!r}: run examples/quickstart.py first")

    table = runs[["run_id", "name", "status", "params.lr", "params.l2", ACCURACY]]
    table = table.sort_values(ACCURACY, ascending=False, ignore_index=True)
    print(f"Runs of {EXPERIMENT!r}, best validation accuracy first:\n")
    print(table.to_string(index=False))

    best = table.iloc[0]
    print(
        f"\nBest run: {best['name']} ({best['run_id']}), val/accuracy {best[ACCURACY]:.3f},"
        f" with lr={best['params.lr']:g} and l2={best['params.l2']:g}."
    )

    # The metric history is long (run_id, step, time, key, value); pivot it wide by key.
    history = runjournal.load_metrics(runs=best["run_id"], keys=["train/loss", "val/loss"])
    wide = history.pivot(index="step", columns="key", values="value")
    wide.columns.name = None
    print("\nIts last epochs (train and validation loss):\n")
    print(wide.tail(5).to_string())


def in_plain_python() -> None:
    # The same store without pandas: RunRecord objects with params, tags, notes and
    # a per-metric summary (last, min and max, each with its step).
    print("\nThe same runs in plain Python (Store().runs()):\n")
    for record in runjournal.Store().runs(experiment=EXPERIMENT):
        val_loss = record.summary["val/loss"]
        accuracy = record.summary["val/accuracy"]
        print(
            f"{record.name:<20} {record.status:<10}"
            f" lr={record.params['lr']:<5} l2={record.params['l2']:<5}"
            f" min val/loss {val_loss.min:.4f} (epoch {val_loss.min_step}),"
            f" max val/accuracy {accuracy.max:.3f} (epoch {accuracy.max_step})"
        )
        for note in record.notes:
            print(f"{'':<20} note: {note.text}")


def main() -> None:
    for option, value in DISPLAY.items():
        pd.set_option(option, value)
    with_pandas()
    in_plain_python()


if __name__ == "__main__":
    main()
