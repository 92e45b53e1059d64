"""The environment of every measured process: no telemetry, no network, no stray files.

Each tool's own offline and telemetry switches are set, and every HTTP client
that honours the proxy variables is sent to a closed port on this machine, so
that a connection attempt fails at once instead of hanging. ``HOME`` and the
XDG directories point into the scratch directory, so no tool reads a user's
credentials or settings, or writes outside the measurement; that home has a
``.gitconfig`` with a user name and email, as a developer's machine has.
"""

from __future__ import annotations

import os
from pathlib import Path

DEAD_PROXY = "http://127.0.0.1:9"
"""The discard port, closed here: a client that tries the network is refused at once."""

SWITCHES = {
    # Everyone.
    "DO_NOT_TRACK": "1",
    "HTTP_PROXY": DEAD_PROXY,
    "HTTPS_PROXY": DEAD_PROXY,
    "http_proxy": DEAD_PROXY,
    "https_proxy": DEAD_PROXY,
    "NO_PROXY": "localhost,127.0.0.1,::1",
    "no_proxy": "localhost,127.0.0.1,::1",
    "PYTHONWARNINGS": "ignore",
    # MLflow.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "GIT_PYTHON_REFRESH": "quiet",
    # W&B.
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_ERROR_REPORTING": "false",
    "WANDB_DISABLE_CODE": "true",
    "WANDB_HTTP_TIMEOUT": "2",
    "WANDB_INIT_TIMEOUT": "120",
    # trackio (Hugging Face Hub, Gradio).
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TRACKIO_AUTO_LOG_GPU": "false",
    # DVC and DVCLive.
    "DVC_NO_ANALYTICS": "1",
    "DVC_STUDIO_OFFLINE": "1",
    "DVCLIVE_OPEN": "false",
    # Aim.
    "AIM_UI_TELEMETRY_ENABLED": "0",
    "AIM_TELEMETRY_ENABLED": "0",
    # runjournal.
    "RUNJOURNAL_STRICT": "0",
}


def environment(scratch: Path, python_path: list[Path]) -> dict[str, str]:
    """The environment of a measured process whose scratch directory is ``scratch``."""
    home = scratch / "home"
    for sub in ("", ".cache", ".config"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    # A git user, as on any machine where people commit (DVCLive commits experiments).
    (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = bench@example.invalid\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RUNJOURNAL_", "WANDB_", "MLFLOW_", "TRACKIO_", "HF_", "AIM_"))
    }
    env.update(SWITCHES)
    env.update(
        {
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "HF_HOME": str(home / ".cache" / "huggingface"),
            "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
            "PYTHONPATH": os.pathsep.join(map(str, python_path)),
        }
    )
    return env
