"""System samples (``system.jsonl``) as rows of the long metric history.

Each series comes back under its name prefixed with ``system/``
(``system/proc/rss_bytes``), so it never mixes with a metric the user logged,
and its ``step`` is the sample's number in the run: 0, 1, 2... in file order,
across segments.

Example:
    >>> system_rows("r1", __import__("pathlib").Path("no-such-run"), None, None, raw=False)
    []
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from runjournal.format import decode_value, read_lines

__all__ = ["PREFIX", "SYSTEM", "system_rows"]

SYSTEM = "system.jsonl"
PREFIX = "system/"
"""What the name of a system series starts with in a history frame."""


def system_rows(
    run_id: str,
    run_dir: Path,
    wanted: Collection[str] | None,
    bounds: tuple[float, float] | None,
    *,
    raw: bool,
) -> list[dict[str, Any]]:
    """The rows of one run's system samples, with keys prefixed by ``system/``.

    A torn or undecodable line is skipped, as in every reader; a sample line
    counts as a step even when none of its series is wanted.
    """
    rows: list[dict[str, Any]] = []
    for step, record in enumerate(read_lines(run_dir / SYSTEM).records):
        values = record.get("s")
        if not isinstance(values, dict) or not _number(record.get("time")):
            continue
        if bounds is not None and not bounds[0] <= step <= bounds[1]:
            continue
        for name, stored in values.items():
            key, value = PREFIX + str(name), decode_value(stored)
            if (wanted is not None and key not in wanted) or not _number(value):
                continue
            row = {"run_id": run_id, "step": step, "time": record["time"], "key": key}
            row["value"] = value
            if raw:
                row["segment"] = record.get("seg", 0) if isinstance(record.get("seg"), int) else 0
            rows.append(row)
    return rows


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
