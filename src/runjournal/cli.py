"""The ``runjournal`` command line, a thin layer over :mod:`runjournal.query`.

Commands: ``ls`` lists runs, ``show`` prints everything about one run (or,
with ``--reproduce``, the recipe to run it again), ``close`` records the end
of a run that died without one, ``diff`` shows what differs between two runs,
``verify-data`` checks that a run's data is unchanged and ``export`` writes
runs and metric history to Parquet or CSV; ``logs`` prints a run's
console output and ``tail`` follows its metrics while it runs. ``docs/cli.md``
describes each with examples. Problems the user can fix are printed as
``runjournal: error: <message>`` with exit code 1; a wrong command line exits
with code 2; output cut short by a closed pipe (``runjournal ls | head``)
ends quietly with code 1.

Example:
    >>> from runjournal.cli import main
    >>> main(["--store", "no-such-store", "ls"])
    1
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Sequence

from runjournal import _cli_artifacts, _cli_compare, _cli_doctor, _cli_follow, _cli_query
from runjournal._terminal import (
    format_duration,
    format_number,
    format_time,
    safe,
    table,
    truncate,
)
from runjournal._version import __version__
from runjournal.errors import FilterError, RunjournalError, RunjournalWarning
from runjournal.format import Status
from runjournal.query import STATUSES, Store
from runjournal.query._json import dumps_tagged
from runjournal.query._view import RunView

__all__ = ["build_parser", "main"]

_SORT_COLUMNS = ("start", "name", "status", "duration", "experiment", "id")
_SORT_PREFIXES = ("metrics.", "params.", "tags.")
_LS_METRIC_COLUMNS = 3
_NAME_WIDTH, _EXPERIMENT_WIDTH, _METRIC_WIDTH = 32, 24, 20

Handler = Callable[[Store, argparse.Namespace], str | tuple[str, int]]
"""A command: its output, or its output and exit code."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Example:
        >>> main(["--version"])  # doctest: +ELLIPSIS
        runjournal ...
        0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    _replace_unencodable_output()
    handler: Handler = args.handler
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunjournalWarning)
        try:
            result = handler(Store(args.store), args)
        except RunjournalError as error:
            _report_warnings(caught)
            multiline = isinstance(error, FilterError)  # the expression, and a caret under it
            print(
                f"runjournal: error: {safe(str(error), keep_newlines=multiline)}", file=sys.stderr
            )
            return 1
        except KeyboardInterrupt:
            return 130
    _report_warnings(caught)
    output, code = result if isinstance(result, tuple) else (result, 0)
    return _write(output) or code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``runjournal``, one subparser per command.

    Example:
        >>> build_parser().parse_args(["ls", "--limit", "5"]).limit
        5
    """
    parser = argparse.ArgumentParser(
        prog="runjournal",
        description="Look at the runs of a runjournal store.",
        epilog="See docs/cli.md for every command with examples.",
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="the store (default: $RUNJOURNAL_STORE, else the nearest .runjournal directory)",
    )
    parser.add_argument("--version", action="version", version=f"runjournal {__version__}")
    # --store is accepted after the command too; SUPPRESS keeps a value given before it.
    store_option = argparse.ArgumentParser(add_help=False)
    store_option.add_argument("--store", metavar="PATH", default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_ls(commands.add_parser("ls", parents=[store_option], help="list runs, newest first"))
    _add_show(commands.add_parser("show", parents=[store_option], help="everything about a run"))
    _add_close(
        commands.add_parser("close", parents=[store_option], help="record the end of a dead run")
    )
    _cli_compare.add_diff(
        commands.add_parser("diff", parents=[store_option], help="what differs between two runs")
    )
    _cli_compare.add_verify_data(
        commands.add_parser(
            "verify-data", parents=[store_option], help="check that a run's data is unchanged"
        )
    )
    _cli_doctor.add_doctor(
        commands.add_parser(
            "doctor", parents=[store_option], help="find damage in the store; --fix moves it aside"
        )
    )
    _cli_query.add_export(
        commands.add_parser(
            "export", parents=[store_option], help="write runs and history to Parquet or CSV"
        )
    )
    _cli_artifacts.add_artifacts(
        commands.add_parser("artifacts", parents=[store_option], help="list a run's artifacts")
    )
    _cli_artifacts.add_get(
        commands.add_parser("get", parents=[store_option], help="copy an artifact out of the store")
    )
    _cli_artifacts.add_gc(
        commands.add_parser("gc", parents=[store_option], help="remove blobs no run refers to")
    )
    _cli_follow.add_logs(
        commands.add_parser("logs", parents=[store_option], help="print console output; -f follows")
    )
    _cli_follow.add_tail(
        commands.add_parser("tail", parents=[store_option], help="follow a running run's metrics")
    )
    return parser


def _add_ls(parser: argparse.ArgumentParser) -> None:
    parser.description = "List runs in a table, newest first, with a few of their last metrics."
    parser.add_argument("--experiment", "-e", metavar="NAME", help="only runs of this experiment")
    parser.add_argument(
        "--status",
        "-s",
        type=_statuses,
        metavar="STATUS[,STATUS...]",
        help=f"only runs with one of these statuses ({', '.join(sorted(STATUSES))})",
    )
    parser.add_argument("--limit", "-n", type=_positive_int, metavar="N", help="at most N runs")
    parser.add_argument(
        "--sort",
        type=_sort_column,
        default="start",
        metavar="KEY",
        help="start (default, newest first), name, status, duration, experiment, id,"
        " metrics.<name>, params.<name> or tags.<name> (ascending); missing values last",
    )
    parser.add_argument("--reverse", "-r", action="store_true", help="reverse the order")
    _cli_query.add_query_options(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON array of run records")
    parser.set_defaults(handler=_ls)


def _add_show(parser: argparse.ArgumentParser) -> None:
    parser.description = "Print everything about one run."
    parser.add_argument("ref", metavar="RUN", help="a run id, a unique id prefix or a run name")
    parser.add_argument("--json", action="store_true", help="print the run record as JSON")
    _cli_compare.add_reproduce_options(parser)
    parser.set_defaults(handler=_show)


def _add_close(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Append an end event to a run that died without one (killed by SIGKILL, the"
        " out-of-memory killer or a lost node), so that it stops looking stale."
    )
    parser.add_argument("ref", metavar="RUN", help="a run id, a unique id prefix or a run name")
    parser.add_argument(
        "--status",
        choices=sorted(Status.RECORDED),
        default=Status.CRASHED,
        help="the status to record (default: crashed)",
    )
    parser.add_argument("--json", action="store_true", help="print the closed run as JSON")
    parser.set_defaults(handler=_close)


def _statuses(text: str) -> list[str]:
    statuses = [status.strip() for status in text.split(",") if status.strip()]
    unknown = [status for status in statuses if status not in STATUSES]
    if unknown or not statuses:
        raise argparse.ArgumentTypeError(
            f"unknown status {', '.join(unknown) or text!r}: use {', '.join(sorted(STATUSES))}"
        )
    return statuses


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return number


def _sort_column(text: str) -> str:
    if text in _SORT_COLUMNS or (text.startswith(_SORT_PREFIXES) and "." in text[:-1]):
        return text
    raise argparse.ArgumentTypeError(
        f"cannot sort by {text!r}: use {', '.join(_SORT_COLUMNS)},"
        " metrics.<name>, params.<name> or tags.<name>"
    )


# ----------------------------------------------------------------- commands


def _ls(store: Store, args: argparse.Namespace) -> str:
    column = "start_time" if args.sort == "start" else args.sort
    descending = (args.sort == "start") != args.reverse  # newest first by default
    sort = f"-{column}" if descending else column
    records = _cli_query.listed_views(store, args, sort=sort, limit=args.limit, metrics=True)
    if args.json:
        # Without the environment: a few hundred packages per run is for `show --json`.
        dumped = [view.record().model_dump(exclude={"environment"}) for view in records]
        return dumps_tagged(dumped)
    if not records:
        return f"no runs in {store.path}"
    keys = _common_metric_keys(records)
    header = ["id", "name", "experiment", "status", "start", "duration"]
    header += [truncate(safe(key), _METRIC_WIDTH) for key in keys]
    rows = [_ls_row(record, keys) for record in records]
    return table(rows, header=header, numeric=len(keys) + 1)


def _ls_row(record: RunView, keys: list[str]) -> list[str]:
    metrics = record.metrics
    return [
        record.id,
        truncate(safe(record.name), _NAME_WIDTH),
        truncate(safe(record.experiment or "-"), _EXPERIMENT_WIDTH),
        safe(record.status),
        format_time(record.start_time),
        format_duration(record.duration),
        *(format_number(metrics.get(key)) for key in keys),
    ]


def _common_metric_keys(records: list[RunView]) -> list[str]:
    """The metric keys most runs have, at most a few, most common first."""
    counts = Counter(key for record in records for key in record.metrics)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [key for key, _ in ranked[:_LS_METRIC_COLUMNS]]


def _show(store: Store, args: argparse.Namespace) -> str:
    if args.reproduce or args.requirements:
        return _cli_compare.reproduce_output(store, args)
    record = store.run(args.ref)
    if args.json:
        return dumps_tagged(record.model_dump())
    from runjournal._show import render_run

    return render_run(record)


def _close(store: Store, args: argparse.Namespace) -> str:
    record = store.close(args.ref, status=args.status)
    if args.json:
        return dumps_tagged(record.model_dump())
    return f"closed run {record.id} ({safe(record.name)}) as {safe(record.status)}"


# ------------------------------------------------------------------ output


def _write(text: str) -> int:
    if not text:
        return 0  # a command that streamed its output itself (logs, tail)
    try:
        sys.stdout.write(text if text.endswith("\n") else f"{text}\n")
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        return 1
    return 0


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail again."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _replace_unencodable_output() -> None:
    """Print characters the terminal's encoding lacks as ``?`` instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            with contextlib.suppress(Exception):
                reconfigure(errors="replace")


def _report_warnings(caught: list[warnings.WarningMessage]) -> None:
    for warning in caught:
        if issubclass(warning.category, RunjournalWarning):
            print(f"runjournal: warning: {safe(str(warning.message))}", file=sys.stderr)
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
