"""The runjournal command line: ls, show, close, errors, terminal safety and docs."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _runfiles import OTHER_HOST, T0, StoreFiles
from runjournal import cli

ESCAPES = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x9b31m\r"


@pytest.fixture
def files(tmp_path: Path) -> StoreFiles:
    return StoreFiles(tmp_path / "store")


def run_cli(files: StoreFiles, *args: str) -> int:
    return cli.main(["--store", str(files.root), *args])


def strict_json(text: str) -> object:
    """Parse JSON that must be strict: NaN or Infinity literals fail the test."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))


@pytest.fixture
def three_runs(files: StoreFiles) -> StoreFiles:
    files.run("20261118-000000-aaaa0001").start(name="oldest", time=T0).end(time=T0 + 62)
    files.run("20261118-000100-bbbb0002").start(name="middle", time=T0 + 60).end(
        "failed", time=T0 + 3724
    )
    files.run("20261118-000200-cccc0003").start(name="newest", experiment="cifar", time=T0 + 120)
    for step, run_id in enumerate(["20261118-000000-aaaa0001", "20261118-000100-bbbb0002"]):
        files.run(run_id).metrics(0, {"loss": 0.5 + step, "acc": 0.25, "tokens": 2**70})
    files.run("20261118-000200-cccc0003").metrics(0, {"loss": 0.125, "rare": 1.0})
    return files


# ---------------------------------------------------------------------- ls


def test_ls_prints_an_aligned_table_newest_first(three_runs: StoreFiles, capsys) -> None:
    """ls lists id, name, experiment, status, start, duration and common metrics, newest first."""
    assert run_cli(three_runs, "ls") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "id",
        "name",
        "experiment",
        "status",
        "start",
        "duration",
        "loss",
        "acc",
        "tokens",
    ]
    assert [line.split()[1] for line in lines[1:]] == ["newest", "middle", "oldest"]
    assert "1m02s" in lines[3] and "1h01m" in lines[2]
    assert "1.181e+21" in lines[3] and "0.125" in lines[1]
    column = lines[0].index("status")
    assert [line[column:].split()[0] for line in lines[1:]] == ["stale", "failed", "completed"]


def test_ls_filters_sorts_and_limits(three_runs: StoreFiles, capsys) -> None:
    """--experiment, --status, --sort and --limit select and order the rows."""
    run_cli(three_runs, "ls", "--experiment", "cifar")
    assert capsys.readouterr().out.count("\n") == 2
    run_cli(three_runs, "ls", "--status", "failed,completed", "--sort", "name")
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]] == [
        "middle",
        "oldest",
    ]
    run_cli(three_runs, "ls", "--sort", "metrics.loss", "--limit", "2")
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]] == [
        "newest",
        "oldest",
    ]
    run_cli(three_runs, "ls", "--sort", "metrics.rare", "--reverse")
    assert capsys.readouterr().out.splitlines()[1].split()[1] == "newest"


def test_ls_json_is_strict_json_with_tagged_special_values(three_runs: StoreFiles, capsys) -> None:
    """ls --json prints run records, metrics included, NaN and big ints tagged."""
    three_runs.run("20261118-000000-aaaa0001").metrics(1, {"nan": math.nan})
    assert run_cli(three_runs, "ls", "--json") == 0
    runs = strict_json(capsys.readouterr().out)
    assert [run["name"] for run in runs] == ["newest", "middle", "oldest"]
    oldest = runs[2]
    assert oldest["metrics"]["nan"] == {"$float": "nan"}
    assert oldest["metrics"]["tokens"] == {"$int": str(2**70)}
    assert oldest["start_time"] == "2026-11-18T11:06:40+00:00"
    assert oldest["summary"]["loss"]["count"] == 1


def test_ls_on_an_empty_store_says_so(files: StoreFiles, capsys) -> None:
    """An empty store is not an error."""
    assert run_cli(files, "ls") == 0
    assert "no runs" in capsys.readouterr().out
    run_cli(files, "ls", "--json")
    assert strict_json(capsys.readouterr().out) == []


def test_store_option_is_accepted_after_the_command(three_runs: StoreFiles, capsys) -> None:
    """--store works before or after the command name."""
    assert cli.main(["ls", "--store", str(three_runs.root), "--json"]) == 0
    assert len(strict_json(capsys.readouterr().out)) == 3


# -------------------------------------------------------------------- show


