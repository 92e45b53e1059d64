"""The README's quickstart is real: its Python block runs as written and prints what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def test_the_readme_quickstart_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The quickstart logs a run, loads it back and prints its status and last loss."""
    pytest.importorskip("pandas", reason="the quickstart ends with the pandas functions")
    block = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert block is not None
    exec(compile(block.group(1), str(README), "exec"), {})
    assert capsys.readouterr().out.split() == ["completed", "0.01"]
