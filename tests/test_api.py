"""The public surface: what `import runjournal` exports, costs, and the error tree."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import runjournal
from runjournal import errors


def test_all_is_sorted_and_every_name_resolves() -> None:
    """__all__ is one sorted list, and each name in it is importable."""
    assert runjournal.__all__ == sorted(runjournal.__all__)
    for name in runjournal.__all__:
        assert getattr(runjournal, name) is not None


def test_unknown_attributes_raise_attribute_error() -> None:
    """The lazy loader does not invent names."""
    with pytest.raises(AttributeError, match="no_such_thing"):
        runjournal.no_such_thing  # noqa: B018


def test_import_does_not_load_the_read_side_or_touch_the_disk(tmp_path: object) -> None:
    """A training script's import loads no pydantic, pandas or psutil, and writes nothing."""
    code = (
        "import sys, os, runjournal;"
        "heavy = [m for m in ('pydantic', 'pandas', 'psutil', 'numpy') if m in sys.modules];"
        "print(heavy, os.listdir('.'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(tmp_path)
    )
    assert done.stdout.strip() == "[] []"


def test_every_error_derives_from_the_root_and_is_drawn_in_the_tree() -> None:
    """One except clause catches them all, and the errors docstring shows each one."""
    classes = [
        obj
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == errors.__name__
    ]
    assert sorted(c.__name__ for c in classes) == sorted(errors.__all__)
    doc = errors.__doc__ or ""
    for cls in classes:
        assert cls.__name__ in doc
        if cls is not errors.RunjournalWarning:
            assert issubclass(cls, errors.RunjournalError)


def test_value_errors_are_also_the_builtin_kinds_users_catch() -> None:
    """Bad names are ValueErrors and bad values TypeErrors, as the issue promises."""
    assert issubclass(errors.InvalidNameError, ValueError)
    assert issubclass(errors.InvalidValueError, TypeError)
    assert issubclass(errors.MissingDependencyError, ImportError)


def test_missing_dependency_message_is_the_install_command() -> None:
    """The message of a missing extra is what to type."""
    error = errors.MissingDependencyError("pandas", extra="pandas")
    assert str(error) == "pandas is not installed: pip install 'runjournal[pandas]'"


def test_py_typed_marker_ships_with_the_package() -> None:
    """Type checkers of users' code see runjournal's hints."""
    from importlib.resources import files

    assert files("runjournal").joinpath("py.typed").is_file()
