"""The text of ``runjournal diff``: a :class:`~runjournal.compare.RunDiff`, group by group.

A group without differences takes one line (``params: 12 equal``); a group
with differences lists them, one per line: ``~`` a name both runs have with
different values, A's then B's (and the delta of a metric), ``+`` a name only
run B has, ``-`` a name only run A has. Stored strings pass through
:func:`safe`; hashes are cut to their first 12 characters.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from runjournal._terminal import format_value, safe, table, truncate
from runjournal.compare import GROUPS, Change, GroupDiff, MetricChange, MetricsDiff, RunDiff

__all__ = ["render_diff"]

_VALUE_WIDTH = 72
_HASH_CHARS = 12
_INDENT = "  "


def render_diff(result: RunDiff) -> str:
    """The whole diff as text: the two runs, then one block per group.

    Example:
        >>> from runjournal.compare import RunRef
        >>> result = RunDiff(a=RunRef(id="r1", name="x"), b=RunRef(id="r2", name="y"),
        ...                  params=GroupDiff(changed={"lr": Change(old=0.1, new=0.2)}, equal=3),
        ...                  packages=GroupDiff(added={"rich": "14.0.0"}))
        >>> print(render_diff(result))
        A  r1  x
        B  r2  y
        params: 1 changed, 3 equal
          ~ lr  0.1 -> 0.2
        metrics: none in either run
        code: none in either run
        data: none in either run
        packages: 1 only in B
          + rich  14.0.0
        platform: none in either run
        command: none in either run
        env: none in either run
    """
    rows = [["A", result.a.id, safe(result.a.name)], ["B", result.b.id, safe(result.b.name)]]
    header = table(rows)
    if result.is_empty and not any(result.group(name).equal for name in GROUPS):
        return f"{header}\nno differences"
    blocks = [_group(name, result.group(name)) for name in GROUPS]
    if result.is_empty:
        blocks.append("no differences")
    return "\n".join([header, *blocks, *_code_notes(result)])


def _group(name: str, group: GroupDiff | MetricsDiff) -> str:
    if group.not_recorded_in:
        runs = "either run" if len(group.not_recorded_in) == 2 else group.not_recorded_in[0].upper()
        return f"{name}: not recorded in {runs}"
    changes = group.changes()
    counts = [
        (len(changes), "changed"),
        (len(group.added), "only in B"),
        (len(group.removed), "only in A"),
        (group.equal, "equal"),
    ]
    summary = ", ".join(f"{count} {what}" for count, what in counts if count)
    rows = [[f"~ {safe(key)}", _change(name, change)] for key, change in sorted(changes.items())]
    for marker, values in (("+", group.added), ("-", group.removed)):
        rows += [[f"{marker} {safe(key)}", _value(name, v)] for key, v in sorted(values.items())]
    lines = [f"{name}: {summary or 'none in either run'}"]
    if rows:
        lines += [f"{_INDENT}{line}" for line in table(rows).split("\n")]
    return "\n".join(lines)


def _change(group: str, change: Change) -> str:
    # 1 -> 1.0 or '1' -> 1 would look equal printed plainly: show the types when they differ.
    exact = type(change.old) is not type(change.new)
    text = f"{_value(group, change.old, exact=exact)} -> {_value(group, change.new, exact=exact)}"
    if isinstance(change, MetricChange) and change.delta is not None:
        text += f"  ({_signed(change.delta)})"
    return text


def _value(group: str, value: Any, *, exact: bool = False) -> str:
    """One value, short: hashes cut to a prefix, argv as a shell line, the rest as stored."""
    if value is None:
        return "(none)"
    if group == "data" and isinstance(value, str):
        algo, colon, digest = value.rpartition(":")
        return safe(f"{algo}{colon}{digest[:_HASH_CHARS]}")
    if group == "code" and isinstance(value, str) and len(value) >= 40:
        return safe(value[:_HASH_CHARS])
    if group == "command" and isinstance(value, list):
        return truncate(safe(shlex.join(str(item) for item in value)), _VALUE_WIDTH)
    return truncate(safe(repr(value) if exact else format_value(value)), _VALUE_WIDTH)


def _signed(delta: float) -> str:
    if isinstance(delta, float) and not math.isfinite(delta):
        return f"delta {delta}"
    return f"{delta:+.4g}"


def _code_notes(result: RunDiff) -> list[str]:
    """A hint for commits that differ, and the patch diff when it was asked for."""
    notes: list[str] = []
    commit = result.code.changed.get("commit")
    if commit is not None and isinstance(commit.old, str) and isinstance(commit.new, str):
        old, new = safe(commit.old)[:_HASH_CHARS], safe(commit.new)[:_HASH_CHARS]
        notes.append(f"the commits differ: `git diff {old} {new}` in the repository shows how")
    if result.code.patch_diff:
        notes.append("patch diff (A's git.patch -> B's git.patch):")
        body = safe(result.code.patch_diff, keep_newlines=True).rstrip("\n")
        notes += [f"{_INDENT}{line}" if line else line for line in body.split("\n")]
    return notes
