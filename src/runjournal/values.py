"""Name validation and value coercion, shared by the writer and the reader.

Names are data, never paths: any non-empty string is a valid metric, param or
tag name (``val/AR@100``, ``../../x``); it is stored inside JSON and never used
as a file name. Only strings that cannot be stored as UTF-8 (lone surrogates)
are refused.

Values are coerced to what JSON holds, exactly:

- metrics are numbers: int, float, bool (stored as 0 or 1), NumPy scalars and
  0-d arrays, 0-d torch tensors, anything with ``__float__``;
- params may be any tree of str, numbers, None, lists and dicts, and also
  Path, Enum, dataclasses, pydantic models, ``argparse.Namespace``, sets,
  dates and NumPy values, each converted as ``docs/format.md`` describes.

Example:
    >>> from runjournal.values import coerce_metrics, coerce_params
    >>> coerce_metrics({"loss": 0.5, "nan": float("nan")})
    ({'loss': 0.5, 'nan': {'$float': 'nan'}}, [])
    >>> coerce_params({"lr": 1e-3, "layers": (64, 64)})
    {'lr': 0.001, 'layers': [64, 64]}
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from runjournal.errors import InvalidNameError, InvalidValueError
from runjournal.format import RUN_ID_PATTERN, encode_float, encode_int, is_tagged, wrap_dict

__all__ = [
    "MAX_PARAM_DEPTH",
    "check_name",
    "check_run_id",
    "check_text",
    "coerce_metric",
    "coerce_metrics",
    "coerce_params",
    "coerce_params_each",
    "diff_params",
    "is_param_branch",
    "merge_params",
    "short_repr",
    "storable_text",
]

MAX_PARAM_DEPTH = 64
"""How deeply params may nest; JSON encoders give up a little beyond 250."""


def check_name(name: object, kind: str) -> str:
    """Return ``name`` if it is a valid metric/param/tag name, else raise.

    Raises:
        InvalidNameError: ``name`` is not a string, is empty, or cannot be
            encoded as UTF-8.

    Example:
        >>> check_name("val/AR@100", "metric")
        'val/AR@100'
    """
    if type(name) is not str:
        raise InvalidNameError(
            f"{kind} name {short_repr(name)} is a {type(name).__name__}; names must be non-empty"
            " strings",
            name=name,
            kind=kind,
        )
    if not name:
        raise InvalidNameError(
            f"{kind} name is empty; names must be non-empty strings", name=name, kind=kind
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidNameError(
            f"{kind} name {short_repr(name)} holds a lone surrogate and cannot be stored as UTF-8",
            name=name,
            kind=kind,
        ) from None
    return name


def check_text(text: str, what: str, *, key: str) -> str:
    r"""Return ``text`` if it can be stored as UTF-8, else raise.

    Args:
        text: A string value: a param, a tag value, a note.
        what: How messages name it (``"param 'model'"``, ``"note"``).
        key: The key the value was given under, for the error.

    Raises:
        InvalidValueError: ``text`` holds a lone surrogate (``"\udc80"``), which
            UTF-8 and JSON cannot hold.

    Example:
        >>> check_text("ünïcode", "note", key="note")
        'ünïcode'
    """
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidValueError(
                f"{what} {short_repr(text)} holds a lone surrogate and cannot be stored as UTF-8",
                key=key,
                value=text,
            ) from None
    return text


def storable_text(text: str) -> str:
    r"""``text``, with any lone surrogate written as its escape, so that UTF-8 can hold it.

    For messages about refused values, which may quote the very string that
    could not be stored.

    Example:
        >>> storable_text("bad \udc80 name")
        'bad \\udc80 name'
    """
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_run_id(run_id: object) -> str:
    """Return ``run_id`` if it can name a run directory, else raise.

    A run id is 1 to 128 characters of letters, digits, ``.``, ``_`` and ``-``,
    starting with a letter or digit.

    Example:
        >>> check_run_id("slurm-4242_7")
        'slurm-4242_7'
    """
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidNameError(
            f"run id {short_repr(run_id)} is not valid: use 1-128 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit",
            name=run_id,
            kind="run id",
        )
    return run_id


def coerce_metrics(metrics: object) -> tuple[dict[str, Any], list[Exception]]:
    """Coerce a metrics mapping to stored form; collect the keys that cannot be.

    Returns:
        The storable metrics, and one exception per refused key
        (:class:`InvalidNameError` or :class:`InvalidValueError`).

    Raises:
        InvalidValueError: ``metrics`` is not a mapping at all.
    """
    if type(metrics) is dict and _all_plain(metrics):
        return metrics, []  # the hot path: plain floats and ints under string keys
    if not isinstance(metrics, Mapping):
        raise InvalidValueError(
            f"log() takes a mapping of metric names to numbers, not a {type(metrics).__name__}",
            key="",
            value=metrics,
        )
    clean: dict[str, Any] = {}
    problems: list[Exception] = []
    try:
        for key, value in metrics.items():
            try:
                clean[check_name(key, "metric")] = coerce_metric(key, value)
            except (InvalidNameError, InvalidValueError) as problem:
                problems.append(problem)
    except Exception as error:  # the mapping's own code (items(), iteration) failed
        raise InvalidValueError(
            f"log(): reading the {type(metrics).__name__} of metrics failed:"
            f" {type(error).__name__}: {error}",
            key="",
            value=metrics,
        ) from error
    return clean, problems


def _all_plain(metrics: dict[Any, Any]) -> bool:
    """Whether every key is a non-empty str and every value a finite float or 64-bit int."""
    for key, value in metrics.items():
        if type(key) is not str or not key:
            return False
        kind = type(value)
        if kind is float:
            if value - value != 0.0:
                return False
        elif kind is not int or not -(2**63) <= value < 2**64:
            return False
    return True


def coerce_metric(key: str, value: object) -> int | float | dict[str, Any]:
    """Coerce one metric value to its stored form.

    Raises:
        InvalidValueError: ``value`` is not a number, is an array with more than
            one element, or its ``__float__`` fails.

    Example:
        >>> coerce_metric("done", True), coerce_metric("big", 2**70)
        (1, {'$int': '1180591620717411303424'})
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return _stored_int(int(value), f"metric {key!r}", key)
    if isinstance(value, float):
        return encode_float(float(value))
    if isinstance(value, (str, bytes, type(None))):
        raise _not_a_number(key, value)
    try:
        item = _array_item(key, value)
    except InvalidValueError:
        raise
    except Exception as error:  # the object's own shape or item() failed
        raise InvalidValueError(
            f"metric {key!r}: reading the {type(value).__name__} failed:"
            f" {type(error).__name__}: {error}",
            key=key,
            value=value,
        ) from error
    if item is not None:
        return coerce_metric(key, item)
    if hasattr(type(value), "__float__") and not isinstance(value, complex):
        try:
            return encode_float(float(value))  # type: ignore[arg-type]
        except Exception as error:
            raise InvalidValueError(
                f"metric {key!r}: float() of {type(value).__name__} failed: {error}",
                key=key,
                value=value,
            ) from error
    raise _not_a_number(key, value)


