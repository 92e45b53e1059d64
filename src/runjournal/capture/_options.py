"""What ``start(capture=...)`` captures, and how: the parts, the limits, the extra words.

``capture`` is True (every part), False (none), a mapping of option names, or a
:class:`CaptureOptions`. Environment variables extend the lists without a code
change: ``RUNJOURNAL_CAPTURE=0`` turns capture off where ``start()`` does not
say, ``RUNJOURNAL_CAPTURE_ENV`` adds environment variable prefixes to keep and
``RUNJOURNAL_SECRET_WORDS`` adds secret words (both comma-separated).

Example:
    >>> from runjournal.capture import CaptureOptions
    >>> options = CaptureOptions.from_mapping({"git": False, "env_allow": ["MYLAB_"]})
    >>> options.git, options.packages, options.env_allow
    (False, True, ('MYLAB_',))
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from runjournal import _env
from runjournal.errors import InvalidArgumentError

__all__ = ["PARTS", "CaptureOptions", "resolve_capture"]

PARTS = (
    "command",
    "python",
    "platform",
    "host",
    "cpu",
    "memory",
    "gpus",
    "packages",
    "python_env",
    "scheduler",
    "env",
    "notebook",
    "git",
)
"""The parts that can be turned off one by one (``gpus`` covers ``cuda`` too)."""

DEFAULT_TIMEOUT = 5.0
"""Seconds the whole capture may take at ``start()`` before the parts still running are given up."""

DEFAULT_PATCH_CAP = 10 * 1024 * 1024
"""Bytes of ``git.patch`` kept at most; a larger diff is recorded as truncated."""


class CaptureOptions(NamedTuple):
    """The parts to capture and how; every part is on by default.

    Attributes:
        command, python, platform, host, cpu, memory, gpus, packages,
            python_env, scheduler, env, notebook, git: Whether to capture that part.
        env_allow: More environment variables to keep: an entry ending in
            ``_`` (or ``*``) is a prefix, any other entry an exact name.
        secret_words: More words that make a name secret (``"pin"``), for the
            captured environment, command line, params and tags.
        timeout: Seconds the capture may take in all.
        patch_cap_bytes: The largest ``git.patch`` kept.
        git_dir: The directory whose repository to capture, instead of the
            entry point's (then the working directory's).

    Example:
        >>> CaptureOptions(gpus=False).timeout
        5.0
    """

    command: bool = True
    python: bool = True
    platform: bool = True
    host: bool = True
    cpu: bool = True
    memory: bool = True
    gpus: bool = True
    packages: bool = True
    python_env: bool = True
    scheduler: bool = True
    env: bool = True
    notebook: bool = True
    git: bool = True
    env_allow: tuple[str, ...] = ()
    secret_words: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    patch_cap_bytes: int = DEFAULT_PATCH_CAP
    git_dir: str | None = None

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> CaptureOptions:
        """Check a mapping of option names and build the options from it.

        Raises:
            InvalidArgumentError: a key is not an option, or its value is not valid.

        Example:
            >>> CaptureOptions.from_mapping({"timeout": 2}).timeout
            2.0
        """
        checked: dict[str, Any] = {}
        for key, value in options.items():
            if key not in cls._fields:
                raise _bad(
                    f"capture option {key!r} is not known; use one of {', '.join(cls._fields)}",
                    options,
                )
            checked[key] = _check_option(key, value, options)
        return cls(**checked)

    def enabled(self, part: str) -> bool:
        """Whether ``part`` is captured.

        Example:
            >>> CaptureOptions(git=False).enabled("git")
            False
        """
        return bool(getattr(self, part))

    def allowed_env(self) -> tuple[str, ...]:
        """The extra environment variable names and prefixes, with ``RUNJOURNAL_CAPTURE_ENV``'s.

        Example:
            >>> CaptureOptions(env_allow=("MYLAB_",)).allowed_env()
            ('MYLAB_',)
        """
        return self.env_allow + _env.words(_env.CAPTURE_ENV)

    def all_secret_words(self) -> tuple[str, ...]:
        """The extra secret words, with ``RUNJOURNAL_SECRET_WORDS``'s.

        Example:
            >>> CaptureOptions(secret_words=("pin",)).all_secret_words()
            ('pin',)
        """
        return self.secret_words + _env.words(_env.SECRET_WORDS)


def resolve_capture(capture: object) -> CaptureOptions | None:
    """The options of ``start(capture=...)``; None when capture is off.

    None (the default) means ``RUNJOURNAL_CAPTURE``, else on.

    Raises:
        InvalidArgumentError: ``capture`` (or ``RUNJOURNAL_CAPTURE``) is not valid.

    Example:
        >>> resolve_capture(False) is None, resolve_capture({"git": False}).git
        (True, False)
    """
    if capture is None:
        setting = _env.text(_env.CAPTURE)
        if setting is None:
            return CaptureOptions()
        if setting.lower() not in _env.BOOLEAN_WORDS:
            raise InvalidArgumentError(
                f"{_env.CAPTURE}={setting!r} is not valid; use 1 or 0 (true/false, yes/no, on/off)",
                argument="capture",
                value=setting,
            )
        return CaptureOptions() if _env.flag(_env.CAPTURE) else None
    if capture is True:
        return CaptureOptions()
    if capture is False:
        return None
    if isinstance(capture, CaptureOptions):
        return CaptureOptions.from_mapping(capture._asdict())
    if isinstance(capture, Mapping):
        return CaptureOptions.from_mapping(capture)
    raise _bad(
        f"capture={capture!r} is not valid; give True, False, a mapping of options"
        " or a CaptureOptions",
        capture,
    )


def _check_option(key: str, value: object, options: object) -> Any:
    if key in PARTS:
        if not isinstance(value, bool):
            raise _bad(f"capture option {key!r} must be True or False, not {value!r}", options)
        return value
    if key in ("env_allow", "secret_words"):
        if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
            raise _bad(f"capture option {key!r} must be a list of strings, not {value!r}", options)
        if not all(isinstance(item, str) and item.strip() for item in value):
            raise _bad(f"capture option {key!r} must hold non-empty strings: {value!r}", options)
        return tuple(sorted(value)) if isinstance(value, (set, frozenset)) else tuple(value)
    if key == "git_dir":
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise _bad(f"capture option 'git_dir' must be a path or None, not {value!r}", options)
        return None if value is None else os.fspath(value)
    if key == "timeout":
        seconds = value if isinstance(value, (int, float)) and not isinstance(value, bool) else -1
        if not (math.isfinite(seconds) and seconds > 0):
            raise _bad(f"capture option 'timeout' must be positive seconds, not {value!r}", options)
        return float(seconds)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(f"capture option {key!r} must be a number of bytes >= 0, not {value!r}", options)
    return value


def _bad(message: str, value: object) -> InvalidArgumentError:
    return InvalidArgumentError(message, argument="capture", value=value)
