"""Filter expressions: the grammar, its errors, what they match, and the other run filters."""

from __future__ import annotations

import builtins
import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _runfiles import StoreFiles
from runjournal import cli
from runjournal.errors import FilterError, InvalidArgumentError
from runjournal.query import Store, load_runs
from runjournal.query._filter import (
    And,
    Compare,
    Expression,
    In,
    Not,
    Or,
    matches,
    parse_filter,
    unparse,
)

# ------------------------------------------------------------------ round trips

_names = st.one_of(
    st.from_regex(r"(params|metrics|tags)\.[a-z_][a-z0-9_/@.-]{0,12}", fullmatch=True),
    st.text(min_size=1, max_size=12),  # anything at all, written in backquotes
    st.sampled_from(["status", "name", "start_time", "duration"]),
)
_literals = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.text(max_size=10),
)
_tests: st.SearchStrategy[Expression] = st.one_of(
    st.builds(Compare, _names, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), _literals),
    st.builds(In, _names, st.lists(_literals, min_size=1, max_size=4).map(tuple), st.booleans()),
)
_expressions = st.recursive(
    _tests,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        st.builds(Or, st.lists(inner, min_size=2, max_size=3).map(tuple)),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(_expressions)
def test_every_expression_round_trips_through_its_text(expression: Expression) -> None:
    """unparse() gives text that parses back to the same expression."""
    text = unparse(expression)
    assert parse_filter(text) == expression
    assert unparse(parse_filter(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_junk_never_runs_code_and_errors_point_inside_it(text: str) -> None:
    """Any text parses or raises FilterError with a column within it; nothing is evaluated."""
    real_eval, real_exec = builtins.eval, builtins.exec

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval or exec called")

    builtins.eval, builtins.exec = forbidden, forbidden  # type: ignore[assignment]
    try:
        parse_filter(text)
    except FilterError as error:
        assert 1 <= error.position <= len(text) + 1
        caret = str(error).splitlines()[-1]
        assert caret.index("^") == error.position + 1  # two spaces of indent, then the column
    finally:
        builtins.eval, builtins.exec = real_eval, real_exec


def test_code_in_a_filter_is_only_ever_text() -> None:
    """Python in a filter is a syntax error, or compared as a string, never run."""
    with pytest.raises(FilterError, match="after the column"):
        parse_filter("__import__('os').system('true')")
    assert parse_filter("name = '__import__(\"os\")'") == Compare("name", "=", '__import__("os")')


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("params.lr >=", 13, "expected a value"),
        ("params.lr >= and x = 1", 14, "expected a value"),
        ("(params.lr > 1", 15, "expected ')' to close the '(' at column 1"),
        ("params.lr > 1)", 14, "expected 'and', 'or' or the end"),
        ("params.lr ~ 1", 11, "unexpected character '~'"),
        ("name = 'open", 8, "string not closed"),
        ("status in 'x'", 11, "expected '(' after 'in'"),
        ("x = 1 and", 10, "expected a column name"),
        ("", 1, "expected a filter expression"),
        ("`` = 1", 1, "empty name in backquotes"),
    ],
)
def test_a_syntax_error_points_at_its_column(text: str, column: int, reason: str) -> None:
    """The error names the column of the problem and draws a caret under it."""
    with pytest.raises(FilterError) as raised:
        parse_filter(text)
    error = raised.value
    assert (error.position, error.expression) == (column, text)
    assert error.reason.startswith(reason)
    message = str(error).splitlines()
    assert message[1] == f"  {text}" and message[2] == " " * (column + 1) + "^"
    assert isinstance(error, ValueError)


def test_an_unknown_plain_column_is_an_error_at_its_column(tmp_path: Path) -> None:
    """A misspelt column fails before anything is read, pointing at it."""
    store = Store(StoreFiles(tmp_path / "s").root)
    with pytest.raises(FilterError, match="unknown column 'statsu' at column 18"):
        store.runs(where="params.lr > 1 or statsu = 'failed'")


# ------------------------------------------------------------------ semantics

ROW = {
    "params.lr": 0.01,
    "params.name": "resnet",
    "params.flag": True,
    "params.none": None,
    "metrics.loss": math.nan,
    "metrics.acc": 0.9,
    "start_time": dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC),
    "params.big": 2**70,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.lr >= 0.01 and params.lr < 0.1", True),
        ("params.lr = 1e-2", True),
        ("params.name = 'resnet' and params.name != 'vit'", True),
        ("params.name > 'abc'", True),
        ("params.name < 1", False),
        ("params.name != 1", True),
        ("params.flag = true and params.flag != 1", True),
        ("params.none = null and params.none is null", True),
        ("params.missing = null and not params.missing != null", True),
        ("params.missing > 0 or params.missing = 0 or params.missing != 0", False),
        ("not params.missing > 0", True),
        ("metrics.loss = nan and not metrics.loss < 1 and not metrics.loss > 1", True),
        ("metrics.loss != nan", False),
        ("metrics.acc != nan and metrics.acc > -inf", True),
        ("params.name in ('vit', 'resnet') and params.name not in ('x',)", True),
        ("params.missing not in (1, 2)", False),
        ("start_time >= '2026-11-23' and start_time < '2026-11-23T13:00:00+00:00'", True),
        ("start_time > 1795000000", True),
        ("start_time = 'not a date'", False),
        ("params.big > 1180591620717411303423 and params.big < 1180591620717411303425", True),
        ("(params.lr > 1 or params.flag = true) and not (metrics.acc < 0.5)", True),
    ],
)
def test_what_an_expression_matches(text: str, expected: bool) -> None:
    """Comparisons by kind, missing values, NaN, lists of values, times and big ints."""
    assert matches(parse_filter(text), ROW.get) is expected


