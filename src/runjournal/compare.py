"""Why two runs differ: :func:`diff` and the :class:`RunDiff` it returns.

The differences are grouped: params, last metrics (with deltas), code (git
commit, branch, dirty flag and the uncommitted patch), data (the hash of each
named input or output), installed packages, platform (Python, OS and
hardware), command line, and captured environment variables. Each group lists
what only run A has (``removed``), what only run B has (``added``) and what
both have with different values (``changed``, old is A's and new is B's), and
counts what is equal.

Values are compared as stored: ``1`` and ``1.0`` differ (the store keeps
ints and floats apart), so do ``True`` and ``1``, and ``0.0`` and ``-0.0``;
NaN equals NaN, since a value that was NaN in both runs did not change.
Package names are compared normalized (``PyYAML`` and ``pyyaml`` are one
package), as pip does.

Example:
    >>> import runjournal
    >>> from runjournal.compare import diff
    >>> with runjournal.start("cmp", params={"lr": 0.1, "depth": 50}) as a:
    ...     a.log({"acc": 0.5})
    >>> with runjournal.start("cmp", params={"lr": 0.2, "depth": 50}) as b:
    ...     b.log({"acc": 0.75})
    >>> result = diff(a.id, b.id)
    >>> result.params.changed["lr"].new, result.params.equal, result.metrics.changed["acc"].delta
    (0.2, 1, 0.25)
    >>> result.differences()[:2]
    ['params.lr', 'metrics.acc']
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, computed_field

from runjournal.query import Environment, RunRecord, Store
from runjournal.typing import PathLike

__all__ = [
    "GROUPS",
    "Change",
    "CodeDiff",
    "GroupDiff",
    "MetricChange",
    "MetricsDiff",
    "RunDiff",
    "RunRef",
    "compare_values",
    "diff",
    "same_value",
]

GROUPS = ("params", "metrics", "code", "data", "packages", "platform", "command", "env")
"""The groups of a :class:`RunDiff`, in the order they are shown."""

Side = Literal["a", "b"]

_FROZEN = ConfigDict(frozen=True)


class RunRef(BaseModel):
    """One of the two runs compared: its ``id`` and ``name``."""

    model_config = _FROZEN

    id: str
    name: str


class Change(BaseModel):
    """A value both runs have, different: ``old`` is run A's, ``new`` is run B's.

    Example:
        >>> Change(old=0.1, new=0.2).new
        0.2
    """

    model_config = _FROZEN

    old: Any
    new: Any


class MetricChange(Change):
    """A last metric value that differs, with ``delta = new - old`` (None when not numbers).

    Example:
        >>> MetricChange(old=0.5, new=0.75, delta=0.25).delta
        0.25
    """

    delta: int | float | None = None


class _Group(BaseModel):
    """What one group of named values of two runs has in common and not."""

    model_config = _FROZEN

    added: dict[str, Any] = {}
    removed: dict[str, Any] = {}
    equal: int = 0
    not_recorded_in: list[Side] = []

    @property
    def is_empty(self) -> bool:
        """Whether the group shows no difference.

        Nothing added, removed or changed, and not recorded in exactly one of
        the runs (a group neither run recorded is no difference).
        """
        one_sided = len(self.not_recorded_in) == 1
        return not (self.added or self.removed or one_sided or self.changes())

    def changes(self) -> Mapping[str, Change]:
        """The names both runs have with different values."""
        raise NotImplementedError

    def names(self) -> list[str]:
        """The names that differ: changed, then only in B (added), then only in A (removed)."""
        return [*sorted(self.changes()), *sorted(self.added), *sorted(self.removed)]


class GroupDiff(_Group):
    """The differences within one group of named values.

    Attributes:
        added: Names only run B has, with B's values.
        removed: Names only run A has, with A's values.
        changed: Names both have with different values.
        equal: How many names both have with equal values.
        not_recorded_in: ``"a"``, ``"b"`` or both when that run has no record
            of the group at all (the capture was off, failed, or predates it);
            then nothing else is listed. A group only one run recorded is a
            difference; one neither recorded is not.

    Example:
        >>> group = GroupDiff(changed={"lr": Change(old=0.1, new=0.2)}, equal=3)
        >>> group.is_empty, group.names()
        (False, ['lr'])
    """

    changed: dict[str, Change] = {}

    def changes(self) -> Mapping[str, Change]:
        """The names both runs have with different values."""
        return self.changed


class MetricsDiff(_Group):
    """The differences of the last metric values, each change with its delta.

    Example:
        >>> MetricsDiff(equal=2).is_empty
        True
    """

    changed: dict[str, MetricChange] = {}

    def changes(self) -> Mapping[str, Change]:
        """The names both runs have with different values."""
        return self.changed


class CodeDiff(GroupDiff):
    """The differences of the git state: ``status``, ``commit``, ``branch``, ``dirty``, ``patch``.

    ``patch`` compares the uncommitted changes by their SHA-256 (None for a
    clean tree).

    Attributes:
        patch_diff: A unified diff of the two ``git.patch`` files, when asked
            for (``diff(..., patch=True)``) and they differ.

    Example:
        >>> CodeDiff(changed={"patch": Change(old=None, new="5e88")}).names()
        ['patch']
    """

    patch_diff: str | None = None


class RunDiff(BaseModel):
    """What differs between run A and run B, group by group.

    Attributes:
        a: Run A's id and name.
        b: Run B's id and name.
        params: Flat dotted param names (``model.depth``).
        metrics: The last value of each metric.
        code: The git state.
        data: ``<algo>:<hash>`` of the latest record of each data name.
        packages: Installed distributions and their versions.
        platform: ``python.version``, ``platform.system``, ``cpu.model``,
            ``gpus``, ``memory.total_bytes``, ...
        command: ``argv``, ``script``, ``module``, ``cwd``, ``executable``.
        env: The captured environment variables, but those that name the job
            rather than configure it (``SLURM_JOB_ID``, ``SLURM_ARRAY_TASK_ID``,
            ``PBS_JOBID``, node lists, start times, ``MASTER_PORT``,
            ``RUNJOURNAL_RUN_ID``, ...): they differ between any two jobs.

    Example:
        >>> RunDiff(a=RunRef(id="r1", name="x"), b=RunRef(id="r2", name="y")).is_empty
        True
    """

    model_config = _FROZEN

    a: RunRef
    b: RunRef
    params: GroupDiff = GroupDiff()
    metrics: MetricsDiff = MetricsDiff()
    code: CodeDiff = CodeDiff()
    data: GroupDiff = GroupDiff()
    packages: GroupDiff = GroupDiff()
    platform: GroupDiff = GroupDiff()
    command: GroupDiff = GroupDiff()
    env: GroupDiff = GroupDiff()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_empty(self) -> bool:
        """Whether the two runs show no difference at all."""
        return all(self.group(name).is_empty for name in GROUPS)

    def group(self, name: str) -> GroupDiff | MetricsDiff:
        """One group by its name in :data:`GROUPS`.

        Example:
            >>> RunDiff(a=RunRef(id="a", name=""), b=RunRef(id="b", name="")).group("data").equal
            0
        """
        group: GroupDiff | MetricsDiff = getattr(self, name)
        return group

    def differences(self) -> list[str]:
        """Every difference as ``<group>.<name>``; a group not recorded in a run is its name.

        Example:
            >>> changed = GroupDiff(changed={"lr": Change(old=0.1, new=0.2)})
            >>> RunDiff(a=RunRef(id="a", name=""), b=RunRef(id="b", name=""),
            ...         params=changed, packages=GroupDiff(not_recorded_in=["b"])).differences()
            ['params.lr', 'packages']
        """
        names: list[str] = []
        for group_name in GROUPS:
            group = self.group(group_name)
            if len(group.not_recorded_in) == 1:
                names.append(group_name)
            names += [f"{group_name}.{name}" for name in group.names()]
        return names

    def to_text(self) -> str:
        """The diff as text for a terminal, as ``runjournal diff`` prints it.

        Example:
            >>> print(RunDiff(a=RunRef(id="r1", name="x"), b=RunRef(id="r2", name="y")).to_text())
            A  r1  x
            B  r2  y
            no differences
        """
        from runjournal._diff_text import render_diff

        return render_diff(self)


def diff(
    a: RunRecord | str,
    b: RunRecord | str,
    *,
    store: Store | PathLike | None = None,
    patch: bool = False,
) -> RunDiff:
    """What differs between two runs, grouped (see :class:`RunDiff`).

    Args:
        a: Run A, a record or a run id, id prefix or name.
        b: Run B, likewise.
        store: Where to look up runs given as references (default: the
            store :class:`Store` finds).
        patch: Also give the unified diff of the two runs' ``git.patch``
            files when they differ (``RunDiff.code.patch_diff``).

    Raises:
        RunNotFoundError: a reference matches no run.
        AmbiguousRunError: a reference matches several runs.

    Example:
        >>> import runjournal
        >>> with runjournal.start("same") as one:
        ...     one.log({"loss": float("nan")})
        >>> with runjournal.start("same") as two:
        ...     two.log({"loss": float("nan")})
        >>> diff(one.id, two.id).metrics.equal
        1
    """
    record_a, record_b = _records(a, b, store)
    env_a, env_b = record_a.environment, record_b.environment
    return RunDiff(
        a=RunRef(id=record_a.id, name=record_a.name),
        b=RunRef(id=record_b.id, name=record_b.name),
        params=compare_values(record_a.flat_params, record_b.flat_params),
        metrics=_compare_metrics(record_a.metrics, record_b.metrics),
        code=_compare_code(record_a, record_b, patch=patch),
        data=compare_values(_digests(record_a), _digests(record_b)),
        packages=compare_values(_packages(env_a), _packages(env_b)),
        platform=compare_values(_platform(env_a), _platform(env_b)),
        command=compare_values(_command(env_a), _command(env_b)),
        env=compare_values(_variables(env_a), _variables(env_b)),
    )


def compare_values(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> GroupDiff:
    """The differences of two name-to-value mappings; None is a mapping not recorded.

    Example:
        >>> group = compare_values({"x": 1, "y": 2.0, "z": 0}, {"x": 1.0, "y": 2.0, "w": 0})
        >>> group.changed["x"], group.added, group.removed, group.equal
        (Change(old=1, new=1.0), {'w': 0}, {'z': 0}, 1)
    """
    if a is None or b is None:
        return GroupDiff(not_recorded_in=_not_recorded(a, b))
    both = sorted(a.keys() & b.keys())  # sorted, so that the JSON output is stable
    changed = {
        key: Change(old=a[key], new=b[key]) for key in both if not same_value(a[key], b[key])
    }
    return GroupDiff(
        added={key: b[key] for key in sorted(b.keys() - a.keys())},
        removed={key: a[key] for key in sorted(a.keys() - b.keys())},
        changed=changed,
        equal=len(both) - len(changed),
    )


def same_value(a: Any, b: Any) -> bool:
    """Whether two stored values are the same: types must match, and NaN equals NaN.

    Example:
        >>> same_value(1, 1.0), same_value(float("nan"), float("nan")), same_value([1], [1])
        (False, True, True)
        >>> same_value(0.0, -0.0), same_value(True, 1)
        (False, False)
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same_value, a, b))
    return bool(a == b)


