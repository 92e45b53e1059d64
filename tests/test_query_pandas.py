"""load_runs and load_metrics: DataFrame columns, dtypes and exact values."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas", reason="the pandas extra is not installed")

from hypothesis import given, settings  # noqa: E402

from _histories import expected_rows, history_lines, same_value  # noqa: E402
from _runfiles import T0, StoreFiles  # noqa: E402
from runjournal.errors import MissingDependencyError  # noqa: E402
from runjournal.query import Store, load_metrics, load_runs  # noqa: E402

BASE_COLUMNS = [
    "run_id",
    "name",
    "experiment",
    "status",
    "start_time",
    "end_time",
    "duration",
    "host",
    "git.commit",
    "git.branch",
    "git.dirty",
]


@pytest.fixture
def files(tmp_path: Path) -> StoreFiles:
    return StoreFiles(tmp_path / "store")


def test_load_runs_columns_come_in_the_documented_order(files: StoreFiles) -> None:
    """Base columns, then params.*, metrics.* and tags.*, each group sorted by name."""
    run = files.ended_run("r1").params({"lr": 0.1, "model": {"depth": 50}})
    run.metrics(0, {"val/acc": 0.5, "loss": 1.0})
    run.event("tags", tags={"z": "last", "baseline": True})
    frame = load_runs(files.root)
    assert list(frame.columns) == [
        *BASE_COLUMNS,
        "params.lr",
        "params.model.depth",
        "metrics.loss",
        "metrics.val/acc",
        "tags.baseline",
        "tags.z",
    ]
    row = frame.iloc[0]
    assert (row["run_id"], row["params.model.depth"], row["metrics.val/acc"]) == ("r1", 50, 0.5)


def test_load_runs_dtypes_are_utc_times_and_float_seconds(files: StoreFiles) -> None:
    """start_time and end_time are datetime64[ns, UTC]; duration is float64 seconds."""
    files.ended_run("r1")
    files.run("r2").start(time=T0 + 5)  # not ended: NaT and NaN
    frame = load_runs(files.root)
    assert str(frame["start_time"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["end_time"].dtype) == "datetime64[ns, UTC]"
    assert frame["duration"].dtype == "float64"
    assert frame["start_time"][0] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert frame["duration"][0] == 60.0 and math.isnan(frame["duration"][1])
    assert pd.isna(frame["end_time"][1])


def test_load_runs_filters_like_store_runs(files: StoreFiles) -> None:
    """The filters of load_runs are those of Store.runs."""
    files.run("a").start(experiment="mnist").end()
    files.run("b").start(experiment="cifar").end()
    assert list(load_runs(files.root, experiment="cifar")["run_id"]) == ["b"]
    assert list(Store(files.root).to_pandas(status="completed")["run_id"]) == ["a", "b"]


def test_empty_results_still_have_their_columns(files: StoreFiles) -> None:
    """An empty store gives frames with the documented columns and dtypes."""
    runs = load_runs(files.root)
    assert list(runs.columns) == BASE_COLUMNS and len(runs) == 0
    assert str(runs["start_time"].dtype) == "datetime64[ns, UTC]"
    history = load_metrics(files.root)
    assert list(history.columns) == ["run_id", "step", "time", "key", "value"]
    assert (history["step"].dtype, history["value"].dtype) == ("int64", "float64")
    assert str(history["time"].dtype) == "datetime64[ns, UTC]"


def test_load_metrics_is_long_with_int_steps_and_utc_times(files: StoreFiles) -> None:
    """One row per value: run_id, step (int64), time (UTC), key, value (float64)."""
    files.ended_run("r1").metrics(0, {"loss": 1.0, "tokens": 4096}).metrics(1, {"loss": 0.5})
    frame = load_metrics(files.root)
    assert list(frame.columns) == ["run_id", "step", "time", "key", "value"]
    assert frame["step"].dtype == "int64" and frame["value"].dtype == "float64"
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert frame.values.tolist()[0][:2] == ["r1", 0]
    assert list(frame["value"]) == [1.0, 4096.0, 0.5]
    assert frame["time"][2] == pd.Timestamp(T0 + 1, unit="s", tz="UTC")


def test_load_metrics_raw_adds_the_segment_and_keeps_replaced_rows(files: StoreFiles) -> None:
    """raw=True keeps the rows a resumed run replaced and says their segment."""
    run = files.run("r1").start().metrics(1, {"loss": 1.0})
    run.resume(1).metrics(1, {"loss": 0.5}, seg=1)
    assert list(load_metrics(files.root)["value"]) == [0.5]
    raw = load_metrics(files.root, raw=True)
    assert list(raw["segment"]) == [0, 1] and raw["segment"].dtype == "int64"
    assert list(Store(files.root).metrics_to_pandas(raw=True)["value"]) == [1.0, 0.5]


def test_load_metrics_has_a_writer_column_when_a_run_has_several_files(files: StoreFiles) -> None:
    """Rows say their writer when a run has extra metrics.<writer>.jsonl files."""
    run = files.ended_run("r1").metrics(0, {"loss": 1.0})
    run.metrics(0, {"loss": 2.0}, file_name="metrics.rank1.jsonl")
    frame = load_metrics(files.root)
    assert list(frame.columns)[-1] == "writer"
    assert list(frame["writer"].fillna("main")) == ["main", "rank1"]


def test_float_values_are_exact_including_nan_infinities_and_negative_zero(
    files: StoreFiles,
) -> None:
    """Floats come back bit-exact in a float64 column: NaN, ±inf, -0.0, subnormals."""
    values = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "nzero": -0.0, "tiny": 5e-324}
    files.ended_run("r1").metrics(0, values)
    frame = load_metrics(files.root)
    assert frame["value"].dtype == "float64"
    read = dict(zip(frame["key"], frame["value"], strict=True))
    assert all(same_value(float(read[key]), value) for key, value in values.items())


@pytest.mark.parametrize("big", [2**63, 2**70, -(2**63) - 1, 2**53 + 1])
def test_ints_beyond_float_precision_make_an_exact_object_column(
    files: StoreFiles, big: int
) -> None:
    """An int above 2**53 in magnitude keeps the value column as exact Python objects."""
    files.ended_run("r1").metrics(0, {"tokens": big, "loss": 0.5, "nan": math.nan})
    frame = load_metrics(files.root)
    assert frame["value"].dtype == object
    values = dict(zip(frame["key"], frame["value"], strict=True))
    assert values["tokens"] == big and type(values["tokens"]) is int
    assert values["loss"] == 0.5 and math.isnan(values["nan"])
    runs = load_runs(files.root)
    assert runs["metrics.tokens"].dtype == object and runs["metrics.tokens"][0] == big
    assert runs["metrics.loss"].dtype == "float64"


def test_ints_within_float_precision_stay_in_a_float_column(files: StoreFiles) -> None:
    """Ints up to 2**53 are exact as float64, so they do not force an object column."""
    files.ended_run("r1").metrics(0, {"tokens": 2**53, "neg": -(2**53)})
    frame = load_metrics(files.root)
    assert frame["value"].dtype == "float64"
    assert sorted(frame["value"]) == [-(2.0**53), 2.0**53]


def test_missing_pandas_raises_with_the_install_command(
    files: StoreFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pandas, the DataFrame functions say how to install the extra."""
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingDependencyError) as raised:
        load_runs(files.root)
    assert str(raised.value) == "pandas is not installed: pip install 'runjournal[pandas]'"
    assert Store(files.root).runs() == []  # the plain-Python API works without it


