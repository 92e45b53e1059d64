"""Alerts: rules on a metric that say something went wrong, and what to do when one fires.

Watch a metric with a rule, at ``start(alerts=[...])`` or later with
``run.watch(key, rule)``. Rules are checked in ``run.log``, for the watched
keys only (a run that watches nothing pays one dict check per call). When a
rule fires, the run records an ``alert`` event in ``run.jsonl``, issues one
:class:`~runjournal.errors.RunjournalWarning`, calls your ``callback`` (if
any) and starts your ``command`` (if any), detached, with the details in
environment variables. Each alert fires once, unless ``repeat=True``: then it
fires again each time its condition holds after having stopped holding.

The rules: :func:`not_finite`, :func:`above`, :func:`below` and
:func:`no_improvement`. See ``docs/alerts.md``.

Example:
    >>> import warnings, runjournal
    >>> from runjournal.alerts import Alert, above
    >>> fired = []
    >>> with warnings.catch_warnings(record=True):
    ...     warnings.simplefilter("always")
    ...     with runjournal.start(alerts=[Alert("loss", above(5.0), callback=fired.append)]) as run:
    ...         run.log({"loss": 1.0})
    ...         run.log({"loss": 9.0})
    >>> fired[0].message
    'loss = 9.0 at step 1: above 5.0'
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from runjournal.errors import InvalidArgumentError

__all__ = [
    "Alert",
    "Fired",
    "Rule",
    "above",
    "below",
    "no_improvement",
    "not_finite",
]


class Rule:
    """A condition on the values of one metric; subclasses say when it holds.

    ``observe`` is called with each value logged for the key, in order, and
    returns why the condition holds now, or None.
    """

    description = "rule"

    def observe(self, value: float, step: int) -> str | None:  # pragma: no cover - abstract
        """Why the condition holds after this value, or None."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.description


class _NotFinite(Rule):
    description = "not_finite()"

    def observe(self, value: float, step: int) -> str | None:
        return None if math.isfinite(value) else "not finite"


class _Threshold(Rule):
    def __init__(self, threshold: float, *, above: bool) -> None:
        self.threshold = _number("threshold", threshold)
        self.above = above
        word = "above" if above else "below"
        self.description = f"{word}({self.threshold!r})"

    def observe(self, value: float, step: int) -> str | None:
        if self.above and value > self.threshold:
            return f"above {self.threshold!r}"
        if not self.above and value < self.threshold:
            return f"below {self.threshold!r}"
        return None


class _NoImprovement(Rule):
    def __init__(self, steps: int, mode: str, min_delta: float) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InvalidArgumentError(
                f"steps={steps!r} is not valid; give a positive int", argument="steps", value=steps
            )
        if mode not in ("min", "max"):
            raise InvalidArgumentError(
                f"mode={mode!r} is not valid; use 'min' or 'max'", argument="mode", value=mode
            )
        self.steps, self.mode = steps, mode
        self.min_delta = abs(_number("min_delta", min_delta))
        self.description = f"no_improvement({steps}, mode={mode!r})"
        self._best: float | None = None
        self._best_step = 0

    def observe(self, value: float, step: int) -> str | None:
        if math.isnan(value):
            return None
        better = self._best is None or (
            value < self._best - self.min_delta
            if self.mode == "min"
            else value > self._best + self.min_delta
        )
        if better:
            self._best, self._best_step = value, step
            return None
        if step - self._best_step >= self.steps:
            return f"no improvement for {step - self._best_step} steps (best {self._best!r})"
        return None


def not_finite() -> Rule:
    """Fires when a value is NaN, +inf or -inf.

    Example:
        >>> not_finite().observe(float("nan"), 3)
        'not finite'
    """
    return _NotFinite()


def above(threshold: float) -> Rule:
    """Fires when a value is greater than ``threshold``.

    Example:
        >>> above(10).observe(11.0, 0), above(10).observe(10.0, 0)
        ('above 10.0', None)
    """
    return _Threshold(threshold, above=True)


def below(threshold: float) -> Rule:
    """Fires when a value is less than ``threshold``.

    Example:
        >>> below(0.5).observe(0.4, 0)
        'below 0.5'
    """
    return _Threshold(threshold, above=False)


def no_improvement(
    steps: int, *, mode: Literal["min", "max"] = "min", min_delta: float = 0.0
) -> Rule:
    """Fires when the best value (lowest for ``min``, highest for ``max``) is ``steps`` steps old.

    Steps are the steps the values were logged at; an improvement must beat
    the best by more than ``min_delta``. NaN is ignored (watch it with
    :func:`not_finite`).

    Example:
        >>> rule = no_improvement(2, mode="max")
        >>> [rule.observe(v, s) for s, v in enumerate([0.5, 0.6, 0.6, 0.55])]
        [None, None, None, 'no improvement for 2 steps (best 0.6)']
    """
    return _NoImprovement(steps, mode, min_delta)


