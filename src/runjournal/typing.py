"""Public type aliases used in runjournal's signatures.

Example:
    >>> from runjournal.typing import Scalar
    >>> value: Scalar = 0.5
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeAlias

__all__ = ["MetricValue", "Metrics", "ParamValue", "Params", "PathLike", "Scalar"]

Scalar: TypeAlias = int | float | bool
"""A plain number; ``bool`` is logged as the integer 0 or 1."""

MetricValue: TypeAlias = Any
"""A number: int, float, bool, a NumPy scalar or 0-d array, a 0-d torch tensor,
or any object with ``__float__``."""

Metrics: TypeAlias = Mapping[str, MetricValue]
"""What ``Run.log`` takes: metric names to numbers."""

ParamValue: TypeAlias = Any
"""str, number, None, lists, nested dicts, Path, Enum, dataclasses, pydantic models,
``argparse.Namespace``; see ``docs/format.md`` for how each is stored."""

Params: TypeAlias = Mapping[str, ParamValue]
"""What ``Run.log_params`` takes: names to param values, nested as you like."""

PathLike: TypeAlias = str | os.PathLike[str]
"""A file-system path."""
