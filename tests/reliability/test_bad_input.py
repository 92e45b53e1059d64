"""Bad input, thousands of examples per target: stored and read back identically, or refused.

For names, metric values, steps, params, tags, notes, run ids, run names and
references given to the command line, hypothesis draws the hostile cases
(empty, huge, control characters, ``/``, ``..``, absolute paths, NUL, lone
surrogates, Unicode normalisation twins, reserved file names; every Python and
NumPy scalar type, NaN payloads, subnormals, huge ints, deep nesting, objects
whose methods raise). Each is compared with ``_oracle.py``, the rules of
docs/format.md written independently: a refusal must be the documented error
(strict mode), nothing may crash the flusher thread, and nothing may be
written outside the store. A lenient run must never raise at all.
"""

from __future__ import annotations

import contextlib
import decimal
import enum
import fractions
import io
import itertools
import pathlib
import struct
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _oracle as oracle
import numpy as np
import pytest
from _disk import changes, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import runjournal
from runjournal.cli import main as cli
from runjournal.errors import (
    InvalidArgumentError,
    InvalidNameError,
    InvalidValueError,
    RunExistsError,
    RunjournalError,
)

EXAMPLES = 2000
"""Examples per target in CI; --soak multiplies them."""

# -- strategies -----------------------------------------------------------------------------

ANY_CHARACTER = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
SPECIAL_NAMES = [
    "",
    " ",
    "/",
    ".",
    "..",
    "../../etc/passwd",
    "/etc/passwd",
    "C:\\Windows\\system32",
    "\\\\server\\share",
    "CON",
    "NUL",
    "nul.txt",
    "AUX",
    "COM1",
    "LPT9",
    "\x00",
    "a\x00b",
    "\n",
    "\x1b[2J\x1b]0;pwned\x07",
    "\u202etxt.exe",
    "caf\u00e9",
    "cafe\u0301",  # the NFD twin of the line above: a different name
    "\ufb01le",  # "fi" ligature, NFKC twin of "file"
    "file",
    "$float",
    "$int",
    "$dict",
    "\udc80",
    "a\ud800b",
    "x" * 100_000,
    "~",
    "*",
    "?",
    "name with spaces",
    "val/AR@100",
    "timing(s)/gen",
]
NAMES = st.one_of(st.sampled_from(SPECIAL_NAMES), st.text(ANY_CHARACTER, max_size=40))


def _float_from_bits(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return value


NAN_PAYLOADS = st.tuples(st.booleans(), st.integers(1, 2**52 - 1)).map(
    lambda pair: _float_from_bits((pair[0] << 63) | 0x7FF0000000000000 | pair[1])
)
SUBNORMALS = st.integers(1, 2**52 - 1).map(_float_from_bits)


class Huge:
    """An int too long to print (hypothesis cannot repr it): made in the test, from its digits."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"Huge(10**{self.digits})"


def unbox(value: Any) -> Any:
    """The value a strategy meant: a :class:`Huge` becomes its int."""
    return 10**value.digits if isinstance(value, Huge) else value


HUGE_INTS = st.one_of(
    st.integers(),
    st.integers(2**63 - 3, 2**64 + 3),
    st.integers(-(2**63) - 3, -(2**63) + 3),
    st.sampled_from([4299, 4300, 5000, 30103]).map(Huge),
)
NUMPY_DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.longdouble,
    np.complex64,
    np.complex128,
    np.clongdouble,
    "datetime64[ns]",
    "datetime64[D]",
    "timedelta64[s]",
    "U3",
    "S3",
]


@st.composite
def numpy_values(draw: st.DrawFn) -> Any:
    dtype = np.dtype(draw(st.sampled_from(NUMPY_DTYPES)))
    shape = draw(st.sampled_from([None, (), (1,), (2, 2)]))
    if shape is None:
        return draw(hnp.from_dtype(dtype))  # a NumPy scalar
    return draw(hnp.arrays(dtype, shape))


class Floaty:
    """An object with __float__: returns what it is given, or raises it."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def __float__(self) -> float:
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Floaty({self.result!r})"


class Hostile:
    """Every method a coercion might call raises."""

    shape = property(lambda self: (_ for _ in ()).throw(RuntimeError("shape")))

    def item(self) -> Any:
        raise RuntimeError("item")

    def __repr__(self) -> str:
        raise RuntimeError("repr")

    def __hash__(self) -> int:
        raise RuntimeError("hash")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq")

    def __lt__(self, other: object) -> bool:
        raise RuntimeError("lt")


class Unsortable:
    """Hashable, but neither ordered nor printable: a set of these cannot be sorted at all."""

    def __lt__(self, other: object) -> bool:
        raise TypeError("no order")

    def __repr__(self) -> str:
        raise RuntimeError("repr")


class Color(enum.Enum):
    RED = "red"
    BIG = 2**70


SCALARS = st.one_of(
    st.booleans(),
    HUGE_INTS,
    st.floats(),
    NAN_PAYLOADS,
    SUBNORMALS,
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, float("inf")]),
)
METRIC_VALUES = st.one_of(
    SCALARS,
    numpy_values(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.fractions(),
    st.complex_numbers(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.none(),
    st.builds(Floaty, st.one_of(st.floats(), st.integers(), st.just(ValueError("no")))),
    st.builds(Hostile),
    st.lists(st.floats(), max_size=2),
)
PARAM_LEAVES = st.one_of(
    SCALARS,
    st.none(),
    st.text(ANY_CHARACTER, max_size=20),
    st.sampled_from(SPECIAL_NAMES[:-8]),
    st.sampled_from([Color.RED, Color.BIG, pathlib.PurePosixPath("/data/x"), Path("rel/y")]),
    st.dates(),
    st.datetimes(),
    st.times(),
    numpy_values(),
    st.complex_numbers(max_magnitude=10),
    st.builds(Hostile),
)
PARAM_KEYS = st.one_of(
    st.sampled_from(SPECIAL_NAMES[:-8]),
    st.text(ANY_CHARACTER, max_size=10),
    st.integers(),
    st.floats(),
    st.booleans(),
)


def _nested(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=3)), max_size=4),
        st.dictionaries(PARAM_KEYS, children, max_size=4),
    )


