"""The interface every tool's adapter implements, with the parts most share."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from benchmarks.peers._workload import Sizes, Timer

if TYPE_CHECKING:
    import pandas as pd


class NotSupportedError(Exception):
    """The tool cannot do this scenario here; the message says why."""


class Adapter:
    """One tool. Each method does one scenario in a store under ``root``.

    The methods import the tool themselves (the ``start`` scenario times the
    import); the others call ``timer.begin()`` when the setup is done.
    """

    name: ClassVar[str]
    distributions: ClassVar[tuple[str, ...]]
    """The PyPI distributions whose versions the results record."""
    notes: ClassVar[str] = ""
    """How the adapter uses the tool, for the results."""

    def import_tool(self) -> None:
        """Import the tool (to check that it is usable here)."""
        raise NotImplementedError

    def import_reader(self) -> None:
        """Import what reading the store needs (pandas, the tool's read side)."""
        import pandas  # noqa: F401

        self.import_tool()

    def start(self, root: Path) -> None:
        """Import the tool, start a run, log one param, end the run."""
        raise NotImplementedError

    def hot(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        """One run, 3 metrics per step for ``sizes.hot_steps`` steps, finish included."""
        raise NotImplementedError

    def many(self, root: Path, sizes: Sizes, timer: Timer) -> None:
        """``sizes.runs`` runs of 10 params and 3 metrics x ``sizes.run_steps`` steps."""
        raise NotImplementedError

    def table(self, root: Path, timer: Timer) -> pd.DataFrame:
        """The runs of ``many`` as a DataFrame, one row per run (params, last metrics)."""
        raise NotImplementedError

    def history(self, root: Path, timer: Timer) -> pd.DataFrame:
        """Every point of ``many`` as a long DataFrame (run, step, key, value)."""
        raise NotImplementedError

    def store(self, root: Path) -> Path:
        """The directory (or file) that holds what ``many`` wrote."""
        return root

    def drop_cache(self, root: Path) -> None:
        """Delete any derived cache, so that the next read is cold."""


def remove_tree(path: Path) -> None:
    """Delete ``path`` if it exists."""
    shutil.rmtree(path, ignore_errors=True)