def _stored_int(value: int, what: str, key: str) -> int | dict[str, Any]:
    """An int as stored; one too long to write in decimal is refused, not raised as ValueError."""
    try:
        return encode_int(value)
    except ValueError as error:  # beyond sys.get_int_max_str_digits()
        raise InvalidValueError(
            f"{what}: an integer too long to write in decimal ({short_repr(value)})"
            f" cannot be stored: {error}",
            key=key,
            value=value,
        ) from None


def _not_a_number(key: str, value: object) -> InvalidValueError:
    return InvalidValueError(
        f"metric {key!r}: {type(value).__name__} {short_repr(value)} is not a number;"
        " log int, float, bool, a NumPy or torch scalar, or anything with __float__"
        " (strings belong in log_params, tag or note)",
        key=key,
        value=value,
    )


def _array_item(key: str, value: object) -> object | None:
    """The Python scalar inside a NumPy/torch scalar or 0-d array; None if not one.

    Duck-typed on ``shape`` and ``item`` so that neither NumPy nor torch is imported.
    """
    shape = getattr(value, "shape", None)
    item = getattr(value, "item", None)
    if shape is None or not callable(item):
        return None
    if tuple(shape) != ():
        raise InvalidValueError(
            f"metric {key!r}: an array of shape {tuple(shape)} is not a single number;"
            " log one value per key (or call .item() on a one-element array)",
            key=key,
            value=value,
        )
    scalar: object = item()
    if isinstance(scalar, complex) or _dtype_kind(value) == "c":
        raise _not_a_number(key, value)
    if type(scalar) is type(value):
        # item() gave the same object back (np.longdouble has no exact Python
        # type): take its float, as for anything else with __float__.
        return float(scalar)  # type: ignore[arg-type]
    return scalar


