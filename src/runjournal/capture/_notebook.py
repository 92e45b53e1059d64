"""Inside Jupyter or IPython: the kind of session, the notebook's path, the executed cells.

Read from the running shell only (IPython is never imported here, and no
Jupyter server is asked anything): the cells are the ``In`` history of the
user namespace, with secrets redacted; the path comes from what VS Code,
ipykernel or JupyterLab leave behind (``__vsc_ipynb_file__``, ``__session__``,
``JPY_SESSION_NAME``), when any of them does.

Example:
    >>> from runjournal.capture._notebook import notebook
    >>> notebook() is None  # not in IPython
    True
"""

from __future__ import annotations

import os
import sys
from typing import Any

from runjournal.capture._redact import redact_text

__all__ = ["notebook"]

_KINDS = {
    "ZMQInteractiveShell": "jupyter",
    "TerminalInteractiveShell": "ipython",
    "Shell": "colab",  # google.colab._shell.Shell
}
_PATH_NAMES = ("__vsc_ipynb_file__", "__session__")
_PATH_VARIABLE = "JPY_SESSION_NAME"


def notebook(extra: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """The notebook session this process runs in, or None outside IPython.

    Args:
        extra: More secret words for the redaction of the cells.

    Example:
        >>> notebook(frozenset({"pin"})) is None
        True
    """
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    if shell is None:
        return None
    namespace = getattr(shell, "user_ns", None)
    namespace = namespace if isinstance(namespace, dict) else {}
    history = namespace.get("In")
    cells = [
        redact_text(cell, extra)
        for cell in (history if isinstance(history, list) else [])
        if isinstance(cell, str) and cell.strip()
    ]
    return {
        "kind": _KINDS.get(type(shell).__name__, "ipython"),
        "path": _path(namespace),
        "cells": cells,
    }


def _path(namespace: dict[str, Any]) -> str | None:
    for name in _PATH_NAMES:
        value = namespace.get(name)
        if isinstance(value, str) and value.endswith(".ipynb"):
            return value
    value = os.environ.get(_PATH_VARIABLE, "")
    return value if value.endswith(".ipynb") else None
