"""Train three small logistic-regression models and log each one as a runjournal run.

The data is a generated, nearly linearly separable binary problem (fixed seed),
and the model is fitted by full-batch gradient descent with an L2 penalty. Each
run logs its params, a tag, per-epoch train and validation loss and accuracy,
and a closing note.

Run it with ``make demo``, or directly::

    RUNJOURNAL_STORE=/tmp/demo-store python examples/quickstart.py

Without ``RUNJOURNAL_STORE`` the runs go to ``./.runjournal``. Then look at the
runs with ``runjournal ls`` and ``python examples/show_results.py``.
"""

from __future__ import annotations

import numpy as np

import runjournal

SEED = 7
N_SAMPLES = 500
N_FEATURES = 100
EPOCHS = 100
VAL_FRACTION = 0.25

# One run per setting: a learning rate too small to converge in time, a good
# one with a little L2, and the same learning rate with too much L2.
SETTINGS = [
    {"lr": 0.05, "l2": 0.0},
    {"lr": 0.5, "l2": 0.01},
    {"lr": 0.5, "l2": 0.5},
]


def make_data(
    n_samples: int, n_features: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A binary problem that a linear model can almost separate, split train/val."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_samples, n_features))
    true_weights = rng.normal(size=n_features)
    margin = x @ true_weights + rng.normal(scale=1.0, size=n_samples)  # label noise
    y = (margin > 0).astype(np.float64)
    n_val = int(n_samples * VAL_FRACTION)
    return x[n_val:], y[n_val:], x[:n_val], y[:n_val]


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def loss_and_accuracy(
    w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray, l2: float = 0.0
) -> tuple[float, float]:
    """Mean binary cross-entropy (plus the L2 penalty, if any) and accuracy."""
    p = np.clip(sigmoid(x @ w + b), 1e-12, 1 - 1e-12)
    bce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    loss = bce + 0.5 * l2 * float(w @ w)
    accuracy = np.mean((p > 0.5) == (y > 0.5))
    return float(loss), float(accuracy)


def train(lr: float, l2: float) -> tuple[runjournal.Run, float]:
    """Fit one model, logging every epoch; return the ended run and its final val accuracy."""
    params = {
        "lr": lr,
        "l2": l2,
        "epochs": EPOCHS,
        "n_samples": N_SAMPLES,
        "seed": SEED,
    }
    x_train, y_train, x_val, y_val = make_data(N_SAMPLES, N_FEATURES, SEED)
    with runjournal.start("logreg", params=params, tags={"optimizer": "gd"}) as run:
        w = np.zeros(N_FEATURES)
        b = 0.0
        for epoch in range(EPOCHS):
            p = sigmoid(x_train @ w + b)
            error = p - y_train
            w -= lr * (x_train.T @ error / len(y_train) + l2 * w)
            b -= lr * float(np.mean(error))

            train_loss, train_acc = loss_and_accuracy(w, b, x_train, y_train, l2)
            val_loss, val_acc = loss_and_accuracy(w, b, x_val, y_val)
            run.log(
                {
                    "train/loss": train_loss,
                    "train/accuracy": train_acc,
                    "val/loss": val_loss,
                    "val/accuracy": val_acc,
                },
                step=epoch,
            )
        run.note(
            f"final val accuracy {val_acc:.3f} after {EPOCHS} epochs;"
            f" weight norm {np.linalg.norm(w):.2f}"
        )
    return run, val_acc


def main() -> None:
    for setting in SETTINGS:
        run, val_accuracy = train(**setting)
        print(
            f"{run.id}  {run.name:<24}  lr={setting['lr']:<5} l2={setting['l2']:<6}"
            f"  val/accuracy={val_accuracy:.3f}"
        )


if __name__ == "__main__":
    main()
