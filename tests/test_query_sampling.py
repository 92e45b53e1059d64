"""load_metrics options: key projection, step ranges, downsampling keeping spikes, wide frames."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _runfiles import StoreFiles
from runjournal.errors import InvalidArgumentError
from runjournal.query import Store, load_metrics
from runjournal.query._downsample import Sampling
from runjournal.query._pandas import metrics_frame

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    files = StoreFiles(tmp_path / "store")
    a = files.ended_run("a")
    for step in range(300):
        spike = 50.0 if step == 137 else (-5.0 if step == 251 else math.sin(step / 10))
        a.metrics(step, {"loss": spike, "lr": 0.001, "acc": float("nan") if step == 5 else step})
    b = files.ended_run("b", start=1795000100.0)
    for step in range(40):
        b.metrics(step, {"loss": 1.0 / (step + 1)})
        b.metrics(step, {"loss": 2.0 / (step + 1)}, file_name="metrics.rank1.jsonl")
    return Store(files.root)


def test_keys_and_steps_select_rows(store: Store) -> None:
    """keys= reads only those keys; steps=(lo, hi) keeps an inclusive range, either side open."""
    frame = load_metrics(store, keys=["loss"], steps=(10, 12))
    assert set(frame["key"]) == {"loss"}
    assert sorted(set(frame["step"])) == [10, 11, 12]
    assert load_metrics(store, runs="a", keys="acc", steps=(298, None))["step"].tolist() == [
        298,
        299,
    ]
    assert load_metrics(store, keys=["no-such-key"]).empty


@pytest.mark.parametrize("options", [{"every": 25}, {"max_points": 40}, {"max_points": 4}])
def test_downsampling_keeps_every_spike_and_bounds_the_points(
    store: Store, options: dict[str, int]
) -> None:
    """Each series keeps its first and last point and every bucket's extremes, so spikes stay."""
    frame = load_metrics(store, keys="loss", **options)
    series = frame.groupby(["run_id", "writer"], dropna=False)
    if "max_points" in options:
        assert series.size().max() <= options["max_points"]
    else:
        assert series.size().max() <= 4 * math.ceil(300 / options["every"])
    a = frame[frame["run_id"] == "a"]
    assert {50.0, -5.0} <= set(a["value"])
    assert a["step"].iloc[0] == 0 and a["step"].iloc[-1] == 299
    assert frame.groupby("run_id")["step"].apply(lambda s: s.is_monotonic_increasing).all()


def test_rows_and_frames_downsample_alike(store: Store) -> None:
    """Store.metrics(every=...) keeps exactly the rows the frame keeps."""
    for options in ({"every": 7}, {"max_points": 12}):
        rows = store.metrics(**options)
        pd.testing.assert_frame_equal(metrics_frame(rows), load_metrics(store, **options))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=60),
    st.integers(min_value=2, max_value=9),
)
def test_the_numpy_and_python_rules_keep_the_same_points(values: list[float], every: int) -> None:
    """The vectorised downsampling keeps exactly the points of the plain one."""
    sampling = Sampling.build(every, None)
    mask = sampling.mask(np.array(values, dtype=np.float64))
    assert np.flatnonzero(mask).tolist() == sampling.keep(values)


def test_wide_frames_have_a_column_per_key(store: Store) -> None:
    """wide=True: one row per run, writer and step; one column per key, the last value there."""
    wide = load_metrics(store, runs="a", steps=(4, 6), wide=True)
    assert list(wide.columns) == ["run_id", "step", "time", "acc", "loss", "lr"]
    assert wide["step"].tolist() == [4, 5, 6]
    assert math.isnan(wide["acc"].tolist()[1])
    both = load_metrics(store, runs="b", keys="loss", steps=(0, 1), wide=True)
    assert list(both.columns) == ["run_id", "writer", "step", "time", "loss"]
    assert both["writer"].fillna("main").tolist() == ["main", "rank1", "main", "rank1"]
    assert both[["step", "loss"]].values.tolist() == [[0, 1.0], [0, 2.0], [1, 0.5], [1, 1.0]]
    with pytest.raises(InvalidArgumentError, match="wide"):
        load_metrics(store, wide=True, raw=True)


@pytest.mark.parametrize(
    "options",
    [{"every": 0}, {"max_points": 3}, {"every": 2, "max_points": 10}, {"every": True}],
)
def test_bad_sampling_options_are_refused(store: Store, options: dict[str, int]) -> None:
    """every= and max_points= take positive ints (max_points at least 4), not both."""
    with pytest.raises(InvalidArgumentError):
        load_metrics(store, **options)