@pytest.fixture
def failed_run(files: StoreFiles) -> StoreFiles:
    run = files.run("20261123-144846-9f3a0c1e").start(name="brisk-heron-7", pid=81234)
    run.params({"lr": 0.001, "model": {"depth": 50}})
    for step, loss in enumerate([2.31, 0.9, 0.2315]):
        run.metrics(step, {"train/loss": loss})
    run.event("tags", tags={"model": "resnet50"})
    run.event("note", time=T0 + 412.5, text="loss plateaus after the lr drop")
    run.event("error", cause="invalid_value", key="accuracy", message="not a number", count=3)
    traceback = 'Traceback (most recent call last):\n  File "train.py"\nValueError: bad batch\n'
    run.end(
        "failed", exception={"type": "ValueError", "message": "bad batch", "traceback": traceback}
    )
    return files


def test_show_prints_every_section_of_a_run(failed_run: StoreFiles, capsys) -> None:
    """show gives header, params, metrics with min/max, tags, notes, errors and traceback."""
    assert run_cli(failed_run, "show", "brisk-heron-7") == 0
    out = capsys.readouterr().out
    for expected in [
        "20261123-144846-9f3a0c1e",
        "failed",
        f"{OTHER_HOST} pid 81234 job 4242",
        "logging errors  3 (see below)",
        "logging errors: 3",
        "loss plateaus after the lr drop",
        "model  resnet50",
        "exception  ValueError: bad batch",
        '    File "train.py"',
    ]:
        assert expected in out
    assert "model.depth  50" in out and "lr           0.001" in out
    metrics_line = next(line for line in out.splitlines() if "train/loss" in line)
    assert metrics_line.split() == ["train/loss", "0.2315", "2", "0.2315", "2", "2.31", "0", "3"]


def test_show_lists_skipped_lines(failed_run: StoreFiles, capsys) -> None:
    """Unreadable lines are listed by show and warned about once per file on stderr."""
    failed_run.run("20261123-144846-9f3a0c1e").append("metrics.jsonl", b'{"step": 9')
    assert run_cli(failed_run, "show", "20261123") == 0
    captured = capsys.readouterr()
    assert "metrics.jsonl:4: incomplete last line" in captured.out
    assert captured.err.count("runjournal: warning:") == 1
    assert "runs/20261123-144846-9f3a0c1e/metrics.jsonl: skipped 1" in captured.err


def test_show_json_prints_one_record(failed_run: StoreFiles, capsys) -> None:
    """show --json prints the run record with metrics, summary and exception."""
    assert run_cli(failed_run, "show", "20261123", "--json") == 0
    record = strict_json(capsys.readouterr().out)
    assert record["exception"]["type"] == "ValueError"
    assert record["summary"]["train/loss"]["max"] == 2.31
    assert record["params"] == {"lr": 0.001, "model": {"depth": 50}}


# ------------------------------------------------------------------- close


def test_close_records_the_end_of_a_dead_run(files: StoreFiles, capsys) -> None:
    """close appends an end event and reports the new status."""
    files.run("r1").start(name="lost-job")
    assert run_cli(files, "close", "lost-job", "--status", "killed") == 0
    assert capsys.readouterr().out == "closed run r1 (lost-job) as killed\n"
    run_cli(files, "show", "r1", "--json")
    assert strict_json(capsys.readouterr().out)["status"] == "killed"


def test_close_json_and_refusal_of_an_ended_run(files: StoreFiles, capsys) -> None:
    """close --json prints the record; closing it again is a user error."""
    files.run("r1").start()
    assert run_cli(files, "close", "r1", "--json") == 0
    assert strict_json(capsys.readouterr().out)["status"] == "crashed"
    assert run_cli(files, "close", "r1") == 1
    assert "runjournal: error: run r1 has ended already" in capsys.readouterr().err


# -------------------------------------------------------------------- errors


