"""runjournal beside MLflow, W&B, trackio, DVCLive, Aim and MLtraq, doing the same work.

Each tool has one adapter module (``tool_<name>.py``) that uses the tool's own
idiomatic API for five scenarios (see :mod:`benchmarks.peers._workload`).
:mod:`benchmarks.peers.run_one` runs one scenario of one tool in a fresh
process; ``python -m benchmarks.peers`` runs them all, repeatedly, and writes
medians and ratios to runjournal as JSON. ``make bench`` installs the tools
into ``.venv-bench`` first (pinned in ``requirements.txt``).
"""
