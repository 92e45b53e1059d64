"""The summary of one metric's history: last, min and max values with their steps."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["MetricSummary", "summarize"]


class MetricSummary(BaseModel):
    """The last, smallest and largest value of one metric, each with its step.

    Computed over the default view of the history (re-logged steps of a
    resumed run count once). ``min`` and ``max`` ignore NaN; they are None
    when every value is NaN.

    Attributes:
        last: The value at the highest step (the last one logged at that step).
        last_step: The step of ``last``.
        min: The smallest value that is not NaN, or None.
        min_step: The first step at which ``min`` was logged, or None.
        max: The largest value that is not NaN, or None.
        max_step: The first step at which ``max`` was logged, or None.
        count: How many values the history holds.

    Example:
        >>> rows = [{"step": 0, "key": "loss", "value": 0.9},
        ...         {"step": 1, "key": "loss", "value": 0.4}]
        >>> summary = summarize(rows)["loss"]
        >>> summary.last, summary.min_step, summary.max, summary.count
        (0.4, 1, 0.9, 2)
    """

    model_config = ConfigDict(frozen=True)

    last: Any
    last_step: int
    min: Any = None
    min_step: int | None = None
    max: Any = None
    max_step: int | None = None
    count: int


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, MetricSummary]:
    """Summarize history rows sorted by step, per key, in order of first appearance.

    Example:
        >>> summarize([{"step": 3, "key": "acc", "value": float("nan")}])["acc"].min is None
        True
    """
    state: dict[str, dict[str, Any]] = {}
    for row in rows:
        key, value, step = row["key"], row["value"], row["step"]
        entry = state.get(key)
        if entry is None:
            entry = state[key] = {"count": 0}
        entry["count"] += 1
        entry["last"], entry["last_step"] = value, step
        if isinstance(value, float) and math.isnan(value):
            continue
        if "min" not in entry or value < entry["min"]:
            entry["min"], entry["min_step"] = value, step
        if "max" not in entry or value > entry["max"]:
            entry["max"], entry["max_step"] = value, step
    return {key: MetricSummary(**entry) for key, entry in state.items()}
