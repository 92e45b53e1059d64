"""Optional engines: SQL with DuckDB, Polars frames, Parquet and CSV, DuckDB's own reader."""

from __future__ import annotations

import builtins
import math
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from _runfiles import StoreFiles
from runjournal import cli
from runjournal.errors import InvalidArgumentError, MissingDependencyError
from runjournal.query import Store, export, load_metrics, load_runs, sql

pd = pytest.importorskip("pandas")

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    files = StoreFiles(tmp_path / ".runjournal")
    a = files.ended_run("a").params({"lr": 0.1, "model": {"name": "resnet", "widths": [64, 128]}})
    for step in range(4):
        a.metrics(step, {"loss": 1.0 / (step + 1), "acc": step * 0.25})
    a.metrics(4, {"loss": float("nan"), "tokens": 2**40})
    b = files.ended_run("b", start=1795000100.0).params({"lr": 0.01, "model": {"name": "vit"}})
    b.metrics(0, {"loss": 2.0}).metrics(1, {"loss": 1.5}).event("tags", tags={"best": True})
    b.metrics(0, {"rate": 5.0}, file_name="metrics.rank1.jsonl")
    return Store(files.root)


def _without(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``import <name>`` fail, as if the package were not installed."""
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".", maxsplit=1)[0] in names:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr("importlib.import_module", fake_import)


@pytest.mark.parametrize(
    ("call", "missing", "extra"),
    [
        (lambda s: sql("SELECT 1", s), "duckdb", "duckdb"),
        (lambda s: load_runs(s, engine="polars"), "polars", "polars"),
        (lambda s: s.to_polars(), "polars", "polars"),
        (lambda s: export(s, "out", format="parquet"), "pyarrow", "parquet"),
    ],
)
def test_a_missing_extra_says_how_to_install_it(
    store: Store, monkeypatch: pytest.MonkeyPatch, call: Any, missing: str, extra: str
) -> None:
    """Without the package, each engine raises MissingDependencyError with the pip command."""
    _without(monkeypatch, missing)
    with pytest.raises(MissingDependencyError, match=re.escape(f"runjournal[{extra}]")):
        call(store)


def test_sql_sees_runs_params_and_metrics(store: Store) -> None:
    """runjournal.sql() answers from the views runs, params and metrics, as the loaders do."""
    pytest.importorskip("duckdb", reason="the duckdb extra is not installed")
    runs = sql('SELECT run_id, "params.lr" FROM runs ORDER BY run_id', store)
    assert runs.values.tolist() == [["a", 0.1], ["b", 0.01]]
    params = sql("SELECT run_id, key, value, number FROM params ORDER BY run_id, key", store)
    assert params[params["key"] == "model.widths"]["value"].tolist() == ["[64,128]"]
    assert params[params["key"] == "lr"]["number"].tolist() == [0.1, 0.01]
    best = sql(
        "SELECT run_id, min(value) AS best FROM metrics WHERE key = 'loss'"
        " GROUP BY run_id ORDER BY run_id",
        store,
    )
    assert best.values.tolist() == [["a", 0.25], ["b", 1.5]]
    counted = sql("SELECT count(*) AS n FROM metrics", store, engine="polars")
    assert counted["n"].to_list() == [len(load_metrics(store))]
    with pytest.raises(InvalidArgumentError, match="DuckDB could not run the query"):
        sql("SELECT nope FROM runs", store)


def test_polars_frames_hold_what_the_pandas_ones_hold(store: Store) -> None:
    """load_runs/load_metrics with engine='polars' give the same values as the pandas frames."""
    pytest.importorskip("polars", reason="the polars extra is not installed")
    runs = load_runs(store, engine="polars")
    expected = load_runs(store)
    assert runs.columns == list(expected.columns)
    assert runs["run_id"].to_list() == ["a", "b"]
    assert runs["params.lr"].to_list() == [0.1, 0.01]
    assert runs["params.model.widths"].to_list() == ["[64,128]", None]
    assert runs["tags.best"].to_list() == [None, True]
    assert str(runs["start_time"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
    history = load_metrics(store, engine="polars")
    pandas_history = load_metrics(store)
    assert history.columns == list(pandas_history.columns)
    assert history["step"].to_list() == pandas_history["step"].tolist()
    assert history["writer"].to_list() == [
        None if isinstance(v, float) else v for v in pandas_history["writer"].tolist()
    ]
    values = history["value"].to_list()
    assert any(math.isnan(v) for v in values)
    filtered = store.to_polars(where="params.lr < 0.05")
    assert filtered["run_id"].to_list() == ["b"]


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_export_writes_runs_params_and_history(
    store: Store, tmp_path: Path, format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runjournal export` writes three files that read back to the loaders' frames."""
    if format == "parquet":
        pytest.importorskip("pyarrow", reason="the parquet extra is not installed")
    destination = tmp_path / "exported"
    code = cli.main(["--store", str(store.path), "export", "--format", format, str(destination)])
    assert code == 0
    assert capsys.readouterr().out.count("wrote") == 3
    read = pd.read_parquet if format == "parquet" else pd.read_csv
    runs = read(destination / f"runs.{format}")
    assert runs["run_id"].tolist() == ["a", "b"]
    history = read(destination / f"metrics.{format}")
    expected = load_metrics(store)
    assert history["value"].tolist()[:4] == expected["value"].tolist()[:4]
    assert len(history) == len(expected)
    params = read(destination / f"params.{format}")
    assert set(params["key"]) == {"lr", "model.name", "model.widths"}
    only_b = export(store, tmp_path / "b", format=format, where="params.lr < 0.05")
    assert read(only_b[0])["run_id"].tolist() == ["b"]


def _recipe() -> str:
    text = (DOCS / "query.md").read_text(encoding="utf-8")
    block = text.split("<!-- duckdb-recipe -->", 1)[1]
    return block.split("```sql", 1)[1].split("```", 1)[0]


def test_duckdb_reads_the_metrics_files_without_runjournal(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read_json recipe of docs/query.md gives the raw history, NaN and torn lines handled."""
    duckdb = pytest.importorskip("duckdb", reason="the duckdb extra is not installed")
    (store.path / "runs" / "a" / "metrics.jsonl").open("ab").write(b'{"step": 9, "m": {"lo')
    monkeypatch.chdir(store.path.parent)
    got = duckdb.sql(_recipe()).df().sort_values(["run_id", "step", "key"], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the torn line, reported by runjournal
        expected = load_metrics(store, raw=True)
    expected = expected.sort_values(["run_id", "step", "key"], ignore_index=True)
    assert got["run_id"].tolist() == expected["run_id"].tolist()
    assert got["key"].tolist() == expected["key"].tolist()
    assert got["step"].tolist() == expected["step"].tolist()
    assert got["value"].tolist() == pytest.approx(expected["value"].tolist(), nan_ok=True)