def _records(
    a: RunRecord | str, b: RunRecord | str, store: Store | PathLike | None
) -> tuple[RunRecord, RunRecord]:
    if isinstance(a, RunRecord) and isinstance(b, RunRecord):
        return a, b  # no store needed, so none is opened
    opened = store if isinstance(store, Store) else Store(store)
    return (
        a if isinstance(a, RunRecord) else opened.run(a),
        b if isinstance(b, RunRecord) else opened.run(b),
    )


def _not_recorded(a: object, b: object) -> list[Side]:
    sides: list[Side] = []
    if a is None:
        sides.append("a")
    if b is None:
        sides.append("b")
    return sides


def _compare_metrics(a: dict[str, Any], b: dict[str, Any]) -> MetricsDiff:
    values = compare_values(a, b)
    changed = {
        key: MetricChange(old=change.old, new=change.new, delta=_delta(change.old, change.new))
        for key, change in values.changed.items()
    }
    return MetricsDiff(
        added=values.added, removed=values.removed, changed=changed, equal=values.equal
    )


def _delta(old: Any, new: Any) -> int | float | None:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
    if not numbers:
        return None
    delta: int | float = new - old
    return delta


def _compare_code(a: RunRecord, b: RunRecord, *, patch: bool) -> CodeDiff:
    git_a, git_b = a.git, b.git
    if git_a is None or git_b is None:
        return CodeDiff(not_recorded_in=_not_recorded(git_a, git_b))
    fields = ("status", "commit", "branch", "dirty")
    values_a = {name: getattr(git_a, name) for name in fields} | {"patch": _patch_id(a)}
    values_b = {name: getattr(git_b, name) for name in fields} | {"patch": _patch_id(b)}
    group = compare_values(values_a, values_b)
    patch_diff = None
    if patch and "patch" in group.changed:
        patch_diff = _patch_diff(a, b)
    return CodeDiff(changed=group.changed, equal=group.equal, patch_diff=patch_diff)