def _dtype_kind(value: object) -> str | None:
    """The NumPy dtype kind of ``value`` (``"f"``, ``"c"``, ...), None if it has none."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return kind if isinstance(kind, str) else None


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` for a message: cut to ``limit`` characters, and never raising.

    Example:
        >>> short_repr("x" * 100, 10), short_repr(10**5000)
        ("'xxxxxx...", '<int of about 5000 digits>')
    """
    try:
        text = repr(value)
    except Exception:  # a __repr__ that raises, an int too long to print
        if isinstance(value, int):
            return f"<int of about {round(value.bit_length() * 0.30103, -1):.0f} digits>"
        return f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def coerce_params(params: object) -> dict[str, Any]:
    """Coerce a params mapping to its stored JSON form, recursively.

    Raises:
        InvalidNameError: a key is not a non-empty string (int, float and bool
            keys are turned into strings, as JSON requires).
        InvalidValueError: a value has no JSON form, a container holds itself,
            or nesting is deeper than :data:`MAX_PARAM_DEPTH`; the message names
            the dotted path of the offending value.

    Example:
        >>> import pathlib
        >>> coerce_params({"data": {"dir": pathlib.Path("/d"), "splits": {"b", "a"}}})
        {'data': {'dir': '/d', 'splits': ['a', 'b']}}
    """
    with _user_code_fails_as_invalid_value("params", params):
        mapping = _as_mapping(params)
        if mapping is None:
            raise InvalidValueError(
                f"log_params() takes a mapping, a dataclass, a pydantic model or an"
                f" argparse.Namespace, not a {type(params).__name__}",
                key="",
                value=params,
            )
        return _coerce_mapping(mapping, path="", active=set(), depth=0)


@contextlib.contextmanager
def _user_code_fails_as_invalid_value(key: str, value: object) -> Iterator[None]:
    """Turn an exception of the user's own code into :class:`InvalidValueError`.

    Coercion calls the user's ``items()``, ``__hash__``, ``__repr__``,
    ``model_dump()``, ``tolist()`` and the like; whatever they raise (or a
    recursion that never ends) must reach the run as a value that cannot be
    logged, not as an exception in the training loop.
    """
    try:
        yield
    except (InvalidNameError, InvalidValueError):
        raise
    except Exception as error:
        raise InvalidValueError(
            f"param {key!r}: reading the {type(value).__name__} failed:"
            f" {type(error).__name__}: {error}",
            key=key,
            value=value,
        ) from error


def coerce_params_each(params: object) -> tuple[dict[str, Any], list[Exception]]:
    """Coerce params key by key, so that one bad value does not lose the others.

    Returns:
        The storable params, and one exception per refused top-level key.

    Raises:
        InvalidValueError: ``params`` is not dict-like at all.

    Example:
        >>> clean, problems = coerce_params_each({"lr": 0.1, "fn": print})
        >>> clean, [type(p).__name__ for p in problems]
        ({'lr': 0.1}, ['InvalidValueError'])
    """
    with _user_code_fails_as_invalid_value("params", params):
        mapping = _as_mapping(params)
        if mapping is None:
            coerce_params(params)  # raises the error that says what is accepted
            return {}, []
        items = list(mapping.items())
    clean: dict[str, Any] = {}
    problems: list[Exception] = []
    for key, value in items:
        try:
            clean.update(coerce_params({key: value}))
        except (InvalidNameError, InvalidValueError) as problem:
            problems.append(problem)
    return clean, problems


def _as_mapping(value: object) -> Mapping[Any, Any] | None:
    """The mapping form of a dict-like param value, or None if it is not dict-like."""
    if isinstance(value, Mapping):
        return value
    argparse = sys.modules.get("argparse")  # no Namespace can exist before it is imported
    if argparse is not None and isinstance(value, argparse.Namespace):
        namespace: dict[str, Any] = vars(value)
        return namespace
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        result = dump()
        return result if isinstance(result, Mapping) else None
    return None


