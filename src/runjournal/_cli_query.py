"""The query options of ``runjournal ls`` and the ``runjournal export`` command.

``ls --where EXPR --since T --until T`` filter the listed runs the way
:meth:`Store.runs` does (``docs/query.md``); ``export --format parquet|csv
DEST`` writes the run table, the params and the metric history to files that
pandas, Polars, DuckDB or Spark read directly.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_query_options(parser)
    >>> args = parser.parse_args(["--where", "params.lr > 0.1", "--since", "7d"])
    >>> args.where, args.since, args.cache
    ('params.lr > 0.1', '7d', True)
"""

from __future__ import annotations

import argparse

from runjournal._terminal import safe
from runjournal.query import Store
from runjournal.query._engines import export
from runjournal.query._select import RunQuery
from runjournal.query._view import RunView

__all__ = ["add_export", "add_query_options", "export_output", "listed_views"]


def add_query_options(parser: argparse.ArgumentParser) -> None:
    """``--where``, ``--since``, ``--until`` and ``--no-cache``."""
    parser.add_argument(
        "--where",
        "-w",
        metavar="EXPR",
        help='only runs this filter expression keeps, e.g. "params.lr >= 0.01 and'
        " metrics.val_loss < 0.3 and tags.model = 'resnet'\" (see docs/query.md)",
    )
    parser.add_argument(
        "--since",
        metavar="TIME",
        help="only runs started at or after TIME: 2026-11-23, 2026-11-23T14:00, or 30m, 12h,"
        " 7d (ago)",
    )
    parser.add_argument("--until", metavar="TIME", help="only runs started before TIME")
    parser.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        help="read every run file from its start instead of using the query cache",
    )


def listed_views(
    store: Store,
    args: argparse.Namespace,
    *,
    sort: str | None,
    limit: int | None,
    metrics: bool,
) -> list[RunView]:
    """The runs ``ls`` shows, in its order, as views (records are built for --json only).

    Raises:
        FilterError: ``--where`` does not parse.
        InvalidArgumentError: a bad ``--since``/``--until``.
    """
    query = RunQuery.build(
        args.experiment,
        args.status,
        None,
        args.where,
        since=args.since,
        until=args.until,
        sort=sort,
        limit=limit,
    )
    return store._views(query, cache=args.cache, metrics=metrics)


def add_export(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``runjournal export``."""
    parser.description = (
        "Write the run table, the params and the metric history of the store to"
        " DEST/runs.<ext>, DEST/params.<ext> and DEST/metrics.<ext>."
    )
    parser.add_argument("destination", metavar="DEST", help="the directory to write into")
    parser.add_argument(
        "--format",
        "-f",
        choices=("parquet", "csv"),
        default="parquet",
        help="parquet (default; needs runjournal[parquet]) or csv (needs pandas)",
    )
    parser.add_argument("--where", "-w", metavar="EXPR", help="only the runs this filter keeps")
    parser.add_argument(
        "--no-cache", dest="cache", action="store_false", help="do not use the query cache"
    )
    parser.set_defaults(handler=export_output)


def export_output(store: Store, args: argparse.Namespace) -> str:
    """Run ``export`` and say what was written."""
    written = export(
        store, args.destination, format=args.format, where=args.where, cache=args.cache
    )
    return "\n".join(f"wrote {safe(str(path))}" for path in written)