def _store(tmp_path: Path) -> Store:
    files = StoreFiles(tmp_path / "store")
    for index, (lr, model, loss) in enumerate(
        [(0.1, "resnet", 0.2), (0.01, "vit", 0.5), (0.001, "resnet", 0.1), (0.05, None, 0.9)]
    ):
        run = files.ended_run(f"r{index}", start=1795000000.0 + 3600 * index)
        run.params({"lr": lr, "opt": {"name": "adam"}}).metrics(0, {"val/loss": loss})
        if model:
            run.event("tags", tags={"model": model})
    return Store(files.root)


def test_where_strings_keep_the_runs_the_same_function_keeps(tmp_path: Path) -> None:
    """A filter expression keeps exactly the runs the equivalent Python function keeps."""
    store = _store(tmp_path)
    text = "params.lr >= 0.01 and metrics.val/loss < 0.6 and tags.model = 'resnet'"

    def function(run: Any) -> bool:
        return bool(
            run.params["lr"] >= 0.01
            and run.metrics["val/loss"] < 0.6
            and run.tags.get("model") == "resnet"
        )

    assert [r.id for r in store.runs(where=text)] == ["r0"]
    assert [r.id for r in store.runs(where=function)] == ["r0"]
    frame = load_runs(store, where="params.opt.name = 'adam' and not tags.model is null")
    assert frame["run_id"].tolist() == ["r0", "r1", "r2"]


def test_since_until_sort_and_limit(tmp_path: Path) -> None:
    """since/until take times, ISO strings and durations; sort takes a leading '-'; limit cuts."""
    store = _store(tmp_path)
    start = dt.datetime.fromtimestamp(1795000000.0, dt.UTC)
    assert [r.id for r in store.runs(since=start + dt.timedelta(hours=1))] == ["r1", "r2", "r3"]
    assert [r.id for r in store.runs(until=(start + dt.timedelta(hours=2)).isoformat())] == [
        "r0",
        "r1",
    ]
    assert [r.id for r in store.runs(since="100w")] == ["r0", "r1", "r2", "r3"]
    assert store.runs(since="1m") == []
    assert [r.id for r in store.runs(sort="-metrics.val/loss", limit=2)] == ["r3", "r1"]
    assert [r.id for r in store.runs(sort="tags.model")] == ["r0", "r2", "r1", "r3"]
    frame = load_runs(store, sort="params.lr", limit=3)
    assert frame["run_id"].tolist() == ["r2", "r1", "r3"]


@pytest.mark.parametrize(
    "arguments",
    [{"since": "yesterday"}, {"until": []}, {"sort": "nope"}, {"limit": -1}, {"where": 3}],
)
def test_bad_query_arguments_are_refused(tmp_path: Path, arguments: dict[str, Any]) -> None:
    """A time, sort column, limit or where of the wrong kind raises InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError):
        _store(tmp_path).runs(**arguments)


def test_the_cli_filters_and_reports_a_bad_filter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ls --where/--since` filter the table; a syntax error prints the caret, exit code 1."""
    store = _store(tmp_path)
    code = cli.main(["--store", str(store.path), "ls", "--where", "tags.model = 'vit'"])
    output = capsys.readouterr().out
    assert code == 0 and "r1" in output and "r0" not in output
    code = cli.main(["--store", str(store.path), "ls", "--since", "1h", "--no-cache"])
    assert code == 0 and "no runs" in capsys.readouterr().out
    code = cli.main(["--store", str(store.path), "ls", "--where", "params.lr >> 1"])
    error = capsys.readouterr().err
    assert code == 1
    assert "at column 12" in error and error.splitlines()[-1] == " " * 13 + "^"