def _patch_id(record: RunRecord) -> str | None:
    """The SHA-256 of a run's uncommitted changes; None for a clean tree."""
    git = record.git
    if git is None or not git.dirty:
        return None
    if git.patch is not None and git.patch.sha256:
        return git.patch.sha256.lower()
    text = record.git_patch()
    if text is None:
        return "unknown"  # dirty, but the patch was not recorded: cannot say it is the same
    return hashlib.sha256(text.encode()).hexdigest()


def _patch_diff(a: RunRecord, b: RunRecord) -> str:
    lines = difflib.unified_diff(
        (a.git_patch() or "").splitlines(keepends=True),
        (b.git_patch() or "").splitlines(keepends=True),
        fromfile=f"A/{a.id}/git.patch",
        tofile=f"B/{b.id}/git.patch",
    )
    return "".join(line if line.endswith("\n") else f"{line}\n" for line in lines)


def _digests(record: RunRecord) -> dict[str, str | None]:
    return {name: data.digest for name, data in record.data_by_name.items()}


def _packages(environment: Environment | None) -> dict[str, str] | None:
    if environment is None or environment.packages is None:
        return None
    return {_package_key(name): version for name, version in environment.packages.items()}


def _package_key(name: str) -> str:
    """A distribution name normalized as pip does (PEP 503): ``PyYAML`` is ``pyyaml``."""
    return re.sub(r"[-_.]+", "-", name).lower()


