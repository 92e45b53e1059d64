"""The ``diff``, ``verify-data`` and ``show --reproduce`` commands of the command line.

Each handler calls one library function (:func:`runjournal.compare.diff`,
:func:`runjournal.reproduce.verify_data`, :func:`runjournal.reproduce.reproduce`)
and only formats what it returns; ``--json`` prints the returned model in
the tagged JSON of ``runjournal ls --json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runjournal._terminal import safe
from runjournal.errors import InvalidArgumentError
from runjournal.query import Store
from runjournal.query._json import dumps_tagged

__all__ = ["add_diff", "add_reproduce_options", "add_verify_data", "reproduce_output"]

_RUN_HELP = "a run id, a unique id prefix or a run name"


def add_diff(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``runjournal diff A B``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_diff(parser)
        >>> parser.parse_args(["r1", "r2", "--patch"]).patch
        True
    """
    parser.description = (
        "Show what differs between two runs: params, last metrics, code, data,"
        " packages, platform, command line and environment variables."
    )
    parser.add_argument("a", metavar="A", help=_RUN_HELP)
    parser.add_argument("b", metavar="B", help=_RUN_HELP)
    parser.add_argument(
        "--patch", action="store_true", help="also show how the uncommitted changes differ"
    )
    parser.add_argument("--json", action="store_true", help="print the differences as JSON")
    parser.set_defaults(handler=_diff)


def add_verify_data(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``runjournal verify-data RUN``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_verify_data(parser)
        >>> parser.parse_args(["r1", "--role", "input"]).role
        'input'
    """
    parser.description = (
        "Hash the data a run recorded again and say which no longer matches;"
        " exit code 1 when any changed, is missing or cannot be hashed."
    )
    parser.add_argument("ref", metavar="RUN", help=_RUN_HELP)
    parser.add_argument("--role", metavar="ROLE", help="only data of this role (e.g. input)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(handler=_verify_data)


def add_reproduce_options(parser: argparse.ArgumentParser) -> None:
    """The ``--reproduce`` and ``--requirements`` options of ``runjournal show``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_reproduce_options(parser)
        >>> parser.parse_args(["--requirements", "req.txt"]).requirements
        'req.txt'
    """
    parser.add_argument(
        "--reproduce",
        action="store_true",
        help="print the recipe to run it again: checkout, patch, packages, data, command",
    )
    parser.add_argument(
        "--requirements",
        metavar="FILE",
        help="with --reproduce: write the package pins to FILE as name==version lines",
    )


def reproduce_output(store: Store, args: argparse.Namespace) -> str:
    """The text (or JSON) of ``runjournal show RUN --reproduce``; writes the requirements file.

    Raises:
        InvalidArgumentError: ``--requirements`` for a run that recorded no
            packages, or a file that cannot be written.
    """
    from runjournal.reproduce import reproduce

    recipe = reproduce(store.run(args.ref))
    written = None
    if args.requirements:
        if recipe.packages is None:
            raise InvalidArgumentError(
                f"run {recipe.run.id} recorded no packages: there is nothing to write"
                f" to {args.requirements}",
                argument="--requirements",
                value=args.requirements,
            )
        written = _write_requirements(Path(args.requirements), recipe.requirements())
        print(
            f"runjournal: wrote {len(recipe.packages)} package pins to {safe(written)}",
            file=sys.stderr,
        )
    if args.json:
        return dumps_tagged(recipe.model_dump())
    return recipe.to_text(written)


def _write_requirements(path: Path, text: str) -> str:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InvalidArgumentError(
            f"cannot write {path}: {error.strerror or error}",
            argument="--requirements",
            value=str(path),
        ) from error
    return str(path)


def _diff(store: Store, args: argparse.Namespace) -> str:
    from runjournal.compare import diff

    result = diff(store.run(args.a), store.run(args.b), patch=args.patch)
    if args.json:
        return dumps_tagged(result.model_dump())
    return result.to_text()


def _verify_data(store: Store, args: argparse.Namespace) -> tuple[str, int]:
    from runjournal.reproduce import verify_data

    result = verify_data(store.run(args.ref), role=args.role)
    text = dumps_tagged(result.model_dump()) if args.json else result.to_text()
    return text, 0 if result.ok else 1
