r"""Values made in memory as artifact bytes: text, JSON, tables, images and figures.

Each function returns ``(bytes, media type)`` or raises
:class:`~runjournal.errors.ArtifactError` (or
:class:`~runjournal.errors.MissingDependencyError` for a missing optional
library). pandas and matplotlib are never imported here unless the value
given needs them.

Example:
    >>> json_bytes({"loss": float("nan"), "ok": True})
    (b'{\n  "loss": {\n    "$float": "nan"\n  },\n  "ok": true\n}\n', 'application/json')
"""

from __future__ import annotations

import importlib.util
import io

import orjson

from runjournal.errors import ArtifactError, InvalidValueError, MissingDependencyError

__all__ = ["figure_bytes", "image_bytes", "json_bytes", "table_bytes", "text_bytes"]

TABLE_FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


def text_bytes(text: object) -> tuple[bytes, str]:
    r"""UTF-8 bytes of a string.

    Example:
        >>> text_bytes("héllo")
        (b'h\xc3\xa9llo', 'text/plain')
    """
    if not isinstance(text, str):
        raise ArtifactError(f"log_text takes a str, not a {type(text).__name__}")
    try:
        return text.encode("utf-8"), "text/plain"
    except UnicodeEncodeError as error:
        raise ArtifactError(f"the text cannot be encoded as UTF-8: {error}") from None


def json_bytes(value: object) -> tuple[bytes, str]:
    """Indented JSON of a value, with params' rules (NaN and infinity as tagged objects)."""
    from runjournal.values import coerce_params

    try:
        tree = coerce_params({"value": value})["value"]
        data = orjson.dumps(tree, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except (InvalidValueError, orjson.JSONEncodeError, ValueError) as error:
        raise ArtifactError(f"the value has no JSON form: {error}") from None
    return data, "application/json"


def table_bytes(frame: object, table_format: str) -> tuple[bytes, str]:
    """A DataFrame as CSV (with its index) or JSON lines (one object per row)."""
    if table_format not in TABLE_FORMATS:
        raise ArtifactError(f"format={table_format!r} is not valid; use 'csv' or 'jsonl'")
    if not callable(getattr(frame, "to_csv", None)):
        raise ArtifactError(f"log_table takes a pandas DataFrame, not a {type(frame).__name__}")
    try:
        if table_format == "csv":
            text = frame.to_csv()  # type: ignore[attr-defined]
        else:
            text = frame.to_json(orient="records", lines=True)  # type: ignore[attr-defined]
            text = text if text.endswith("\n") or not text else text + "\n"
    except Exception as error:  # the frame's own code: whatever it raises
        raise ArtifactError(f"the table cannot be written: {error}") from None
    return str(text).encode("utf-8"), TABLE_FORMATS[table_format]


def image_bytes(array: object) -> tuple[bytes, str]:
    """A uint8 NumPy array as PNG."""
    from runjournal._png import encode_png

    try:
        return encode_png(array), "image/png"
    except (ValueError, AttributeError, TypeError) as error:
        raise ArtifactError(str(error)) from None


def figure_bytes(figure: object) -> tuple[bytes, str]:
    """A matplotlib figure (anything with ``savefig``) as PNG."""
    savefig = getattr(figure, "savefig", None)
    if not callable(savefig):
        if importlib.util.find_spec("matplotlib") is None:  # found, never imported
            raise MissingDependencyError("matplotlib", extra="plots")
        raise ArtifactError(f"log_figure takes a matplotlib figure, not a {type(figure).__name__}")
    buffer = io.BytesIO()
    try:
        savefig(buffer, format="png")
    except Exception as error:  # matplotlib's own code: whatever it raises
        raise ArtifactError(f"the figure cannot be saved as PNG: {error}") from None
    return buffer.getvalue(), "image/png"
