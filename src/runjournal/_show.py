"""The text of ``runjournal show``: one run, section by section.

Every stored string is made safe for the terminal; numbers are printed
exactly (``repr``), since this is where a user checks a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runjournal._recipe_text import command_line
from runjournal._terminal import format_duration, format_time, format_value, safe, table, truncate
from runjournal.query import RunRecord

__all__ = ["render_run"]

_VALUE_WIDTH = 200
_DIGEST_WIDTH = 23  # sha256: and 16 hex digits: enough to tell hashes apart at a glance
_INDENT = "  "


def render_run(record: RunRecord) -> str:
    r"""Everything about one run as text: header, params, metrics, tags, notes, alerts, problems.

    Example:
        >>> import datetime as dt
        >>> record = RunRecord(id="r1", name="demo", status="completed", params={"lr": 0.1},
        ...                    start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        >>> print(render_run(record).split("\n\n")[1])
        params
          lr  0.1
    """
    # Read the metrics and captured files first, so the header counts their problems too.
    _ = record.summary, record.environment, record.git, record.data
    sections: list[Callable[[RunRecord], str | None]] = [
        _header,
        _params,
        _metrics,
        _data,
        _tags,
        _notes,
        _alerts,
        _errors,
        _skipped,
        _exception,
    ]
    return "\n\n".join(text for section in sections if (text := section(record)))


def _header(record: RunRecord) -> str:
    error_count = sum(error.count for error in record.errors)
    process = " ".join(
        part
        for part in (
            safe(record.host or "-"),
            f"pid {record.pid}" if record.pid is not None else "",
            f"job {safe(record.job_id)}" if record.job_id else "",
        )
        if part
    )
    rows = [
        ["run", record.id],
        ["name", safe(record.name) or "-"],
        ["experiment", safe(record.experiment or "-")],
        ["status", safe(record.status)],
        ["host", process],
        ["start", format_time(record.start_time, seconds=True)],
        ["end", format_time(record.end_time, seconds=True)],
        ["duration", format_duration(record.duration)],
        ["segments", str(record.segments)],
        *_code_rows(record),
        ["logging errors", f"{error_count} (see below)" if error_count else "0"],
    ]
    if record.alerts:
        rows.insert(-1, ["alerts", f"{len(record.alerts)} (see below)"])
    if record.skipped:
        rows.append(["problems", f"{len(record.skipped)} (see below)"])
    return table(rows)


def _code_rows(record: RunRecord) -> list[list[str]]:
    """``git`` and ``command`` rows, for a run that recorded them."""
    rows = []
    git = record.git
    if git is not None:
        if git.commit:
            state = "dirty" if git.dirty else "clean" if git.dirty is not None else ""
            where = safe(git.branch) if git.branch else "detached"
            rows.append(["git", " ".join(p for p in (git.commit[:12], where, state) if p)])
        else:
            rows.append(["git", safe(git.status or "-")])
    line = command_line(record.command)
    if line is not None:
        rows.append(["command", truncate(line, _VALUE_WIDTH)])
    return rows


def _data(record: RunRecord) -> str | None:
    if not record.data:
        return None
    rows = [
        [
            safe(data.name),
            safe(data.role or "-"),
            safe(data.digest or "-")[:_DIGEST_WIDTH],
            safe(data.path or data.kind or "-"),
        ]
        for data in record.data_by_name.values()
    ]
    return _section("data", table(rows, header=["name", "role", "hash", "path"]))


def _params(record: RunRecord) -> str | None:
    flat = record.flat_params
    if not flat:
        return None
    return _section("params", table(_key_value_rows(flat)))


def _metrics(record: RunRecord) -> str | None:
    if not record.summary:
        return None
    header = ["metric", "last", "step", "min", "step", "max", "step", "count"]
    rows = [
        [
            safe(key),
            format_value(summary.last),
            str(summary.last_step),
            format_value(summary.min) if summary.min_step is not None else "-",
            _step(summary.min_step),
            format_value(summary.max) if summary.max_step is not None else "-",
            _step(summary.max_step),
            str(summary.count),
        ]
        for key, summary in sorted(record.summary.items())
    ]
    return _section("metrics", table(rows, header=header, numeric=len(header) - 1))


def _key_value_rows(values: Mapping[str, Any]) -> list[list[str]]:
    return [
        [safe(key), truncate(format_value(value), _VALUE_WIDTH)] for key, value in values.items()
    ]


def _step(step: int | None) -> str:
    return "-" if step is None else str(step)


def _tags(record: RunRecord) -> str | None:
    if not record.tags:
        return None
    return _section("tags", table(_key_value_rows(record.tags)))


def _notes(record: RunRecord) -> str | None:
    if not record.notes:
        return None
    lines = [f"{format_time(note.time)}  {safe(note.text)}" for note in record.notes]
    return _section("notes", "\n".join(lines))


def _alerts(record: RunRecord) -> str | None:
    r"""The alerts that fired, oldest first; every stored string made safe for the terminal.

    Example:
        >>> import datetime as dt
        >>> from runjournal.query import AlertRecord
        >>> when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        >>> alert = AlertRecord(time=when, seg=0, key="loss\x1b[2J", rule="not_finite()",
        ...                     step=3, value=float("nan"), message="loss = nan at step 3")
        >>> record = RunRecord(id="r1", status="completed", start_time=when, alerts=[alert])
        >>> "\x1b" in _alerts(record), _alerts(record).splitlines()[0]
        (False, 'alerts: 1 fired')
    """
    if not record.alerts:
        return None
    rows = [
        [
            format_time(alert.time),
            safe(alert.key),
            safe(alert.rule),
            _step(alert.step),
            "-" if alert.value is None else format_value(alert.value),
            f"x{alert.count}",
            truncate(safe(alert.message), _VALUE_WIDTH),
        ]
        for alert in record.alerts
    ]
    header = ["time", "key", "rule", "step", "value", "count", "message"]
    return _section(f"alerts: {len(record.alerts)} fired", table(rows, header=header))


def _errors(record: RunRecord) -> str | None:
    if not record.errors:
        return None
    total = sum(error.count for error in record.errors)
    rows = [
        [safe(error.cause), safe(error.key or "-"), f"x{error.count}", safe(error.message)]
        for error in record.errors
    ]
    body = table(rows, header=["cause", "key", "count", "last message"])
    return _section(f"logging errors: {total} handled without stopping the run", body)


def _skipped(record: RunRecord) -> str | None:
    if not record.skipped:
        return None
    lines = [safe(str(problem)) for problem in record.skipped]
    return _section(f"problems reading the run: {len(record.skipped)}", "\n".join(lines))


def _exception(record: RunRecord) -> str | None:
    exception = record.exception
    if not exception:
        return None
    title = f"{exception.get('type', 'exception')}: {exception.get('message', '')}"
    traceback = exception.get("traceback")
    body = safe(traceback, keep_newlines=True).rstrip() if isinstance(traceback, str) else ""
    return _section(f"exception  {safe(title)}", body)


def _section(title: str, body: str) -> str:
    indented = "\n".join(f"{_INDENT}{line}" if line else line for line in body.split("\n"))
    return f"{title}\n{indented}" if body else title
