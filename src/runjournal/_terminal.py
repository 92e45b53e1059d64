"""Text for the terminal: safe strings, compact numbers, durations, times and tables.

Every string that comes from a store (run names, params, tags, notes, metric
names) passes through :func:`safe` before it is printed, so a name holding an
escape sequence cannot move the cursor, recolour or rewrite the screen.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Sequence

__all__ = [
    "format_duration",
    "format_number",
    "format_time",
    "format_value",
    "safe",
    "table",
    "truncate",
    "width",
]

_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erasing
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?"  # any other escape
    r"|\x9b[0-?]*[ -/]*[@-~]"  # CSI as a single 8-bit C1 character
)
_WHITESPACE_CONTROL = re.compile(r"[\t\n\r\v\f]")
_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]"
)  # C0 and C1 controls, zero-width and bidirectional formatting characters


def safe(text: str, *, keep_newlines: bool = False) -> str:
    r"""``text`` without escape sequences or control characters; tabs and newlines become spaces.

    Example:
        >>> safe("evil\x1b[2J\x1b]0;title\x07name\nnext")
        'evilname next'
    """
    text = _ESCAPE_SEQUENCE.sub("", text)
    if keep_newlines:
        return "\n".join(_one_line(line) for line in text.split("\n"))
    return _one_line(text)


def _one_line(text: str) -> str:
    return _INVISIBLE.sub("", _WHITESPACE_CONTROL.sub(" ", text))


def width(text: str) -> int:
    """How many terminal columns ``text`` takes: wide East Asian characters take two.

    Example:
        >>> width("abc"), width("学习率")
        (3, 6)
    """
    return sum(_char_width(char) for char in text)


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` columns, ending in ``…`` when cut.

    Example:
        >>> truncate("a-very-long-run-name", 10)
        'a-very-lo…'
    """
    if width(text) <= limit:
        return text
    kept, used = [], 0
    for char in text:
        if used + _char_width(char) > limit - 1:
            break
        kept.append(char)
        used += _char_width(char)
    return "".join(kept) + "…"


def format_number(value: object) -> str:
    """A metric value in a few characters: 4 significant digits, ints in full when short.

    Example:
        >>> format_number(0.123456), format_number(1234), format_number(2**70), format_number(None)
        ('0.1235', '1234', '1.181e+21', '-')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**7 else f"{value:.4g}"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return safe(str(value))


def format_value(value: object) -> str:
    """A param, tag or exact metric value: strings as they are, the rest as Python shows them.

    Example:
        >>> format_value("adamw"), format_value(0.1), format_value([64, 128]), format_value(None)
        ('adamw', '0.1', '[64, 128]', 'None')
    """
    return safe(value if isinstance(value, str) else repr(value))


def format_duration(seconds: float | None) -> str:
    """A duration for humans: ``4.2s``, ``1m02s``, ``3h04m``, ``2d05h``; ``-`` when None.

    Example:
        >>> format_duration(62), format_duration(11040), format_duration(0.42)
        ('1m02s', '3h04m', '0.4s')
    """
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_time(moment: dt.datetime | None, *, seconds: bool = False) -> str:
    """A time in the local time zone: ``2026-11-23 15:48`` (with seconds and offset if asked).

    Example:
        >>> format_time(None)
        '-'
    """
    if moment is None:
        return "-"
    pattern = "%Y-%m-%d %H:%M:%S %z" if seconds else "%Y-%m-%d %H:%M"
    return moment.astimezone().strftime(pattern)


def table(
    rows: Sequence[Sequence[str]], *, header: Sequence[str] | None = None, numeric: int = 0
) -> str:
    """Rows aligned in columns two spaces apart, under an optional header.

    Args:
        rows: The cells, already made safe and short.
        header: The column titles, if any.
        numeric: How many of the last columns hold numbers, aligned right.

    Example:
        >>> print(table([["r1", "0.5"], ["r22", "0.25"]], header=["id", "loss"], numeric=1))
        id   loss
        r1    0.5
        r22  0.25
    """
    lines = [*([header] if header is not None else []), *rows]
    if not lines:
        return ""
    widths = [max(width(line[index]) for line in lines) for index in range(len(lines[0]))]
    first_numeric = len(widths) - numeric
    text = []
    for line in lines:
        cells = []
        for index, cell in enumerate(line):
            pad = " " * (widths[index] - width(cell))
            cells.append(pad + cell if index >= first_numeric else cell + pad)
        text.append("  ".join(cells).rstrip())
    return "\n".join(text)
