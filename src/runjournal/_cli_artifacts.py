"""The ``artifacts``, ``get`` and ``gc`` commands: a thin layer over the artifact readers."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from runjournal._terminal import safe, table
from runjournal.query import Store
from runjournal.query._artifacts import latest_artifacts

__all__ = ["add_artifacts", "add_gc", "add_get"]


def add_artifacts(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``runjournal artifacts``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_artifacts(parser)
        >>> parser.parse_args(["brisk-heron-7", "--json"]).json
        True
    """
    parser.description = "List the artifacts of a run: the latest of each name."
    parser.add_argument("ref", metavar="REF", help="run id, id prefix or name")
    parser.add_argument("--json", action="store_true", help="print every record as JSON")
    parser.set_defaults(handler=_artifacts)


def add_get(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``runjournal get``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_get(parser)
        >>> parser.parse_args(["r1", "model.pt", "-o", "m.pt"]).output
        'm.pt'
    """
    parser.description = (
        "Copy an artifact out of the store (a directory artifact is rebuilt);"
        " an existing output path is never overwritten."
    )
    parser.add_argument("ref", metavar="REF", help="run id, id prefix or name")
    parser.add_argument("name", metavar="NAME", help="the artifact name")
    parser.add_argument(
        "-o", "--output", metavar="PATH", help="where to write it (default: its base name, here)"
    )
    parser.set_defaults(handler=_get)


def add_gc(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``runjournal gc``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_gc(parser)
        >>> parser.parse_args(["--yes"]).yes
        True
    """
    parser.description = (
        "Remove blobs no run refers to, and temporary files left by killed processes."
        " A dry run unless --yes; blobs and temporary files younger than an hour are kept."
    )
    parser.add_argument("--yes", action="store_true", help="delete (default: only list)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_gc)


def _artifacts(store: Store, args: argparse.Namespace) -> str:
    record = store.run(args.ref)
    latest = latest_artifacts(record.artifacts)
    if args.json:
        documents = [artifact.model_dump(mode="json") for artifact in latest.values()]
        return orjson.dumps(documents, option=orjson.OPT_INDENT_2).decode()
    if not latest:
        return f"run {record.id} ({safe(record.name)}) has no artifacts"
    rows = [
        [
            safe(a.name),
            a.kind or "",
            str(a.size if a.size is not None else ""),
            a.media_type or "",
            f"{a.algo}:{(a.hash or '')[:16]}",
            "stored" if a.stored else f"not copied: {safe(a.path or '')}",
        ]
        for a in latest.values()
    ]
    header = ["name", "kind", "bytes", "type", "hash", "where"]
    return f"run {record.id} ({safe(record.name)})\n" + table(rows, header=header)


def _get(store: Store, args: argparse.Namespace) -> str:
    target = Path(args.output) if args.output else Path(Path(args.name).name)
    written = store.get_artifact(args.ref, args.name, target)
    return f"wrote {safe(str(written))}"


def _gc(store: Store, args: argparse.Namespace) -> str:
    from runjournal._gc import collect_garbage

    report = collect_garbage(store.path, delete=args.yes)
    if args.json:
        document = {
            "deleted": report.deleted,
            "files": [{"path": path, "bytes": size} for path, size in report.files],
            "bytes": report.bytes,
            "referenced": report.referenced,
            "kept_recent": report.kept_recent,
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    verb = "deleted" if report.deleted else "would delete"
    lines = [f"{verb}: {safe(path)} ({size} bytes)" for path, size in report.files]
    lines.append(
        f"{verb} {len(report.files)} files, {report.bytes} bytes; kept {report.referenced}"
        f" referenced and {report.kept_recent} recent blobs"
        + ("" if report.deleted or not report.files else " (run with --yes to delete)")
    )
    return "\n".join(lines)
