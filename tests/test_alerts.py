"""Alerts: each rule fires once with its event, warning and callback; commands; on_nan="raise"."""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import runjournal
from runjournal.alerts import Alert, Fired, Rule, above, below, no_improvement, not_finite
from runjournal.errors import InvalidArgumentError, NonFiniteMetricError, RunjournalWarning


def _alerts(run: runjournal.Run) -> list[dict[str, Any]]:
    assert run.dir is not None
    events = [json.loads(line) for line in (run.dir / "run.jsonl").read_text().splitlines()]
    return [event for event in events if event["event"] == "alert"]


def _log_all(run: runjournal.Run, key: str, values: list[float]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for value in values:
            run.log({key: value, "other": 1.0})
    return [str(w.message) for w in caught if issubclass(w.category, RunjournalWarning)]


@pytest.mark.parametrize(
    ("rule", "values", "fires_at"),
    [
        (not_finite(), [1.0, math.nan, math.inf, 2.0], 1),
        (above(5.0), [1.0, 6.0, 7.0, 8.0], 1),
        (below(0.1), [1.0, 0.5, 0.05, 0.01], 2),
        (no_improvement(2), [1.0, 0.9, 0.95, 0.92, 0.91, 0.93], 3),
        (no_improvement(2, mode="max"), [0.1, 0.2, 0.2, 0.19, 0.3], 3),
    ],
)
def test_each_rule_fires_once_with_event_warning_and_callback(
    rule: Rule, values: list[float], fires_at: int
) -> None:
    fired: list[Fired] = []
    run = runjournal.start(system_metrics=False)
    run.watch("loss", rule, callback=fired.append)
    messages = _log_all(run, "loss", values)
    run.end()
    assert len(fired) == 1 and fired[0].step == fires_at and fired[0].count == 1
    assert fired[0].key == "loss" and fired[0].run_id == run.id
    assert fired[0].value == values[fires_at] or math.isnan(values[fires_at])
    assert len(messages) == 1 and "alert: loss" in messages[0]
    (event,) = _alerts(run)
    assert event["key"] == "loss" and event["step"] == fires_at and event["count"] == 1
    assert event["rule"] == repr(rule) and event["message"] == fired[0].message


def test_repeat_fires_again_each_time_the_condition_holds_anew() -> None:
    fired: list[Fired] = []
    run = runjournal.start(system_metrics=False)
    run.watch("loss", above(1.0), callback=fired.append, repeat=True)
    _log_all(run, "loss", [2.0, 3.0, 0.5, 4.0, 0.1, 0.2])
    run.end()
    assert [f.step for f in fired] == [0, 3] and [f.count for f in fired] == [1, 2]
    assert [e["count"] for e in _alerts(run)] == [1, 2]


def test_start_alerts_and_nan_event_value_is_tagged() -> None:
    fired: list[Fired] = []
    run = runjournal.start(
        system_metrics=False, alerts=[Alert("loss", not_finite(), callback=fired.append)]
    )
    _log_all(run, "loss", [1.0, math.nan])
    run.end()
    assert fired[0].step == 1
    assert _alerts(run)[0]["value"] == {"$float": "nan"}


def test_unwatched_keys_and_non_numbers_never_fire() -> None:
    run = runjournal.start(system_metrics=False, strict=False)
    run.watch("loss", above(0.0))
    assert _log_all(run, "acc", [1.0, 2.0]) == []
    run.end()
    assert _alerts(run) == []


def test_numpy_values_are_watched() -> None:
    np = pytest.importorskip("numpy")
    run = runjournal.start(system_metrics=False)
    run.watch("loss", above(1.0))
    messages = _log_all(run, "loss", [np.float32(0.5), np.float64(2.0)])
    run.end()
    assert len(messages) == 1 and _alerts(run)[0]["value"] == 2.0


def test_a_failing_callback_is_a_warning_not_an_exception() -> None:
    def broken(fired: Fired) -> None:
        raise RuntimeError("pager offline")

    run = runjournal.start(system_metrics=False)
    run.watch("loss", above(0.0), callback=broken)
    messages = _log_all(run, "loss", [1.0])
    run.end()
    assert any("pager offline" in m for m in messages) and len(_alerts(run)) == 1


def _wait_for(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written")


def test_command_runs_detached_with_values_in_environment_only(tmp_path: Path) -> None:
    out = tmp_path / "alert.txt"
    code = (
        "import os, sys; e = os.environ; open(sys.argv[1], 'w').write("
        "'|'.join([e['RUNJOURNAL_ALERT_KEY'], e['RUNJOURNAL_ALERT_VALUE'],"
        " e['RUNJOURNAL_ALERT_STEP'], e['RUNJOURNAL_RUN_ID']]) + '\\n')"
    )
    key = "loss; touch pwned $(id) `id`"  # a hostile name never reaches a shell
    run = runjournal.start(system_metrics=False)
    run.watch(key, above(1.0), command=[sys.executable, "-c", code, str(out)])
    _log_all(run, key, [0.5, 3.0])
    run.end()
    assert _wait_for(out) == f"{key}|3.0|1|{run.id}\n"
    assert not (Path.cwd() / "pwned").exists()


def test_shell_string_command_gets_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "shell.txt"
    run = runjournal.start(system_metrics=False)
    run.watch("$(touch pwned)", not_finite(), command=f'echo "$RUNJOURNAL_ALERT_KEY" > {out}')
    _log_all(run, "$(touch pwned)", [math.inf])
    run.end()
    assert _wait_for(out) == "$(touch pwned)\n"
    assert not (Path.cwd() / "pwned").exists()


def test_a_missing_program_is_a_warning() -> None:
    run = runjournal.start(system_metrics=False)
    run.watch("loss", above(0.0), command=["/no/such/program"])
    messages = _log_all(run, "loss", [1.0])
    run.end()
    assert any("command of the alert" in m for m in messages)


def test_on_nan_raise_stops_the_loop_after_logging_the_value() -> None:
    run = runjournal.start(system_metrics=False, on_nan="raise")
    run.log({"loss": 1.0})
    with pytest.raises(NonFiniteMetricError) as raised:
        run.log({"loss": math.nan, "acc": 0.5}, step=7)
    assert isinstance(raised.value, ValueError)
    assert raised.value.key == "loss" and raised.value.step == 7
    assert "loss" in str(raised.value) and "nan" in str(raised.value)
    with pytest.raises(NonFiniteMetricError):
        run.log({"grad_norm": -math.inf})
    run.end()
    history = runjournal.Store().run(run.id).metrics
    assert math.isnan(history["loss"]) and history["grad_norm"] == -math.inf


def test_on_nan_raise_also_fires_watched_alerts_first() -> None:
    fired: list[Fired] = []
    run = runjournal.start(system_metrics=False, on_nan="raise")
    run.watch("loss", not_finite(), callback=fired.append)
    with warnings.catch_warnings(), pytest.raises(NonFiniteMetricError):
        warnings.simplefilter("ignore")
        run.log({"loss": math.nan})
    run.end()
    assert len(fired) == 1


def test_on_nan_log_is_the_default_and_bad_arguments_are_refused() -> None:
    with runjournal.start(system_metrics=False) as run:
        run.log({"loss": math.nan})
    with pytest.raises(InvalidArgumentError):
        runjournal.start(on_nan="stop")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        runjournal.start(alerts=["loss"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError):
        Alert("loss", "above 3")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        no_improvement(0)
    with pytest.raises(InvalidArgumentError):
        above(math.nan)
    with pytest.raises(InvalidArgumentError):
        Alert("loss", above(1.0), command=[])


def test_a_shared_rule_keeps_separate_state_per_alert() -> None:
    rule = no_improvement(1)
    first, second = Alert("a", rule), Alert("b", rule)
    assert first.observe(1.0, 0) is None and first.observe(2.0, 1) is not None
    assert second.observe(5.0, 0) is None