PARAM_VALUES = st.one_of(
    st.recursive(PARAM_LEAVES, _nested, max_leaves=12),
    st.tuples(st.integers(55, 70), PARAM_LEAVES).map(lambda pair: _deep(*pair)),
)


def _unbox_deep(value: Any) -> Any:
    if isinstance(value, Huge):
        return unbox(value)
    if isinstance(value, list):
        return [_unbox_deep(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_unbox_deep(item) for item in value)
    if isinstance(value, dict):
        return {key: _unbox_deep(item) for key, item in value.items()}
    return value


def _deep(depth: int, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` nested lists and dicts, alternating."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"d": value}
    return value


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The store every example writes to."""
    return tmp_path / "store"


@pytest.fixture
def outside(tmp_path: Path, store: Path) -> Iterator[None]:
    """Fails the test if anything outside the store (in the test's directory) changed."""
    before = snapshot(tmp_path, exclude=(store,))
    yield
    assert changes(before, snapshot(tmp_path, exclude=(store,))) == []


@pytest.fixture
def strict_run(store: Path, outside: None, thread_crashes: list[str]) -> Iterator[runjournal.Run]:
    """A strict run (problems raise) with a busy flusher and heartbeat thread."""
    run = runjournal.start(
        store=store, strict=True, flush_interval=0.002, heartbeat_interval=0.01, capture=False
    )
    yield run
    run.end()


def _examples(soak: int, test: Callable[..., None], **strategies: Any) -> None:
    settings(max_examples=EXAMPLES * soak, deadline=None, database=None)(
        given(**strategies)(test)
    )()


def _read(store: Path, run_id: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing read back may be damaged
        return runjournal.Store(store).run(run_id)


def _count(tally: Any, examples: int, lines: int, mismatches: int) -> None:
    result = tally("bad input (hypothesis)")
    result.repetitions += examples
    result.runs += 1
    result.lines += lines
    result.corrupted += mismatches


# -- metrics ------------------------------------------------------------------------------------


def test_any_metric_name_is_stored_exactly_or_refused(
    store: Path, strict_run: runjournal.Run, soak: int, tally: Any
) -> None:
    """Metric names: any non-empty UTF-8 string is kept exactly; others raise InvalidNameError."""
    steps = itertools.count()
    expected: dict[int, str] = {}

    def one(name: str) -> None:
        step = next(steps)
        if oracle.name(name) is oracle.REJECT:
            with pytest.raises(InvalidNameError):
                strict_run.log({name: 1.0}, step=step)
        else:
            strict_run.log({name: float(step)}, step=step)
            expected[step] = name

    _examples(soak, one, name=NAMES)
    assert strict_run._writer is not None and strict_run._writer._thread is not None
    assert strict_run._writer._thread.is_alive()
    strict_run.end()
    rows = _read(store, strict_run.id).history(raw=True)
    found = {row["step"]: row["key"] for row in rows}
    assert found == expected
    assert all(row["value"] == float(row["step"]) for row in rows)
    _count(tally, next(steps), len(rows), 0)


def test_any_metric_value_is_stored_exactly_or_refused(
    store: Path, strict_run: runjournal.Run, soak: int, tally: Any
) -> None:
    """Metric values of every scalar type: the documented number read back, or InvalidValueError."""
    steps = itertools.count()
    expected: dict[int, Any] = {}

    def one(value: Any) -> None:
        step = next(steps)
        value = unbox(value)
        want = oracle.metric(value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # __float__ returning a subclass
            warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow in float16
            if want is oracle.REJECT:
                with pytest.raises(InvalidValueError):
                    strict_run.log({"v": value}, step=step)
            else:
                strict_run.log({"v": value}, step=step)
                expected[step] = want

    _examples(soak, one, value=METRIC_VALUES)
    strict_run.end()
    rows = _read(store, strict_run.id).history(raw=True)
    found = {row["step"]: row["value"] for row in rows}
    assert found.keys() == expected.keys()
    mismatches = [(s, found[s], v) for s, v in expected.items() if not oracle.same(found[s], v)]
    assert mismatches == []
    _count(tally, next(steps), len(rows), len(mismatches))


def test_any_step_is_stored_exactly_or_refused_and_the_next_step_follows_it(
    store: Path, strict_run: runjournal.Run, soak: int, tally: Any
) -> None:
    """Steps: a signed 64-bit integer (or __index__) is kept, then auto-steps continue after it."""
    logged: list[tuple[int, str]] = []
    counter = itertools.count()

    def one(step: Any) -> None:
        step = unbox(step)
        want = oracle.step(step)
        marker = f"m{next(counter)}"
        if want is oracle.REJECT:
            with pytest.raises(InvalidValueError):
                strict_run.log({marker: 1.0}, step=step)
            return
        strict_run.log({marker: 1.0}, step=step)
        logged.append((want, marker))
        if want < oracle.STEP_MAX:
            strict_run.log({f"{marker}+1": 1.0})  # no step: the one after
            logged.append((want + 1, f"{marker}+1"))

    steps = st.one_of(
        HUGE_INTS,
        st.booleans(),
        st.floats(),
        st.text(max_size=3),
        st.integers(-(2**63), 2**63 - 1).map(np.int64),
        st.integers(0, 2**64 - 1).map(np.uint64),
        st.integers(-100, 100).map(np.int8),
        st.sampled_from(
            [np.bool_(True), np.float64(3.0), decimal.Decimal(3), fractions.Fraction(3)]
        ),
    )
    _examples(soak, one, step=steps)
    strict_run.end()
    rows = _read(store, strict_run.id).history(raw=True)
    assert sorted((row["step"], row["key"]) for row in rows) == sorted(logged)
    _count(tally, next(counter), len(rows), 0)


# -- params, tags, notes -------------------------------------------------------------------


def test_any_params_are_stored_exactly_or_refused(
    store: Path, strict_run: runjournal.Run, soak: int, tally: Any
) -> None:
    """Nested params of every kind: the documented JSON tree read back, or the documented error."""
    counter = itertools.count()
    expected: dict[str, Any] = {}

    def one(value: Any) -> None:
        key = f"k{next(counter)}"
        value = _unbox_deep(value)
        want = oracle.params({key: value})
        if want is oracle.REJECT:
            with pytest.raises((InvalidValueError, InvalidNameError)):
                strict_run.log_params({key: value})
        else:
            strict_run.log_params({key: value})
            expected[key] = want[key]

    _examples(soak, one, value=PARAM_VALUES)
    strict_run.end()
    stored = _read(store, strict_run.id).params
    assert stored.keys() == expected.keys()
    mismatches = [key for key, want in expected.items() if not oracle.same(stored[key], want)]
    assert mismatches == [], [(k, stored[k], expected[k]) for k in mismatches[:3]]
    _count(tally, next(counter), len(expected), len(mismatches))


def test_params_that_hold_themselves_are_refused_naming_the_path(
    strict_run: runjournal.Run,
) -> None:
    """Reference cycles in lists, dicts and across both are refused with InvalidValueError."""
    a: list[Any] = [1]
    a.append(a)
    b: dict[str, Any] = {"x": {}}
    b["x"]["back"] = b
    c: list[Any] = [{"inner": None}]
    c[0]["inner"] = c
    for name, value in (("list", a), ("dict", b), ("mixed", c)):
        with pytest.raises(InvalidValueError, match="contains itself"):
            strict_run.log_params({name: value})
    shared = [1, 2]
    strict_run.log_params({"twice": [shared, shared]})  # shared, not a cycle: fine


def test_any_tag_and_note_is_stored_exactly_or_refused(
    store: Path, strict_run: runjournal.Run, soak: int, tally: Any
) -> None:
    """Tags (names and values) and notes: kept exactly, or refused with the documented error."""
    counter = itertools.count()
    tags: dict[str, Any] = {}
    notes: list[str] = []

    def one(name: str, value: Any, text: str) -> None:
        key = f"{next(counter)}:{name}"
        value = unbox(value)
        want_name, want = oracle.name(key), oracle.tag(value)
        if want_name is oracle.REJECT or want is oracle.REJECT:
            with pytest.raises((InvalidNameError, InvalidValueError)):
                strict_run.tag({key: value})
        else:
            strict_run.tag({key: value})
            tags.update(oracle.redacted({key: want}))
        if oracle.utf8(text):
            strict_run.note(text)
            notes.append(text)
        else:
            with pytest.raises(InvalidValueError):
                strict_run.note(text)

    values = st.one_of(SCALARS, st.none(), st.text(ANY_CHARACTER, max_size=10), numpy_values())
    _examples(soak, one, name=NAMES, value=values, text=st.text(ANY_CHARACTER, max_size=30))
    strict_run.end()
    record = _read(store, strict_run.id)
    assert record.tags.keys() == tags.keys()
    assert all(oracle.same(record.tags[key], want) for key, want in tags.items())
    assert [note.text for note in record.notes] == notes
    _count(tally, next(counter), len(tags) + len(notes), 0)


# -- a lenient run never raises --------------------------------------------------------------


def test_a_lenient_run_never_raises_whatever_it_is_given(
    store: Path, outside: None, soak: int, tally: Any, thread_crashes: list[str]
) -> None:
    """Anything passed to any verb of a non-strict run: no exception, the flusher lives on."""
    run = runjournal.start(
        store=store, strict=False, flush_interval=0.002, heartbeat_interval=0.01, capture=False
    )
    anything = st.one_of(METRIC_VALUES, PARAM_VALUES, st.dictionaries(PARAM_KEYS, METRIC_VALUES))
    verbs = st.sampled_from(["log", "log_step", "log_params", "tag", "tag_kw", "note", "flush"])
    calls = itertools.count()

    def one(verb: str, first: Any, second: Any) -> None:
        next(calls)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the warnings are the point of lenient mode
            if verb == "log":
                run.log(first)
            elif verb == "log_step":
                run.log({"x": 1.0}, step=second)
            elif verb == "log_params":
                run.log_params(first)
            elif verb == "tag":
                run.tag(first)
            elif verb == "tag_kw":
                run.tag(value=second)
            elif verb == "note":
                run.note(first)
            else:
                run.flush()

    _examples(soak, one, verb=verbs, first=anything, second=anything)
    assert run._writer is not None and run._writer._thread is not None
    assert run._writer._thread.is_alive()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run.end()
        record = runjournal.Store(store).run(run.id)
        record.history()
    assert record.status == "completed"
    assert run.dir is not None
    lines = (run.dir / "metrics.jsonl").read_bytes().splitlines()
    assert record.skipped == [], [lines[s.line - 1][:300] for s in record.skipped]
    assert record.errors, "refused values left no error event"
    result = tally("bad input (hypothesis)")
    result.repetitions += next(calls)
    result.runs += 1


# -- run ids, names, experiments, and references on the command line -------------------------


def test_any_run_id_name_and_experiment_is_stored_exactly_or_refused(
    store: Path, outside: None, soak: int, tally: Any
) -> None:
    """start(run_id=, name=, experiment=): a directory named exactly the id, or refused."""
    made: dict[str, tuple[str, str]] = {}
    ids = st.one_of(
        st.sampled_from(SPECIAL_NAMES),
        st.text(ANY_CHARACTER, max_size=12),
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,140}", fullmatch=True),
    )
    texts = st.one_of(st.sampled_from(SPECIAL_NAMES), st.text(ANY_CHARACTER, max_size=20))

    def one(run_id: str, name: str, experiment: str) -> None:
        valid_id = runjournal.format.RUN_ID_PATTERN.fullmatch(run_id) is not None
        valid_text = all(text.strip() and oracle.utf8(text) for text in (name, experiment))
        if not (valid_id and valid_text):
            with pytest.raises(InvalidArgumentError):
                runjournal.start(experiment, name=name, run_id=run_id, store=store, capture=False)
            return
        if run_id in made:
            with pytest.raises(RunExistsError):
                runjournal.start(experiment, name=name, run_id=run_id, store=store, capture=False)
            return
        runjournal.start(experiment, name=name, run_id=run_id, store=store, capture=False).end()
        made[run_id] = (name, experiment)

    settings(max_examples=max(300, EXAMPLES // 3) * soak, deadline=None, database=None)(
        given(run_id=ids, name=texts, experiment=texts)(one)
    )()
    on_disk = {path.name for path in (store / "runs").iterdir()} if made else set()
    assert on_disk == set(made)
    for record in runjournal.Store(store).runs() if made else []:
        assert (record.name, record.experiment) == made[record.id]
    result = tally("bad input (hypothesis)")
    result.repetitions += len(made)
    result.runs += len(made)


def test_any_reference_on_the_command_line_reads_or_says_no_and_touches_nothing(
    store: Path, outside: None, soak: int, tally: Any
) -> None:
    """`show`/`close` with any reference ('../../etc', '/etc/passwd', NUL): exit 0/1, no trace."""
    for name in ("alpha", "beta"):
        runjournal.start(store=store, run_id=name, name=name, capture=False).end()
    before = _contents(store)
    refs = st.one_of(
        st.sampled_from([*SPECIAL_NAMES, "../../etc", "runs/alpha", "alpha/../beta", "-", "--"]),
        st.text(ANY_CHARACTER, max_size=15),
    )

    def one(command: str, ref: str) -> None:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli(["--store", str(store), command, "--", ref])
        assert code in (0, 1), (command, ref, code, err.getvalue())
        assert "Traceback" not in err.getvalue()
        assert "\x1b" not in out.getvalue() + err.getvalue()
        if code == 1:
            assert err.getvalue().startswith("runjournal: error: ")

    settings(max_examples=EXAMPLES * soak, deadline=None, database=None)(
        given(command=st.sampled_from(["show", "close"]), ref=refs)(one)
    )()
    assert _contents(store) == before
    tally("bad input (hypothesis)").repetitions += EXAMPLES * soak


def _contents(store: Path) -> dict[Path, bytes]:
    """Every file of the store but its rebuildable ``.cache/``, which readers may fill."""
    return {
        path: path.read_bytes()
        for path in store.rglob("*")
        if path.is_file() and ".cache" not in path.relative_to(store).parts
    }


def test_every_refusal_is_a_runjournal_error(strict_run: runjournal.Run) -> None:
    """What strict mode raises is always a RunjournalError subclass, never a bare TypeError."""
    for call in (
        lambda: strict_run.log({"x": Hostile()}),
        lambda: strict_run.log(Hostile()),  # type: ignore[arg-type]
        lambda: strict_run.log({"x": 1.0}, step=Hostile()),  # type: ignore[arg-type]
        lambda: strict_run.log_params({"x": {Unsortable(), Unsortable()}}),
        lambda: strict_run.log_params(Hostile()),
        lambda: strict_run.tag(x=Hostile()),
        lambda: strict_run.note(Hostile()),  # type: ignore[arg-type]
        lambda: strict_run.log({"x": np.longdouble(1.5)}, step=2**63),
        lambda: strict_run.log_params({"x": 10**5000}),
    ):
        with pytest.raises(RunjournalError):
            call()


def test_a_heartbeat_during_the_report_of_a_refused_value_finds_its_message(
    store: Path, outside: None, monkeypatch: pytest.MonkeyPatch, thread_crashes: list[str]
) -> None:
    """A heartbeat landing between a refusal's count and its event writes the count and lives on."""
    run = runjournal.start(
        store=store, strict=False, flush_interval=3600, heartbeat_interval=3600, capture=False
    )

    def heartbeat_now(*args: Any, **kwargs: Any) -> None:
        run._next_heartbeat = 0.0
        run._tick()  # what the flusher thread does, at the worst moment: mid-report

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", heartbeat_now)
        run.log({"x": "not a number"})
    run.end()
    errors = _read(store, run.id).errors
    assert [(error.cause, error.key, error.count) for error in errors] == [
        ("invalid_value", "x", 1)
    ]
    assert "not a number" in errors[0].message