def _coerce_mapping(
    mapping: Mapping[Any, Any], *, path: str, active: set[int], depth: int
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in mapping.items():
        name = _param_key(key, path)
        if name in result:
            raise InvalidNameError(
                f"param keys {key!r} and {name!r} in {path or 'params'!r} both become"
                f" {name!r} in JSON; rename one",
                name=key,
                kind="param",
            )
        child = f"{path}.{name}" if path else name
        result[name] = _coerce_param(value, path=child, active=active, depth=depth + 1)
    return result


def _param_key(key: object, path: str) -> str:
    where = f" in {path!r}" if path else ""
    try:
        if isinstance(key, (int, float)) and not isinstance(key, enum.Enum):
            key = str(key)
        if isinstance(key, enum.Enum):
            key = str(key.value)
    except ValueError as error:  # an int too long to write in decimal
        raise InvalidNameError(
            f"param key of type {type(key).__name__}{where} cannot be a name: {error}",
            name=key,
            kind="param",
        ) from None
    try:
        return check_name(key, "param")
    except InvalidNameError as error:
        raise InvalidNameError(f"{error}{where}", name=error.name, kind="param") from None


def _coerce_param(value: object, *, path: str, active: set[int], depth: int) -> Any:
    if value is None or type(value) is bool:
        return value
    if type(value) is str:
        return check_text(value, f"param {path!r}:", key=path)
    if isinstance(value, enum.Enum):
        return _coerce_param(value.value, path=path, active=active, depth=depth)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        # a str subclass as the plain string, not its __str__
        return check_text(str.__str__(value), f"param {path!r}:", key=path)
    if isinstance(value, int):
        return _stored_int(int(value), f"param {path!r}", path)
    if isinstance(value, float):
        return encode_float(float(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if depth > MAX_PARAM_DEPTH:
        raise InvalidValueError(
            f"param {path!r} nests deeper than {MAX_PARAM_DEPTH} levels", key=path, value=value
        )
    return _coerce_container(value, path=path, active=active, depth=depth)


def _coerce_container(value: object, *, path: str, active: set[int], depth: int) -> Any:
    if id(value) in active:
        raise InvalidValueError(
            f"param {path!r} contains itself (a reference cycle)", key=path, value=value
        )
    active.add(id(value))
    try:
        mapping = _as_mapping(value)
        if mapping is not None:
            return wrap_dict(_coerce_mapping(mapping, path=path, active=active, depth=depth))
        items = _as_sequence(value)
        if items is not None:
            return [
                _coerce_param(item, path=f"{path}[{index}]", active=active, depth=depth + 1)
                for index, item in enumerate(items)
            ]
    finally:
        active.discard(id(value))
    scalar = _array_param(value)
    if scalar is not _NOT_ARRAY:
        return _coerce_param(scalar, path=path, active=active, depth=depth)
    raise InvalidValueError(
        f"param {path!r}: a {type(value).__name__} has no JSON form; use str, numbers, None,"
        " lists, dicts, Path, Enum, dataclasses, pydantic models or argparse.Namespace",
        key=path,
        value=value,
    )


def _as_sequence(value: object) -> list[Any] | None:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return sorted(value, key=repr)
    return None


_NOT_ARRAY = object()


def _array_param(value: object) -> object:
    """A NumPy/torch value as Python scalars or nested lists, found by duck typing."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and hasattr(value, "shape"):
        result = tolist()
        if type(result) is type(value):
            # tolist() gave the same object back (np.longdouble, np.clongdouble):
            # a real float is kept as its float, anything else has no JSON form.
            if _dtype_kind(value) == "f":
                return float(result)  # type: ignore[arg-type]
            return _NOT_ARRAY
        return result
    return _NOT_ARRAY


def merge_params(tree: dict[str, Any], changes: Mapping[str, Any]) -> None:
    """Merge one params record into ``tree`` in place, as readers and writers both do.

    Objects merge key by key, recursively; any other value replaces what was
    there. Tagged values (``{"$float": "nan"}``) are leaves.

    Example:
        >>> tree = {"lr": 0.1, "model": {"depth": 50}}
        >>> merge_params(tree, {"model": {"width": 64}})
        >>> tree
        {'lr': 0.1, 'model': {'depth': 50, 'width': 64}}
    """
    for key, value in changes.items():
        old = tree.get(key)
        if isinstance(old, dict) and is_param_branch(value) and is_param_branch(old):
            merge_params(old, value)
        else:
            tree[key] = value


def is_param_branch(value: object) -> bool:
    """Whether a stored param value is an object of further params (not a leaf or a tag)."""
    return isinstance(value, dict) and not is_tagged(value)


def diff_params(
    tree: Mapping[str, Any], new: Mapping[str, Any], prefix: str = ""
) -> tuple[dict[str, Any], list[tuple[str, Any, Any]]]:
    """What ``new`` changes in ``tree`` (both in stored form).

    Returns:
        The new or changed leaves, nested as in ``new`` (empty when nothing
        changes), and ``(dotted name, old, new)`` for each leaf whose value changed.

    Example:
        >>> diff_params({"lr": 0.1, "bs": 32}, {"lr": 0.2, "bs": 32, "seed": 1})
        ({'lr': 0.2, 'seed': 1}, [('lr', 0.1, 0.2)])
    """
    changes: dict[str, Any] = {}
    changed: list[tuple[str, Any, Any]] = []
    for key, value in new.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in tree:
            changes[key] = value
            continue
        old = tree[key]
        if is_param_branch(value) and is_param_branch(old):
            sub_changes, sub_changed = diff_params(old, value, path)
            if sub_changes:
                changes[key] = sub_changes
                changed += sub_changed
        elif not _same_stored(old, value):
            changes[key] = value
            changed.append((path, old, value))
    return changes, changed


def _same_stored(left: object, right: object) -> bool:
    """Equality of stored values that tells 1 from 1.0 and True (as JSON does)."""
    options = orjson.OPT_SORT_KEYS
    return orjson.dumps(left, option=options) == orjson.dumps(right, option=options)
