"""Every exception and warning runjournal raises.

All errors derive from :class:`RunjournalError`, so one ``except`` clause catches
everything the library raises on purpose. Each error carries the offending
value as an attribute and its message says what would have been valid.
Exceptions of the libraries underneath (orjson, pydantic, filelock, OSError
from the store) are re-raised as one of these at the boundary.

The tree::

    RunjournalError
    ├── StoreError                    a store cannot be found, opened or written
    │   ├── NotAStoreError            a directory that is not a runjournal store
    │   ├── UnsupportedFormatError    written by a newer, incompatible runjournal
    │   └── StoreWriteError           the file system refused a write (OSError inside)
    ├── RunError                      about one run
    │   ├── RunNotFoundError          no run matches a reference
    │   ├── AmbiguousRunError         several runs match a reference
    │   ├── RunExistsError            a run id that is already taken
    │   ├── RunInProgressError        resuming a run whose process still lives
    │   ├── WriterInUseError          attach() with a writer name a live process holds
    │   └── NoActiveRunError          a module-level call with no active run
    ├── InvalidNameError   (ValueError)  a metric, param, tag or run-id name
    ├── InvalidValueError  (TypeError)   a value that cannot be logged
    ├── InvalidArgumentError (ValueError) a bad argument to start(), Store, ...
    ├── GitStateError                 start(require_clean_git=True) on a dirty or unknown tree
    ├── DataError          (ValueError)  data that log_data cannot hash (OSError inside)
    ├── ArtifactError      (ValueError)  an artifact that cannot be stored or found
    ├── NonFiniteMetricError (ValueError) a NaN or infinite metric, with start(on_nan="raise")
    ├── FilterError        (ValueError)  a filter expression that does not parse
    └── MissingDependencyError (ImportError) an optional extra is not installed

    RunjournalWarning (UserWarning)   a problem that was handled and recorded

Example:
    >>> import runjournal
    >>> with runjournal.start() as run:
    ...     pass
    >>> try:
    ...     runjournal.Store().run("no-such-run")
    ... except runjournal.errors.RunjournalError as error:
    ...     print(type(error).__name__, error.ref)
    RunNotFoundError no-such-run
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "AmbiguousRunError",
    "ArtifactError",
    "DataError",
    "FilterError",
    "GitStateError",
    "InvalidArgumentError",
    "InvalidNameError",
    "InvalidValueError",
    "MissingDependencyError",
    "NoActiveRunError",
    "NonFiniteMetricError",
    "NotAStoreError",
    "RunError",
    "RunExistsError",
    "RunInProgressError",
    "RunNotFoundError",
    "RunjournalError",
    "RunjournalWarning",
    "StoreError",
    "StoreWriteError",
    "UnsupportedFormatError",
    "WriterInUseError",
]


class RunjournalError(Exception):
    """The root of every error runjournal raises on purpose."""


class RunjournalWarning(UserWarning):
    """A problem runjournal handled and recorded instead of raising.

    Raised as an exception instead when the run is strict
    (``start(strict=True)`` or ``RUNJOURNAL_STRICT=1``).
    """


class StoreError(RunjournalError):
    """A store cannot be found, opened or written.

    Attributes:
        path: The store directory concerned.
    """

    def __init__(self, message: str, *, path: Path | str) -> None:
        super().__init__(message)
        self.path = Path(path)


class NotAStoreError(StoreError):
    """A directory exists, is not empty, and holds no ``runjournal.json`` marker."""


class UnsupportedFormatError(StoreError):
    """The store or a run was written in a newer format than this version reads.

    Attributes:
        found: The format version found on disk.
        supported: The newest version this runjournal reads.
    """

    def __init__(self, message: str, *, path: Path | str, found: Any, supported: int) -> None:
        super().__init__(message, path=path)
        self.found = found
        self.supported = supported


class StoreWriteError(StoreError):
    """The file system refused a write; the ``OSError`` is the ``__cause__``."""


class RunError(RunjournalError):
    """A problem with one run.

    Attributes:
        ref: The run id, prefix or name the caller gave.
    """

    def __init__(self, message: str, *, ref: str | None = None) -> None:
        super().__init__(message)
        self.ref = ref


class RunNotFoundError(RunError):
    """No run matches the given id, id prefix or name."""


class AmbiguousRunError(RunError):
    """Several runs match a reference.

    Attributes:
        matches: The ids of the matching runs.
    """

    def __init__(self, message: str, *, ref: str, matches: list[str]) -> None:
        super().__init__(message, ref=ref)
        self.matches = matches


class RunExistsError(RunError):
    """``start(run_id=...)`` names a run that exists and ``resume`` was not asked for."""


class RunInProgressError(RunError):
    """Resuming a run whose recorded process is still alive on this host."""


class WriterInUseError(RunError):
    """``attach()`` with a writer name that a live process of this host already holds.

    Attributes:
        writer: The writer name asked for.
    """

    def __init__(self, message: str, *, ref: str, writer: str) -> None:
        super().__init__(message, ref=ref)
        self.writer = writer


class NoActiveRunError(RunError):
    """A module-level call such as ``runjournal.log`` was made before ``start()``."""


class InvalidNameError(RunjournalError, ValueError):
    """A metric, param or tag name, or a run id, is not valid.

    Attributes:
        name: The offending name.
        kind: What it names: ``"metric"``, ``"param"``, ``"tag"`` or ``"run id"``.
    """

    def __init__(self, message: str, *, name: object, kind: str) -> None:
        super().__init__(message)
        self.name = name
        self.kind = kind


class InvalidValueError(RunjournalError, TypeError):
    """A value cannot be logged under a key.

    Attributes:
        key: The metric or param name the value was logged under.
        value: The offending value.
    """

    def __init__(self, message: str, *, key: str, value: object) -> None:
        super().__init__(message)
        self.key = key
        self.value = value


class InvalidArgumentError(RunjournalError, ValueError):
    """An argument to ``start()``, ``Store`` or another entry point is not valid.

    Attributes:
        argument: The argument's name.
        value: The value given.
    """

    def __init__(self, message: str, *, argument: str, value: object) -> None:
        super().__init__(message)
        self.argument = argument
        self.value = value


class DataError(RunjournalError, ValueError):
    """Data given to ``log_data`` cannot be hashed.

    The path is missing or unreadable, the source is not a file, a directory
    or a pandas DataFrame, or the mode or algorithm is not valid. When the
    file system refused a read, the ``OSError`` is the ``__cause__``.

    Attributes:
        name: The data name given to ``log_data`` (None from ``hash_data``).
        path: The file or directory concerned, if any.
    """

    def __init__(self, message: str, *, name: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.path = path


class ArtifactError(RunjournalError, ValueError):
    """An artifact cannot be stored, or a stored one cannot be found or read back.

    A bad artifact name, a missing or unreadable source, a value that cannot
    be encoded, or no artifact of that name in a run. When the file system
    refused a read or a write, the ``OSError`` is the ``__cause__``.

    Attributes:
        name: The artifact name, if known.
        path: The file or directory concerned, if any.

    Example:
        >>> ArtifactError("no artifact 'x'", name="x").name
        'x'
    """

    def __init__(self, message: str, *, name: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.path = path


class NonFiniteMetricError(RunjournalError, ValueError):
    """A metric was NaN or infinite in a run started with ``on_nan="raise"``.

    Raised out of ``run.log`` after the line is logged, so the value is in the
    run's history; whatever the run's strictness, since stopping is the point.

    Attributes:
        key: The metric name.
        value: The value logged (NaN, inf or -inf, as a float).
        step: The step it was logged at.

    Example:
        >>> error = NonFiniteMetricError("loss is nan", key="loss", value=float("nan"), step=7)
        >>> error.key, error.step, isinstance(error, ValueError)
        ('loss', 7, True)
    """

    def __init__(self, message: str, *, key: str, value: float, step: int) -> None:
        super().__init__(message)
        self.key = key
        self.value = value
        self.step = step


class FilterError(RunjournalError, ValueError):
    """A filter expression (``where="params.lr > 0.01"``) that does not parse.

    The message says what was expected and shows the expression with a caret
    under the column of the problem.

    Attributes:
        expression: The expression given.
        position: The 1-based column of the problem (one past the end for a
            missing part).
        reason: What was wrong, without the expression.

    Example:
        >>> print(FilterError("expected a value, found the end", expression="lr >", position=5))
        expected a value, found the end at column 5
          lr >
              ^
    """

    def __init__(self, message: str, *, expression: str, position: int) -> None:
        shown = expression.replace("\n", " ").replace("\r", " ").replace("\t", " ")
        super().__init__(f"{message} at column {position}\n  {shown}\n  {' ' * (position - 1)}^")
        self.expression = expression
        self.position = position
        self.reason = message


class GitStateError(RunjournalError):
    """``start(require_clean_git=True)`` found uncommitted changes, or no git state to check.

    Raised before the run directory is created, so nothing is written.

    Attributes:
        status: The git status found: ``ok`` or ``no_commits`` (then the tree
            is dirty), ``not_a_repo``, ``no_git`` or ``error``.
        dirty_files: The tracked files that differ from ``HEAD``, as git names them.
    """

    def __init__(self, message: str, *, status: str, dirty_files: list[str]) -> None:
        super().__init__(message)
        self.status = status
        self.dirty_files = dirty_files


class MissingDependencyError(RunjournalError, ImportError):
    """An optional extra is needed; the message is the command that installs it.

    Attributes:
        package: The missing distribution, e.g. ``"pandas"``.
    """

    def __init__(self, package: str, *, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'runjournal[{extra}]'")
        self.package = package
        self.extra = extra