def test_user_errors_exit_1_with_a_message_and_no_traceback(tmp_path: Path, capsys) -> None:
    """A missing store is reported on one line of stderr with exit code 1."""
    assert cli.main(["--store", str(tmp_path / "none"), "ls"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("runjournal: error: no runjournal store at ")
    assert "Traceback" not in captured.err


def test_unknown_and_ambiguous_references_exit_1(three_runs: StoreFiles, capsys) -> None:
    """show with a reference matching nothing or several runs is a user error."""
    assert run_cli(three_runs, "show", "nope") == 1
    assert "no run in" in capsys.readouterr().err
    assert run_cli(three_runs, "show", "20261118") == 1
    assert "matches 3 runs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["ls", "--limit", "0"],
        ["ls", "--status", "finished"],
        ["ls", "--sort", "colour"],
        ["show"],
        ["close", "r1", "--status", "running"],
    ],
)
def test_usage_errors_exit_2(files: StoreFiles, argv: list[str], capsys) -> None:
    """A command line that does not parse exits with code 2 and a usage message."""
    assert run_cli(files, *argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_exits_0(capsys) -> None:
    """--help is not an error."""
    assert cli.main(["ls", "--help"]) == 0
    assert "--experiment" in capsys.readouterr().out


def test_show_lists_the_alerts_that_fired_in_text_and_json(files: StoreFiles, capsys) -> None:
    """show prints each alert event (control characters stripped); show --json lists them."""
    run = files.run("r1").start()
    run.event(
        "alert",
        time=T0 + 123.5,
        key=f"train/loss{ESCAPES}",
        rule="not_finite()",
        step=120,
        value={"$float": "nan"},
        message=f"train/loss = nan at step 120: not finite{ESCAPES}",
        count=1,
    )
    run.event("alert", time=T0 + 130, key="grad", rule="above(100.0)", step=7, value=250.0, count=2)
    run.end()
    assert run_cli(files, "show", "r1") == 0
    out = capsys.readouterr().out
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", out), repr(out)
    assert "pwned" not in out
    assert "alerts          2 (see below)" in out
    assert "alerts: 2 fired" in out
    rows = out.split("alerts: 2 fired\n", 1)[1].splitlines()
    assert rows[0].split() == ["time", "key", "rule", "step", "value", "count", "message"]
    assert rows[1].split()[2:6] == ["train/loss", "not_finite()", "120", "nan"]
    assert rows[2].split()[2:7] == ["grad", "above(100.0)", "7", "250.0", "x2"]
    assert run_cli(files, "show", "r1", "--json") == 0
    alerts = strict_json(capsys.readouterr().out)["alerts"]  # type: ignore[index]
    assert [(a["key"], a["step"], a["value"], a["count"]) for a in alerts] == [
        (f"train/loss{ESCAPES}", 120, {"$float": "nan"}, 1),
        ("grad", 7, 250.0, 2),
    ]
    assert alerts[0]["rule"] == "not_finite()" and alerts[0]["seg"] == 0


# ---------------------------------------------------------- terminal safety


def test_escape_sequences_in_stored_strings_never_reach_the_terminal(
    files: StoreFiles, capsys
) -> None:
    """Names, params, tags, notes and tracebacks are printed without control characters."""
    run = files.run("r1").start(name=f"evil{ESCAPES}name", experiment=f"x{ESCAPES}")
    run.params({f"p{ESCAPES}": f"v{ESCAPES}"}).metrics(0, {f"m{ESCAPES}": 1.0})
    run.event("tags", tags={"t": f"v{ESCAPES}"}).event("note", text=f"n{ESCAPES}")
    run.end(
        "failed", status_extra=1, exception={"type": "E", "message": ESCAPES, "traceback": ESCAPES}
    )
    for command in (["ls"], ["show", "r1"]):
        assert run_cli(files, *command) == 0
        out = capsys.readouterr().out
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", out), repr(out)
        assert "pwned" not in out
    assert run_cli(files, "ls") == 0
    assert "evil name" in capsys.readouterr().out  # the carriage return became a space


def test_a_closed_pipe_ends_quietly(three_runs: StoreFiles, monkeypatch, capsys) -> None:
    """When the reader of stdout goes away, ls stops without a traceback."""

    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert run_cli(three_runs, "ls") == 1
    assert capsys.readouterr().err == ""


def test_python_dash_m_runjournal_ls_json(three_runs: StoreFiles) -> None:
    """The real entry point prints strict JSON and exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "runjournal", "--store", str(three_runs.root), "ls", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [run["name"] for run in strict_json(result.stdout)] == ["newest", "middle", "oldest"]


# ---------------------------------------------------------------------- docs


def test_every_command_is_documented_in_docs_cli_md() -> None:
    """docs/cli.md has a '## runjournal <command>' section for every subcommand."""
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a.choices, dict))
    docs = (Path(__file__).parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## runjournal (\S+)$", docs, flags=re.MULTILINE))
    assert set(subparsers.choices) == headings