_PLATFORM_FACTS = (
    "python.version",
    "python.implementation",
    "platform.system",
    "platform.release",
    "platform.machine",
    "platform.libc",
    "cpu.model",
    "cpu.logical_cores",
    "cpu.physical_cores",
    "memory.total_bytes",
    "cuda.driver_version",
    "cuda.cuda_version",
)
_COMMAND_FIELDS = ("argv", "script", "module", "cwd", "executable")


def _platform(environment: Environment | None) -> dict[str, Any] | None:
    if environment is None:
        return None
    facts: dict[str, Any] = {}
    for fact in _PLATFORM_FACTS:
        part, _, field = fact.partition(".")
        facts[fact] = getattr(getattr(environment, part), field, None)
    if environment.gpus is not None:
        facts["gpus"] = [gpu.name for gpu in environment.gpus]
    # A fact the capture did not record is left out rather than compared as None.
    return {key: value for key, value in facts.items() if value is not None}


_JOB_IDENTITY = re.compile(
    r"(JOB_?ID|TASK_ID|TASK_PID|STEP_ID|ARRAY_INDEX|JOBINDEX|NODEID|PROCID|LOCALID"
    r"|RESTART_COUNT|_TIME|NODELIST|NODEFILE|NODENAME|TOPOLOGY_ADDR|SUBMIT_HOST)$"
    r"|^(MASTER_ADDR|MASTER_PORT|RUNJOURNAL_RUN_ID)$"
)
"""Environment variables that identify a job, its node or its run: left out of the diff."""


def _variables(environment: Environment | None) -> dict[str, str] | None:
    if environment is None or environment.env is None:
        return None
    return {
        name: value for name, value in environment.env.items() if not _JOB_IDENTITY.search(name)
    }


def _command(environment: Environment | None) -> dict[str, Any] | None:
    if environment is None or environment.command is None:
        return None
    values = {name: getattr(environment.command, name) for name in _COMMAND_FIELDS}
    return {key: value for key, value in values.items() if value is not None}
