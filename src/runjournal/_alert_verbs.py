"""The alert verbs of a :class:`~runjournal.Run`: ``watch``, and what ``log`` does for alerts.

A mixin, so that ``run.py`` stays about the run's lifecycle. ``Run.log``
calls :meth:`AlertVerbs._check_alerts` only when some key is watched, and the
slow path of its encoding calls :meth:`AlertVerbs._stop_if_not_finite` only
with ``on_nan="raise"``; a run without either pays one truth test per call.
The rules and :class:`~runjournal.alerts.Alert` are in :mod:`runjournal.alerts`.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from runjournal.errors import NonFiniteMetricError, RunjournalWarning
from runjournal.format import FLOAT_TAG, RUN_EVENTS, Event, dumps_line, encode_float
from runjournal.values import storable_text

if TYPE_CHECKING:
    from runjournal._writer import RunWriter
    from runjournal.alerts import Alert, Fired, Rule

__all__ = ["AlertVerbs"]


class AlertVerbs:
    """``Run``'s alert methods; they use the run's writer, lock and buffer."""

    if TYPE_CHECKING:
        _id: str
        _lock: threading.RLock
        _writer: RunWriter | None
        _buffer: bytearray
        _watched: dict[str, list[Alert]]
        _on_nan_raise: bool

        def _event_line(self, kind: str, fields: Mapping[str, Any]) -> bytes: ...

    def watch(
        self,
        key: str,
        rule: Rule,
        *,
        callback: Callable[[Fired], object] | None = None,
        command: str | Sequence[str] | None = None,
        repeat: bool = False,
    ) -> Alert:
        """Watch a metric with a rule; see :class:`runjournal.alerts.Alert` and ``docs/alerts.md``.

        When the rule fires: an ``alert`` event in ``run.jsonl``, a
        ``RunjournalWarning``, ``callback(fired)`` and the ``command``, once
        (or each time it fires anew, with ``repeat=True``).

        Raises:
            InvalidArgumentError: a bad key, rule, callback or command.

        Example:
            >>> import warnings, runjournal
            >>> from runjournal.alerts import no_improvement
            >>> with warnings.catch_warnings(record=True) as caught:
            ...     warnings.simplefilter("always")
            ...     with runjournal.start() as run:
            ...         _ = run.watch("val/acc", no_improvement(2, mode="max"))
            ...         for acc in [0.5, 0.6, 0.6, 0.58, 0.61]:
            ...             run.log({"val/acc": acc})
            >>> print(caught[0].message)  # doctest: +ELLIPSIS
            run ...: alert: val/acc = 0.58 at step 3: no improvement for 2 steps (best 0.6)
        """
        from runjournal.alerts import Alert

        alert = Alert(key, rule, callback=callback, command=command, repeat=repeat)
        self._add_alerts([alert], None)
        return alert

    def _add_alerts(self, alerts: list[Alert], on_nan: str | None) -> None:
        with self._lock:
            for alert in alerts:
                self._watched = {
                    **self._watched,
                    alert.key: [*self._watched.get(alert.key, []), alert],
                }
        if on_nan is not None:
            self._on_nan_raise = on_nan == "raise"

    def _check_alerts(self, metrics: Any, step: int) -> None:
        """Observe the watched keys' values; fire the alerts whose rule holds anew. Never raises."""
        from runjournal.alerts import Fired, value_of

        fired: list[tuple[Alert, Fired]] = []
        with self._lock:
            for key, alerts in self._watched.items():
                try:
                    value = value_of(metrics[key]) if key in metrics else None
                except Exception:  # the caller's mapping misbehaved: nothing to watch
                    value = None
                if value is None:
                    continue
                for alert in alerts:
                    if (message := alert.observe(value, step)) is not None:
                        details = Fired(
                            key, repr(alert.rule), value, step, message, alert.count, self._id
                        )
                        fired.append((alert, details))
        for alert, details in fired:
            self._fire(alert, details)

    def _fire(self, alert: Alert, fired: Fired) -> None:
        """Record, warn, call back and run the command of an alert that fired."""
        from runjournal.alerts import run_command

        fields = {
            "key": storable_text(fired.key),
            "rule": fired.rule,
            "step": fired.step,
            "value": encode_float(fired.value),
            "message": storable_text(fired.message),
            "count": fired.count,
        }
        if self._writer is not None:
            self._writer.write_now(RUN_EVENTS, self._event_line(Event.ALERT, fields))
        callback, command = alert.callback, alert.command
        actions: list[tuple[str, Callable[[], object]]] = []
        if callback is not None:
            actions.append(("callback", lambda: callback(fired)))
        if command is not None:
            actions.append(("command", lambda: run_command(command, fired)))
        for what, action in actions:
            try:
                action()
            except Exception as error:  # the user's code or program: report, never raise
                warnings.warn(
                    f"run {self._id}: the {what} of the alert on {fired.key!r} failed:"
                    f" {type(error).__name__}: {error}",
                    RunjournalWarning,
                    stacklevel=4,
                )
        # Last: where warnings are errors (-W error), everything above has happened.
        warnings.warn(f"run {self._id}: alert: {fired.message}", RunjournalWarning, stacklevel=4)

    def _stop_if_not_finite(self, record: dict[str, Any], values: dict[str, Any]) -> None:
        """With ``on_nan="raise"``: log the line, then raise on its first NaN or infinity."""
        bad = next((key for key, value in values.items() if _is_non_finite(value)), None)
        if bad is None:
            return
        try:
            line = dumps_line({**record, "m": values})
        except orjson.JSONEncodeError:
            return  # a name orjson refuses: the usual path reports it, and logs the rest
        writer = self._writer
        if writer is not None and not (
            len(self._buffer) >= writer.wake_bytes and writer.buffer_full()
        ):
            self._buffer += line
        if self._watched:
            self._check_alerts(record["m"], record["step"])
        value = float(values[bad][FLOAT_TAG])
        raise NonFiniteMetricError(
            f"run {self._id}: metric {bad!r} is {value} at step {record['step']}"
            ' (start(on_nan="raise") stops the loop here; the value was logged)',
            key=bad,
            value=value,
            step=record["step"],
        )


def _is_non_finite(stored: object) -> bool:
    """Whether a coerced metric value is NaN or an infinity (stored as ``{"$float": ...}``)."""
    return isinstance(stored, dict) and FLOAT_TAG in stored
