r"""The summary a run's main writer puts into its ``end`` event: what its metrics file holds.

A reader that lists runs needs, per metric key, the last, smallest and
largest value with their steps, and the count (``MetricSummary``). Reading
them from the history means parsing every metrics line of every run; the
writer has just written those lines, so it summarizes them as it goes and
records the result, with the size of the file it covers, in the end event
(``docs/format.md``, *end*). A reader trusts it only while the file still
has exactly that size; otherwise it reads the history, as before.

Exactness: the summary is folded from the very bytes that reached the file
(:meth:`MetricsSummary.written` is given what each ``os.write`` wrote), parsed
with orjson as the reader parses them, with the reader's rules (rows ordered
by step, then line; NaN ignored by min and max; the first row wins a tie). It
is given only when the writer wrote the file from its first byte (it was
empty when first opened, and never reopened) and every line it wrote was
folded; anything unexpected (a line that does not parse, a value that is not
a number) makes it give none.

Cost: nothing on the hot path, and at most about 1% of a core beside it.
Folding costs about 1 µs per line, on the flusher thread but under the GIL
that the training loop needs too; so the flusher folds only while lines
arrive slower than :data:`FOLD_RATE` (about 9,000 lines a second, where the
fold costs under 1% of a core). Faster logging defers the fold to a quieter
moment (:meth:`MetricsSummary.fold_when_quiet`). ``end()`` folds what is
left, unless that is more than :data:`END_FOLD_LIMIT` bytes, when it gives
no summary rather than a slow end: a run that logs as fast as it can up to
its end has none, and its readers read the history.

Example:
    >>> summary = MetricsSummary("metrics.jsonl")
    >>> summary.opened(0)
    >>> summary.written(b'{"step":0,"time":1.0,"seg":0,"m":{"loss":0.5,"acc":0.1}}\n'
    ...                b'{"step":1,"time":2.0,"seg":0,"m":{"loss":{"$float":"nan"},"acc":0.3}}\n')
    >>> result = summary.result()
    >>> result["bytes"], list(result["metrics"]), result["metrics"]["loss"]["last"]
    (127, ['loss', 'acc'], {'$float': 'nan'})
    >>> result["metrics"]["loss"]["min"], result["metrics"]["acc"]["max_step"]
    (0.5, 1)
"""

from __future__ import annotations

import math
import threading
import time
from operator import itemgetter
from typing import Any

import orjson

from runjournal.format import decode_value, encode_float, encode_int

__all__ = ["END_FOLD_LIMIT", "FOLD_RATE", "MAX_BACKLOG", "MetricsSummary"]

END_FOLD_LIMIT = 1 << 20
"""Unfolded bytes beyond which ``end()`` gives no summary instead of folding them (~10 ms)."""
FOLD_RATE = 1 << 20
"""Bytes per second of metric lines below which the flusher folds them as they come."""
MAX_BACKLOG = 64 << 20
"""Unfolded bytes beyond which the summary is given up (the flusher cannot keep up)."""
_SLICE = 32 << 10
"""Bytes folded at a time: each slice holds the GIL (and small ones parse fastest)."""
_STEP_MIN, _STEP_MAX = -(2**63), 2**63 - 1
_NUMBERS = (int, float)
_NUMBER_TYPES = frozenset(_NUMBERS)
_get_step = itemgetter("step")
_get_m = itemgetter("m")


class _UnusableError(Exception):
    """What was written cannot be summarized as a reader would: give no summary."""


class _Key:
    """The summary of one key so far.

    Orders are ``(step, line)``: a key has one value per line, so they never
    tie; ``first`` adds the value's place in its line, which orders keys
    first seen on the same line.
    """

    __slots__ = ("count", "first", "high", "high_at", "last", "last_at", "low", "low_at")

    def __init__(self, first: tuple[int, int, int]) -> None:
        self.count = 0
        self.first = first
        self.last_at: tuple[int, int] = (_STEP_MIN - 1, -1)
        self.last: Any = None
        self.low: Any = None
        self.low_at: tuple[int, int] = (0, 0)
        self.high: Any = None
        self.high_at: tuple[int, int] = (0, 0)

    def add(
        self,
        count: int,
        first: tuple[int, int, int],
        last: tuple[tuple[int, int], Any],
        low: tuple[Any, tuple[int, int]] | None,
        high: tuple[Any, tuple[int, int]] | None,
    ) -> None:
        """Merge the summary of more rows.

        ``last`` is (order, value); ``low`` and ``high`` are (value, order),
        None when the rows are all NaN.
        """
        self.count += count
        self.first = min(self.first, first)
        if last[0] > self.last_at:
            self.last_at, self.last = last
        if low is None or high is None:
            return
        if self.low is None:
            (self.low, self.low_at), (self.high, self.high_at) = low, high
            return
        if low[0] < self.low or (low[0] == self.low and low[1] < self.low_at):
            self.low, self.low_at = low
        if high[0] > self.high or (high[0] == self.high and high[1] < self.high_at):
            self.high, self.high_at = high

    def to_json(self) -> dict[str, Any]:
        """The key's summary as the end event holds it (values tagged as in metrics lines)."""
        none = self.low is None
        return {
            "last": _stored(self.last),
            "last_step": self.last_at[0],
            "min": None if none else _stored(self.low),
            "min_step": None if none else self.low_at[0],
            "max": None if none else _stored(self.high),
            "max_step": None if none else self.high_at[0],
            "count": self.count,
        }


