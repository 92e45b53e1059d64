"""Downsampling metric histories for plots, keeping the spikes.

Each series (one run, writer and key, in step order) is cut into buckets of
consecutive points; each bucket keeps its first and last point, and the
points holding its smallest and largest value (NaN ignored; the first such
point on ties). This is the M4 rule: a line plot of what is kept looks like a
plot of everything at a width of one pixel per bucket, and a single spike
is never averaged away.

- ``every=N``: buckets of N points (at most 4 kept per N);
- ``max_points=N`` (at least 4): as many buckets as make at most N points per
  series, N // 4 of them; a series of at most N points is kept whole.

Example:
    >>> sampling = Sampling.build(every=5, max_points=None)
    >>> sampling.keep([0.0, 9.0, 1.0, 1.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    [0, 1, 4, 5, 9]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runjournal.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Sampling"]


@dataclass(frozen=True)
class Sampling:
    """How to downsample each series; neither field set keeps everything.

    Attributes:
        every: Bucket size.
        max_points: Most points per series.
    """

    every: int | None = None
    max_points: int | None = None

    @classmethod
    def build(cls, every: int | None, max_points: int | None) -> Sampling:
        """Checked arguments.

        Raises:
            InvalidArgumentError: both given, or not a positive int (``max_points`` at least 4).
        """
        if every is not None and max_points is not None:
            raise InvalidArgumentError(
                "give every= or max_points=, not both", argument="every", value=every
            )
        for name, value, least in (("every", every, 1), ("max_points", max_points, 4)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < least
            ):
                raise InvalidArgumentError(
                    f"{name} must be an int of at least {least}, not {value!r}",
                    argument=name,
                    value=value,
                )
        return cls(every, max_points)

    @property
    def active(self) -> bool:
        """Whether anything may be left out."""
        return (self.every or 1) > 1 or self.max_points is not None

    def bucket(self, points: int) -> int | None:
        """The bucket size for a series of ``points`` points; None keeps all of them."""
        if self.every is not None:
            return self.every if self.every > 1 and points > self.every else None
        if self.max_points is None or points <= self.max_points:
            return None
        return math.ceil(points / (self.max_points // 4))

    def keep(self, values: Sequence[Any]) -> list[int]:
        """The indices kept of one series' values (in step order)."""
        size = self.bucket(len(values))
        if size is None:
            return list(range(len(values)))
        kept: set[int] = set()
        for start in range(0, len(values), size):
            end = min(start + size, len(values))
            kept.update((start, end - 1))
            low = high = None
            for index in range(start, end):
                value = values[index]
                if value != value:  # noqa: PLR0124 (NaN)
                    continue
                if low is None or value < values[low]:
                    low = index
                if high is None or value > values[high]:
                    high = index
            kept.update(index for index in (low, high) if index is not None)
        return sorted(kept)

    def rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The history rows of one run kept, in their order; a series is (writer, key)."""
        if not self.active:
            return rows
        series: dict[tuple[Any, Any], list[int]] = {}
        for index, row in enumerate(rows):
            series.setdefault((row.get("writer"), row["key"]), []).append(index)
        kept: list[int] = []
        for indices in series.values():
            chosen = self.keep([rows[i]["value"] for i in indices])
            kept += [indices[i] for i in chosen]
        return [rows[i] for i in sorted(kept)]

    def mask(self, values: np.ndarray) -> np.ndarray:
        """Which points of one series (float64, in step order) are kept, as :meth:`keep`."""
        import numpy as np

        points = len(values)
        size = self.bucket(points)
        if size is None:
            return np.ones(points, dtype=bool)
        starts = np.arange(0, points, size)
        bucket = np.arange(points) // size
        kept = np.zeros(points, dtype=bool)
        kept[starts] = True
        kept[np.minimum(starts + size, points) - 1] = True
        valid = ~np.isnan(values)
        for reduce, fill in ((np.minimum, np.inf), (np.maximum, -np.inf)):
            extreme = reduce.reduceat(np.where(valid, values, fill), starts)
            hits = np.flatnonzero(valid & (values == extreme[bucket]))
            if len(hits):
                first = np.ones(len(hits), dtype=bool)
                first[1:] = bucket[hits][1:] != bucket[hits][:-1]
                kept[hits[first]] = True
        return kept