def test_importing_the_query_module_does_not_import_pandas() -> None:
    """import runjournal.query stays light: pandas is imported on first use only."""
    code = "import sys, runjournal.query; print('pandas' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


_run_numbers = itertools.count()


@settings(max_examples=60, deadline=None)
@given(lines=history_lines)
def test_any_metric_history_reads_back_identical_through_load_metrics(
    tmp_path_factory: pytest.TempPathFactory, lines: list[tuple[int, dict]]
) -> None:
    """Every logged value compares identical in the value column, whatever its dtype."""
    files = StoreFiles(tmp_path_factory.getbasetemp() / "pandas-property-store")
    run = files.ended_run(f"run-{next(_run_numbers)}")
    for step, values in lines:
        run.metrics(step, values, time=T0)
    frame = load_metrics(files.root, runs=[run.id])
    expected = expected_rows(lines)
    assert list(zip(frame["step"], frame["key"], strict=True)) == [(s, k) for s, k, _ in expected]
    exact = frame["value"].dtype == object
    for read, (_, _, logged) in zip(frame["value"], expected, strict=True):
        if exact or isinstance(logged, float):
            assert same_value(read if exact else float(read), logged)
        else:  # an int up to 2**53 in a float64 column: the same number, exactly
            assert abs(logged) <= 2**53 and float(read) == logged


def test_int_only_param_and_metric_columns_keep_their_ints(files: StoreFiles) -> None:
    """params.epochs logged as 100 reads 100 (nullable Int64), missing values as <NA>."""
    files.ended_run("r1").params({"epochs": 100, "lr": 0.1}).metrics(0, {"tokens": 7})
    files.ended_run("r2", start=T0 + 1).params({"lr": 0.2})
    frame = load_runs(files.root).set_index("run_id")
    assert str(frame["params.epochs"].dtype) == "Int64"
    assert frame.loc["r1", "params.epochs"] == 100 and frame["params.epochs"].isna()["r2"]
    assert str(frame["metrics.tokens"].dtype) == "Int64"
    assert frame["params.lr"].dtype == "float64"