@dataclass(frozen=True)
class Fired:
    """What a callback receives when an alert fires.

    Attributes:
        key: The metric name.
        rule: The rule, as written (``above(5.0)``).
        value: The value that made it fire.
        step: The step of that value.
        message: One line saying what happened.
        count: How many times this alert has fired (1 unless ``repeat``).
        run_id: The run's id.
    """

    key: str
    rule: str
    value: float
    step: int
    message: str
    count: int
    run_id: str


class Alert:
    """A rule on a metric, and what to do when it fires.

    Args:
        key: The metric name to watch.
        rule: :func:`not_finite`, :func:`above`, :func:`below`, :func:`no_improvement`.
        callback: Called with a :class:`Fired` in the thread that logged the
            value; an exception it raises is reported as a warning, not raised.
        command: A program to start when it fires, detached: a list of
            arguments (run as is) or a string (run by ``/bin/sh -c``). It gets
            the details in environment variables (``RUNJOURNAL_ALERT_KEY``,
            ``..._VALUE``, ``..._STEP``, ``..._RULE``, ``..._MESSAGE``,
            ``RUNJOURNAL_RUN_ID``), never inside the command line itself.
        repeat: Fire again each time the condition holds after having stopped
            holding (default: once per run).

    Example:
        >>> Alert("loss", not_finite(), command=["notify-send", "loss is NaN"])
        Alert('loss', not_finite())
    """

    def __init__(
        self,
        key: str,
        rule: Rule,
        *,
        callback: Callable[[Fired], object] | None = None,
        command: str | Sequence[str] | None = None,
        repeat: bool = False,
    ) -> None:
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(
                f"an alert watches a metric name, not {key!r}", argument="key", value=key
            )
        if not isinstance(rule, Rule):
            raise InvalidArgumentError(
                f"rule={rule!r} is not a rule; use runjournal.alerts.not_finite(), above(x),"
                " below(x) or no_improvement(n)",
                argument="rule",
                value=rule,
            )
        if callback is not None and not callable(callback):
            raise InvalidArgumentError(
                "callback must be callable", argument="callback", value=callback
            )
        self.key = key
        self.rule = copy.deepcopy(rule)  # its own state, even when a rule is shared
        self.callback = callback
        self.command = _checked_command(command)
        self.repeat = bool(repeat)
        self.count = 0
        self._holding = False

    def __repr__(self) -> str:
        return f"Alert({self.key!r}, {self.rule!r})"

    def observe(self, value: float, step: int) -> str | None:
        """The message when this value makes the alert fire; None otherwise."""
        why = self.rule.observe(value, step)
        was_holding, self._holding = self._holding, why is not None
        if why is None or was_holding or (self.count and not self.repeat):
            return None
        self.count += 1
        return f"{self.key} = {value!r} at step {step}: {why}"


def _number(argument: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidArgumentError(
            f"{argument}={value!r} is not valid; give a number", argument=argument, value=value
        )
    return float(value)


def _checked_command(command: object) -> str | tuple[str, ...] | None:
    if command is None:
        return None
    if isinstance(command, str) and command.strip():
        return command
    if (
        isinstance(command, Sequence)
        and not isinstance(command, str)
        and command
        and all(isinstance(part, str) for part in command)
    ):
        return tuple(command)
    raise InvalidArgumentError(
        f"command={command!r} is not valid; give a list of arguments or a shell string",
        argument="command",
        value=command,
    )


def run_command(command: str | tuple[str, ...], fired: Fired) -> None:
    """Start ``command`` detached, with the alert in its environment; a thread reaps it.

    Raises:
        OSError: the program could not be started.
    """
    env = {
        **os.environ,
        "RUNJOURNAL_ALERT_KEY": fired.key,
        "RUNJOURNAL_ALERT_RULE": fired.rule,
        "RUNJOURNAL_ALERT_VALUE": repr(fired.value),
        "RUNJOURNAL_ALERT_STEP": str(fired.step),
        "RUNJOURNAL_ALERT_MESSAGE": fired.message,
        "RUNJOURNAL_ALERT_COUNT": str(fired.count),
        "RUNJOURNAL_RUN_ID": fired.run_id,
    }
    env = {name: value.encode("utf-8", "backslashreplace").decode() for name, value in env.items()}
    process = subprocess.Popen(
        command,
        shell=isinstance(command, str),  # the user's own string; values only in env
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    threading.Thread(target=process.wait, name="runjournal-alert-command", daemon=True).start()


def as_alerts(alerts: object) -> list[Alert]:
    """Check ``start(alerts=...)``: a list of :class:`Alert`.

    Raises:
        InvalidArgumentError: anything else.
    """
    if alerts is None:
        return []
    if isinstance(alerts, Alert):
        return [alerts]
    if isinstance(alerts, (list, tuple)) and all(isinstance(a, Alert) for a in alerts):
        return list(alerts)
    raise InvalidArgumentError(
        "alerts must be a list of runjournal.alerts.Alert", argument="alerts", value=alerts
    )


def value_of(value: object) -> float | None:
    """A logged value as a float for the rules; None when it is not a number (never raises)."""
    if type(value) is float:
        return value
    try:
        return float(value)  # type: ignore[arg-type]
    except Exception:
        return None
