"""What each reliability scenario tried and what it lost: the figures of docs/reliability.md.

A test asks for its scenario's :class:`Tally` (``tally("crash storm")``) and
adds to it; several tests may add to one scenario. At the end of the session
``conftest.py`` prints every tally and, when ``RUNJOURNAL_RELIABILITY_REPORT``
names a file, writes them there as JSON for ``benchmarks/reliability_report.py``.

The columns:

- ``repetitions``: how many times the scenario was played (processes killed,
  examples tried, files damaged, ...);
- ``runs`` and ``lines``: runs created and JSON lines written to disk;
- ``lost``: records the library had reported as written (``flush()`` returned,
  ``log_params``/``tag``/``note`` returned, the file was read back) that are
  not on disk exactly as logged;
- ``corrupted``: what is on disk but wrong: a value that differs, two lines
  merged, an undecodable line other than the one torn last line a kill may
  leave, a half-written file under its final name, a record read back
  differently from what was stored;
- ``leaked``: what escaped: a file written outside the store, a secret
  found on disk, an exception in the logger thread, memory past its cap;
- ``expected``: damage the library documents and readers skip and report,
  counted for the record (torn last lines after SIGKILL, runs killed before
  their start event, lines dropped past the memory cap).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPORT_VARIABLE = "RUNJOURNAL_RELIABILITY_REPORT"


@dataclass
class Tally:
    """The counts of one scenario (see the module docstring for each column)."""

    scenario: str
    repetitions: int = 0
    runs: int = 0
    lines: int = 0
    lost: int = 0
    corrupted: int = 0
    leaked: int = 0
    expected: dict[str, int] = field(default_factory=dict)
    tests: list[str] = field(default_factory=list)

    def expect(self, what: str, count: int = 1) -> None:
        """Count ``count`` occurrences of documented, reported damage ``what``."""
        self.expected[what] = self.expected.get(what, 0) + count


_TALLIES: dict[str, Tally] = {}
_LOCK = threading.Lock()


def tally_for(scenario: str, test: str) -> Tally:
    """The tally of ``scenario`` (created on first use), noting that ``test`` adds to it."""
    with _LOCK:
        found = _TALLIES.setdefault(scenario, Tally(scenario))
        if test not in found.tests:
            found.tests.append(test)
        return found


def all_tallies() -> list[Tally]:
    """Every scenario's tally, in the order they were first used."""
    return list(_TALLIES.values())


def write_report(path: Path, soak: int, seconds: float) -> None:
    """Write every tally as JSON to ``path`` (for benchmarks/reliability_report.py)."""
    data = {
        "soak": soak,
        "seconds": round(seconds, 1),
        "cpus": os.cpu_count(),
        "scenarios": [asdict(tally) for tally in all_tallies()],
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def summary_lines() -> list[str]:
    """The tallies as aligned text lines, for pytest's terminal summary."""
    header = ("scenario", "reps", "runs", "lines", "lost", "corrupted", "leaked", "expected")
    rows = [header]
    for t in all_tallies():
        expected = ", ".join(f"{what} {count}" for what, count in sorted(t.expected.items()))
        rows.append(
            (
                t.scenario,
                str(t.repetitions),
                str(t.runs),
                str(t.lines),
                str(t.lost),
                str(t.corrupted),
                str(t.leaked),
                expected or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + f"  {row[-1]}"
        for row in rows
    ]