class MetricsSummary:
    """Folds the metric lines a writer writes to its file (see the module's docstring).

    :meth:`opened` and :meth:`written` are called by the file's writer, under
    its lock; :meth:`fold` by the flusher thread; :meth:`result` at the end.

    Attributes:
        file: The metrics file's name in the run directory.
        usable: False once the summary is given up for good.
        seen: The bytes written to the file so far, from its first byte.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.usable = True
        self.seen = 0
        self.hurry = False
        """Set when the writer is closing: a fold in progress stops letting the GIL go."""
        self._backlog: list[bytes | bytearray] = []
        self._backlog_bytes = 0
        self._folded_at = time.monotonic()
        self._rest = b""  # the start of a line whose end is not written yet
        self._lines = 0
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()  # the backlog, between the writer and the folder
        self._fold_lock = threading.Lock()  # one fold at a time (flusher, end)

    def opened(self, size: int) -> None:
        """The file was opened and holds ``size`` bytes: usable only if all of them are ours."""
        if size != self.seen:
            self.give_up()

    def written(self, data: bytes | bytearray) -> None:
        """``data`` reached the file, after everything given before."""
        if not self.usable:
            return
        with self._lock:
            self._backlog.append(data)
            self._backlog_bytes += len(data)
            self.seen += len(data)
            too_much = self._backlog_bytes > MAX_BACKLOG
        if too_much:
            self.give_up()

    def give_up(self) -> None:
        """Give no summary (and hold nothing more)."""
        self.usable = False
        with self._lock:
            self._backlog, self._backlog_bytes = [], 0
        self._keys, self._rest = {}, b""

    def fold(self, *, yielding: bool = False) -> None:
        """Fold the lines written since the last fold; never raises.

        With ``yielding`` (the flusher thread), the GIL is let go between
        slices, so a thread logging meanwhile never waits long for it.
        """
        with self._fold_lock:
            if not self.usable:
                return
            with self._lock:
                backlog, self._backlog, self._backlog_bytes = self._backlog, [], 0
            if not backlog:
                return
            rest = self._rest
            data = backlog[0] if len(backlog) == 1 and not rest else b"".join([rest, *backlog])
            try:
                self._fold(data, yielding)
            except Exception:  # _UnusableError, or content nobody foresaw: no summary, no harm
                self.give_up()

    def fold_when_quiet(self) -> None:
        """Fold, yielding, if lines came slower than :data:`FOLD_RATE` since the last fold.

        A backlog left by a burst is folded once the time since the last
        fold makes its rate low enough; never raises.
        """
        now = time.monotonic()
        if self._backlog_bytes > FOLD_RATE * (now - self._folded_at):
            return
        self._folded_at = now
        self.fold(yielding=True)

    def result(self, *, whole: bool = False) -> dict[str, Any] | None:
        """The summary of the whole file, folding what is left first.

        None when there is none to give: nothing was written, the file was not
        all written by this writer, a line is incomplete or could not be
        summarized, or (unless ``whole``) more than :data:`END_FOLD_LIMIT`
        bytes are left to fold.
        """
        if not whole and self._backlog_bytes > END_FOLD_LIMIT:
            self.give_up()
        self.fold()
        with self._fold_lock:
            if not self.usable or not self.seen or self._rest or self._backlog_bytes:
                return None
            ordered = sorted(self._keys.items(), key=lambda item: item[1].first)
            return {
                "file": self.file,
                "bytes": self.seen,
                "metrics": {key: state.to_json() for key, state in ordered},
            }

    # ------------------------------------------------------------------ folding

    def _fold(self, data: bytes | bytearray, yielding: bool) -> None:
        end = data.rfind(b"\n") + 1
        self._rest = bytes(data[end:])
        start = 0
        while start < end:
            cut = data.rfind(b"\n", start, start + _SLICE) + 1 if end - start > _SLICE else end
            if cut <= start:
                cut = data.find(b"\n", start) + 1  # a single line longer than a slice
            self._fold_lines(data[start : cut - 1])
            start = cut
            if yielding and not self.hurry:
                time.sleep(0)

    def _fold_lines(self, body: bytes | bytearray) -> None:
        """Fold complete lines (``body`` is lines without the last newline)."""
        count = body.count(b"\n") + 1
        # Only line ends are newlines (JSON escapes them in strings), and every
        # line is one object orjson wrote: so this array holds exactly the lines.
        records = orjson.loads(b"".join((b"[", body.replace(b"\n", b","), b"]")))
        if len(records) != count:
            raise _UnusableError("not one object per line")
        first_line = self._lines
        self._lines += count
        try:
            steps = list(map(_get_step, records))
            rows = list(map(_get_m, records))
        except (KeyError, TypeError) as error:
            raise _UnusableError("a line without a step or values") from error
        if set(map(type, steps)) != {int}:
            raise _UnusableError("a step that is not an integer")
        ordered = sorted(steps)
        if ordered[0] < _STEP_MIN or ordered[-1] > _STEP_MAX:
            raise _UnusableError("a step beyond 64 bits")
        uniform = type(rows[0]) is dict and len(set(map(len, rows))) == 1 and steps == ordered
        if not (uniform and self._fold_columns(steps, rows, first_line)):
            self._fold_rows(steps, rows, first_line)

    def _fold_columns(self, steps: list[int], rows: list[Any], first_line: int) -> bool:
        """The common case, a column at a time: every line has the same keys, steps never fall.

        In file order, then, rows are in the reader's order (step, then line).
        Returns False (having folded nothing) when the keys differ after all.
        """
        try:
            columns = [(key, list(map(itemgetter(key), rows))) for key in rows[0]]
        except (KeyError, TypeError):
            return False  # not the same keys everywhere
        first, last = (steps[0], first_line), (steps[-1], first_line + len(steps) - 1)
        for slot, (key, column) in enumerate(columns):
            values = kept = column
            places = None
            if not set(map(type, column)) <= _NUMBER_TYPES:  # tagged values: NaN, inf, big ints
                values = [decode_value(value) if type(value) is dict else value for value in column]
                if not set(map(type, values)) <= _NUMBER_TYPES:
                    raise _UnusableError(f"a value that is not a number under {key!r}")
                kept = values
                if math.nan in values:  # noqa: PLW0177 (decode_value's NaN is math.nan itself)
                    places = [i for i, value in enumerate(values) if value == value]  # noqa: PLR0124
                    kept = [values[i] for i in places]
            state = self._key(key, (*first, slot))
            if not kept:  # all NaN
                state.add(len(values), (*first, slot), (last, values[-1]), None, None)
                continue
            low, high = min(kept), max(kept)
            at_low, at_high = kept.index(low), kept.index(high)
            if places is not None:
                at_low, at_high = places[at_low], places[at_high]
            state.add(
                len(values),
                (*first, slot),
                (last, values[-1]),
                (low, (steps[at_low], first_line + at_low)),
                (high, (steps[at_high], first_line + at_high)),
            )
        return True

    def _fold_rows(self, steps: list[int], rows: list[Any], first_line: int) -> None:
        """Any lines, a value at a time (the reference behaviour)."""
        for line, (step, values) in enumerate(zip(steps, rows, strict=True), start=first_line):
            if type(values) is not dict:
                raise _UnusableError("a line without a values object")
            for slot, (key, stored) in enumerate(values.items()):
                value = decode_value(stored) if type(stored) is dict else stored
                if type(value) not in _NUMBERS:
                    raise _UnusableError(f"a value that is not a number under {key!r}")
                at = (step, line)
                one = None if value != value else (value, at)  # noqa: PLR0124 (NaN)
                self._key(key, (step, line, slot)).add(1, (step, line, slot), (at, value), one, one)

    def _key(self, key: str, first: tuple[int, int, int]) -> _Key:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key(first)
        return state


def _stored(value: Any) -> Any:
    """A value in its stored form: NaN, infinities and big ints tagged."""
    return encode_float(value) if type(value) is float else encode_int(value)
