"""Medians, ratios to runjournal, and the Markdown table of a benchmark session."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.peers._workload import Sizes

Samples = dict[str, dict[str, list[dict[str, Any]]]]

ROWS = (
    ("start_s", "(1) import + start + 1 param + end, s", "{:.3f}"),
    ("hot_us_per_point", "(2) hot loop, µs per point, finish included", "{:.2f}"),
    ("many_ms_per_run", "(3) 200 runs, ms per run", "{:.1f}"),
    ("table_cold_s", "(4a) runs table, s (no cache)", "{:.3f}"),
    ("table_warm_s", "(4a) runs table, s (second read)", "{:.3f}"),
    ("history_cold_s", "(4b) long history, s (no cache)", "{:.3f}"),
    ("history_warm_s", "(4b) long history, s (second read)", "{:.3f}"),
    ("bytes_per_point", "(5) store bytes per point", "{:.1f}"),
    ("files", "(5) files in the store", "{:.0f}"),
)


def _median(samples: list[dict[str, Any]], key: str) -> float | None:
    values = [s[key] for s in samples if key in s and "error" not in s]
    return statistics.median(values) if values else None


def _timed_out(samples: list[dict[str, Any]]) -> float | None:
    """The timeout, when every sample of a scenario ran into it (the time is at least that)."""
    limits = [s.get("timed_out") for s in samples]
    return max(limits) if limits and all(limits) else None  # type: ignore[type-var]


def _per_tool(
    samples: dict[str, list[dict[str, Any]]], sizes: Sizes, noop_wall: float
) -> dict[str, Any]:
    """The derived figures of one tool (None where it has no valid sample)."""

    def get(scenario: str, key: str = "seconds") -> float | None:
        return _median(samples.get(scenario, []), key)

    def scaled(value: float | None, factor: float) -> float | None:
        return None if value is None else value * factor

    wall = get("start", "wall")

    def bound(scenario: str, factor: float) -> float | None:
        # The timeout covers the start-up too: what is left of it is a lower bound.
        limit = _timed_out(samples.get(scenario, []))
        return None if limit is None else max(0.0, limit - (wall or 0.0)) * factor

    size = get("bytes", "bytes")
    jsonl = [s.get("bytes_by_suffix", {}).get(".jsonl") for s in samples.get("bytes", [])]
    return {
        "start_s": None if wall is None else wall - noop_wall,
        "start_in_process_s": get("start"),
        "hot_us_per_point": scaled(get("hot"), 1e6 / sizes.hot_points),
        "many_ms_per_run": scaled(get("many"), 1e3 / sizes.runs),
        "table_cold_s": get("table-cold"),
        "table_warm_s": get("table"),
        "table_cold_with_import_s": get("table-cold", "total_seconds"),
        "history_cold_s": get("history-cold"),
        "history_warm_s": get("history"),
        "history_cold_with_import_s": get("history-cold", "total_seconds"),
        "bytes_per_point": scaled(size, 1 / sizes.many_points),
        "jsonl_bytes_per_point": (
            statistics.median(jsonl) / sizes.many_points if all(jsonl) and jsonl else None
        ),
        "files": get("bytes", "files"),
        "at_least": {
            key: value
            for key, value in {
                "hot_us_per_point": bound("hot", 1e6 / sizes.hot_points),
                "many_ms_per_run": bound("many", 1e3 / sizes.runs),
            }.items()
            if value is not None
        },
        "table_rows": get("table-cold", "rows"),
        "history_rows": get("history-cold", "rows"),
    }


def _problems(samples: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    found = {}
    for scenario, taken in samples.items():
        for sample in taken:
            reason = sample.get("unsupported") or sample.get("error")
            if reason:
                found[scenario] = str(reason)
    return found


def summarize(samples: Samples, sizes: Sizes) -> dict[str, Any]:
    """Medians per tool, ratios to runjournal, sample counts, load averages, problems."""
    noop_wall = _median(samples.get("floor", {}).get("noop", []), "wall") or 0.0
    medians = {
        tool: _per_tool(per_tool, sizes, noop_wall)
        for tool, per_tool in samples.items()
        if tool != "floor" or per_tool.get("start")
    }
    base = medians.get("runjournal", {})
    ratios = {
        tool: {
            key: value / base[key]
            for key, value in figures.items()
            if isinstance(value, float | int) and base.get(key)
        }
        for tool, figures in medians.items()
    }
    loads = [
        sample["loadavg"]
        for per_tool in samples.values()
        for taken in per_tool.values()
        for sample in taken
        if "loadavg" in sample
    ]
    return {
        "noop_wall_s": noop_wall,
        "medians": medians,
        "ratios_to_runjournal": ratios,
        "sample_counts": {
            tool: {scenario: len(taken) for scenario, taken in per.items()}
            for tool, per in samples.items()
        },
        "loadavg_during": {
            "min": min(loads, default=None),
            "median": statistics.median(loads) if loads else None,
            "max": max(loads, default=None),
        },
        "problems": {tool: p for tool, per in samples.items() if (p := _problems(per))},
    }


def markdown(results: dict[str, Any]) -> str:
    """The scenarios x tools table: each cell the median and its ratio to runjournal."""
    others = [tool for tool in results["medians"] if tool not in ("runjournal", "floor")]
    tools = [tool for tool in ("runjournal", *others, "floor") if tool in results["medians"]]
    lines = [
        "| scenario | " + " | ".join(tools) + " |",
        "| --- | " + " | ".join("---" for _ in tools) + " |",
    ]
    for key, label, form in ROWS:
        cells = []
        for tool in tools:
            value = results["medians"][tool].get(key)
            ratio = results["ratios_to_runjournal"][tool].get(key)
            floor = results["medians"][tool].get("at_least", {}).get(key)
            base = results["medians"].get("runjournal", {}).get(key)
            if value is None and floor is not None and base:
                cells.append(f">{form.format(floor)} (>{floor / base:.2g}x)")
            elif value is None:
                cells.append(_reason(results, tool, key))
            elif tool == "runjournal" or ratio is None:
                cells.append(form.format(value))
            else:
                cells.append(f"{form.format(value)} ({ratio:.2g}x)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _reason(results: dict[str, Any], tool: str, key: str) -> str:
    scenario = {
        "start_s": "start",
        "hot_us_per_point": "hot",
        "many_ms_per_run": "many",
        "table_cold_s": "table-cold",
        "table_warm_s": "table",
        "history_cold_s": "history-cold",
        "history_warm_s": "history",
    }.get(key, "bytes")
    problem = results["problems"].get(tool, {}).get(scenario)
    return "n/a" if problem is None else "n/a†"


PEERS = ("mlflow-sqlite", "mlflow-file", "wandb", "trackio", "dvclive", "aim", "mltraq")


def _fastest_peer(medians: dict[str, dict[str, Any]], key: str) -> tuple[str, float] | None:
    found = [(medians[t][key], t) for t in PEERS if t in medians and medians[t].get(key)]
    return (min(found)[1], min(found)[0]) if found else None


def _speedup(slower: float | None, faster: float | None) -> float | None:
    return slower / faster if slower and faster else None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of issue 5 that these scenarios measure: the figure, and met or not.

    ``speedup`` is how many times runjournal is faster (or smaller) than the
    reference; the target asks for at least ``needed``.
    """
    medians = results["medians"]
    rj, floor = medians.get("runjournal", {}), medians.get("floor", {})
    checks: list[dict[str, Any]] = []

    def check(target: str, key: str, reference: float | None, needed: float) -> None:
        speedup = _speedup(reference, rj.get(key))
        met = None if speedup is None else speedup >= needed
        checks.append({"target": target, "speedup": speedup, "needed": needed, "met": met})

    def peer(tool: str, key: str) -> float | None:
        value = medians.get(tool, {}).get(key)
        return value if isinstance(value, float) else None

    check("hot loop within 2x of the floor", "hot_us_per_point", floor.get("hot_us_per_point"), 0.5)
    for tool, needed in (("mltraq", 3), ("trackio", 10)):
        check(
            f"hot loop {needed}x faster than {tool}",
            "hot_us_per_point",
            peer(tool, "hot_us_per_point"),
            needed,
        )
    if fastest := _fastest_peer(medians, "start_s"):
        check(f"start-up 5x faster than the fastest peer, {fastest[0]}", "start_s", fastest[1], 5)
    for tool, needed in (("mltraq", 2), ("trackio", 3)):
        check(
            f"many runs {needed}x faster per run than {tool}",
            "many_ms_per_run",
            peer(tool, "many_ms_per_run"),
            needed,
        )
    if fastest := _fastest_peer(medians, "table_cold_s"):
        check(
            f"runs table 10x faster than the fastest peer, {fastest[0]}",
            "table_cold_s",
            fastest[1],
            10,
        )
    mlflow = [v for t in ("mlflow-sqlite", "mlflow-file") if (v := peer(t, "table_cold_s"))]
    check(
        "runs table 20x faster than MLflow search_runs",
        "table_cold_s",
        min(mlflow, default=None),
        20,
    )
    check(
        "history no slower than the floor, cold", "history_cold_s", floor.get("history_cold_s"), 1
    )
    check(
        "history 4x faster than the floor, warm", "history_warm_s", floor.get("history_cold_s"), 4
    )
    check("at most 30 bytes per point in the .jsonl files", "jsonl_bytes_per_point", 30.0, 1)
    return checks
