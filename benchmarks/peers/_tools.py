"""The tools measured, by name, and how to load their adapters."""

from __future__ import annotations

import importlib

from benchmarks.peers._adapter import Adapter

TOOLS = {
    "floor": "tool_floor:Floor",
    "runjournal": "tool_runjournal:Runjournal",
    "mlflow-sqlite": "tool_mlflow:MlflowSqlite",
    "mlflow-file": "tool_mlflow:MlflowFile",
    "wandb": "tool_wandb:Wandb",
    "trackio": "tool_trackio:Trackio",
    "dvclive": "tool_dvclive:Dvclive",
    "aim": "tool_aim:Aim",
    "mltraq": "tool_mltraq:Mltraq",
}
"""Tool name -> ``module:class`` under ``benchmarks.peers``."""


def adapter(name: str) -> Adapter:
    """A fresh adapter of the tool ``name``; importing it imports none of the tool."""
    module_name, class_name = TOOLS[name].split(":")
    module = importlib.import_module(f"benchmarks.peers.{module_name}")
    cls: type[Adapter] = getattr(module, class_name)
    return cls()
