"""What a run needs to be reproduced: environment, git state and data hashes.

Importing this package costs nothing: each name loads its module on first use,
so ``import runjournal`` and the logging hot path never pay for capture.

Example:
    >>> from runjournal.capture import is_secret_name
    >>> is_secret_name("HF_TOKEN"), is_secret_name("max_tokens")
    (True, False)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runjournal.capture._options import CaptureOptions
    from runjournal.capture._redact import (
        REDACTED,
        is_secret_name,
        redact_argv,
        redact_params,
        redact_text,
        redact_url,
        redact_value,
    )
    from runjournal.capture.environment import capture_environment
    from runjournal.capture.git import GitCapture, capture_git

__all__ = [
    "REDACTED",
    "CaptureOptions",
    "GitCapture",
    "capture_environment",
    "capture_git",
    "is_secret_name",
    "redact_argv",
    "redact_params",
    "redact_text",
    "redact_url",
    "redact_value",
]

_LAZY = {
    "CaptureOptions": "runjournal.capture._options",
    "GitCapture": "runjournal.capture.git",
    "REDACTED": "runjournal.capture._redact",
    "capture_environment": "runjournal.capture.environment",
    "capture_git": "runjournal.capture.git",
    "is_secret_name": "runjournal.capture._redact",
    "redact_argv": "runjournal.capture._redact",
    "redact_params": "runjournal.capture._redact",
    "redact_text": "runjournal.capture._redact",
    "redact_url": "runjournal.capture._redact",
    "redact_value": "runjournal.capture._redact",
}
"""Public name -> the module that defines it, imported on first use."""


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runjournal.capture' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
