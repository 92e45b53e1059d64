"""The ``doctor`` command of the command line: a thin layer over :mod:`runjournal.doctor`.

Exit code 0 when the store has no problem (after the fix, with ``--fix``),
1 when problems remain; ``--json`` prints the reports as JSON.
"""

from __future__ import annotations

import argparse

import orjson

from runjournal._terminal import safe, table
from runjournal.doctor import DoctorReport, FixReport, check_store, fix_store
from runjournal.query import Store

__all__ = ["add_doctor"]

_SHOWN = 200
"""Problems listed at most in the text output (``--json`` has them all)."""


def add_doctor(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``runjournal doctor``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_doctor(parser)
        >>> parser.parse_args(["--fix"]).fix
        True
    """
    parser.description = (
        "Check every file of the store for damage (torn or undecodable lines, broken"
        " write-once files, runs without a start, newer formats, left-over temporary"
        " files, content that does not match its hash); with --fix, move the damaged"
        " bits aside into <store>/quarantine/ without removing any valid record."
        " Exit code 1 when problems remain."
    )
    parser.add_argument(
        "--fix", action="store_true", help="move fixable problems aside into the quarantine"
    )
    parser.add_argument(
        "--temp-age",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="age after which a .tmp- file is left over, not being written (default 3600)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_doctor)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}")
    return value


def _doctor(store: Store, args: argparse.Namespace) -> tuple[str, int]:
    if args.fix:
        fixed = fix_store(store.path, temp_age=args.temp_age)
        report = fixed.after
        if args.json:
            return _json(fixed.to_dict()), int(not report.ok)
        return f"{_fix_text(fixed)}\n{_report_text(report, after_fix=True)}", int(not report.ok)
    report = check_store(store.path, temp_age=args.temp_age)
    if args.json:
        return _json(report.to_dict()), int(not report.ok)
    return _report_text(report, after_fix=False), int(not report.ok)


def _json(data: object) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def _report_text(report: DoctorReport, *, after_fix: bool) -> str:
    checked = (
        f"store {safe(str(report.store))}: {report.runs} runs, {report.files} files,"
        f" {report.lines} lines checked"
    )
    if report.ok:
        return f"{checked}: no problems"
    rows = [
        [
            safe(f"{problem.path}:{problem.line}" if problem.line else problem.path),
            problem.kind,
            "fixable" if problem.fixable else "-",
            safe(problem.message),
        ]
        for problem in report.problems[:_SHOWN]
    ]
    lines = [f"{checked}: {_count(len(report.problems), 'problem')}", table(rows)]
    if len(report.problems) > _SHOWN:
        lines.append(f"... and {len(report.problems) - _SHOWN} more (see --json)")
    fixable = len(report.fixable)
    if fixable and not after_fix:
        lines.append(f"{fixable} can be moved aside with `runjournal doctor --fix`")
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _fix_text(fixed: FixReport) -> str:
    if fixed.quarantine is None:
        return "nothing to move aside"
    text = (
        f"moved {_count(len(fixed.moved), 'problem')} aside into {safe(str(fixed.quarantine))}"
        f" ({_count(fixed.removed_lines, 'damaged line')} removed,"
        f" {_count(fixed.kept_lines, 'line')} kept)"
    )
    if fixed.skipped:
        text += f"; {len(fixed.skipped)} left alone because their file changed meanwhile"
    return text
