"""The artifact verbs of a :class:`~runjournal.Run`: ``log_artifact``, ``log_text`` and kin.

A mixin, so that ``run.py`` stays about the run's lifecycle. Every verb
stores the content in the store's ``blobs/`` (``docs/artifacts.md``), appends
one line to ``artifacts.jsonl`` at once, and returns the record; a problem
follows the run's policy: a strict run raises, any other warns, records an
``error`` event with cause ``invalid_artifact`` and returns None. A run
started with ``durability="fsync"`` syncs each new blob, and the directory
that names it, before the record is written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runjournal.errors import ArtifactError, MissingDependencyError

if TYPE_CHECKING:
    from runjournal.query._artifacts import ArtifactRecord
    from runjournal.typing import PathLike

__all__ = ["ArtifactVerbs"]

_CAUSE = "invalid_artifact"


class ArtifactVerbs:
    """``Run``'s artifact methods; they use the run's writer, segment and error policy."""

    if TYPE_CHECKING:
        _dir: Path | None
        _seg: int
        _refusing: bool
        _fsync: bool

        def _refuse(self, verb: str) -> None: ...
        def _report(self, problem: Exception, cause: str | None = None) -> None: ...
        def _write_now(self, file: str, line: bytes) -> None: ...

    def log_artifact(
        self, path: PathLike, *, name: str | None = None, copy: bool = True
    ) -> ArtifactRecord | None:
        """Store a file or a directory in the store (once, whatever the number of runs).

        The content is copied into ``blobs/`` under its sha256, so editing the
        file later does not change what the run recorded. Symbolic links are
        followed; the store, if it lies inside the directory, is left out.

        Args:
            path: A file or a directory.
            name: The artifact name (default: the file or directory name); a
                relative ``/``-separated name without ``..``.
            copy: False records the path, size and hash only (for huge files
                that stay where they are).

        Returns:
            The record written, or None when it could not be stored (not strict)
            and for a disabled run.

        Example:
            >>> import pathlib, runjournal
            >>> _ = pathlib.Path("model.pt").write_bytes(b"weights")
            >>> with runjournal.start() as run:
            ...     record = run.log_artifact("model.pt")
            >>> record.name, record.kind, record.size, record.path[:13]
            ('model.pt', 'file', 7, 'blobs/sha256/')
        """
        from runjournal._artifacts import path_artifact

        return self._log_artifact(
            "log_artifact",
            name,
            lambda root: path_artifact(
                root, path, name, seg=self._seg, copy=copy, fsync=self._fsync
            ),
        )

    def log_text(self, name: str, text: str) -> ArtifactRecord | None:
        """Store a string as a UTF-8 text artifact.

        Example:
            >>> import runjournal
            >>> with runjournal.start() as run:
            ...     record = run.log_text("notes.txt", "lr was too high")
            >>> record.kind, record.media_type, record.size
            ('text', 'text/plain', 15)
        """
        from runjournal._artifact_content import text_bytes

        return self._log_content("log_text", name, "text", lambda: text_bytes(text))

    def log_json(self, name: str, value: Any) -> ArtifactRecord | None:
        """Store a value as an indented JSON artifact (NaN and infinity as tagged objects).

        Values follow the rules of params (tuples as lists, dataclasses as
        objects, ``{"$float": "nan"}``...; ``docs/format.md``).

        Example:
            >>> import runjournal
            >>> with runjournal.start() as run:
            ...     record = run.log_json("eval.json", {"acc": 0.9, "loss": float("nan")})
            >>> record.kind, record.media_type
            ('json', 'application/json')
        """
        from runjournal._artifact_content import json_bytes

        return self._log_content("log_json", name, "json", lambda: json_bytes(value))

    def log_table(self, name: str, frame: Any, *, format: str = "csv") -> ArtifactRecord | None:
        """Store a pandas DataFrame as CSV (with its index) or JSON lines (``format="jsonl"``).

        Example:
            >>> import pandas as pd, runjournal
            >>> frame = pd.DataFrame({"cat": [9, 1], "dog": [2, 8]}, index=["cat", "dog"])
            >>> with runjournal.start() as run:
            ...     record = run.log_table("confusion.csv", frame)
            >>> record.kind, record.media_type
            ('table', 'text/csv')
        """
        from runjournal._artifact_content import table_bytes

        return self._log_content("log_table", name, "table", lambda: table_bytes(frame, format))

    def log_image(self, name: str, image: Any) -> ArtifactRecord | None:
        """Store an image: a path to an image file (as is) or a uint8 NumPy array (as PNG).

        An array has shape ``(H, W)`` (grey), ``(H, W, 3)`` (RGB) or
        ``(H, W, 4)`` (RGBA); no imaging library is needed.

        Example:
            >>> import numpy as np, runjournal
            >>> with runjournal.start() as run:
            ...     record = run.log_image("mask.png", np.zeros((4, 4), dtype=np.uint8))
            >>> record.kind, record.media_type
            ('image', 'image/png')
        """
        if isinstance(image, (str, Path)) or hasattr(image, "__fspath__"):
            from runjournal._artifacts import path_artifact

            return self._log_artifact(
                "log_image",
                name,
                lambda root: path_artifact(
                    root, image, name, seg=self._seg, copy=True, kind="image", fsync=self._fsync
                ),
            )
        from runjournal._artifact_content import image_bytes

        return self._log_content("log_image", name, "image", lambda: image_bytes(image))

    def log_figure(self, name: str, figure: Any) -> ArtifactRecord | None:
        r"""Store a matplotlib figure as PNG (``fig.savefig``); needs the ``plots`` extra.

        Raises:
            MissingDependencyError: (strict run) given something that is not a
                figure while matplotlib is not installed.

        Example:
            >>> import runjournal
            >>> class Figure:  # stands in for a matplotlib figure: only savefig is used
            ...     def savefig(self, file, format):
            ...         file.write(b"\x89PNG...")
            >>> with runjournal.start() as run:
            ...     record = run.log_figure("loss.png", Figure())
            >>> record.kind, record.media_type
            ('figure', 'image/png')
        """
        from runjournal._artifact_content import figure_bytes

        return self._log_content("log_figure", name, "figure", lambda: figure_bytes(figure))

    def _log_content(
        self, verb: str, name: str, kind: str, encode: Callable[[], tuple[bytes, str]]
    ) -> ArtifactRecord | None:
        def store(root: Path) -> dict[str, Any]:
            from runjournal._artifacts import bytes_artifact, check_artifact_name

            check_artifact_name(name)
            data, media = encode()
            return bytes_artifact(
                root, name, kind, data, seg=self._seg, media=media, fsync=self._fsync
            )

        return self._log_artifact(verb, name, store)

    def _log_artifact(
        self, verb: str, name: str | None, store: Callable[[Path], dict[str, Any]]
    ) -> ArtifactRecord | None:
        """Store, then append the record at once; a problem follows the run's policy."""
        if self._refusing:
            self._refuse(verb)
            return None
        from runjournal._artifacts import ARTIFACTS
        from runjournal.format import dumps_line
        from runjournal.query._artifacts import ArtifactRecord

        assert self._dir is not None
        try:
            record = store(self._dir.parent.parent)
        except (ArtifactError, MissingDependencyError) as problem:
            if isinstance(problem, ArtifactError) and problem.name is None:
                problem.name = name if isinstance(name, str) else None
            self._report(problem, cause=_CAUSE)
            return None
        self._write_now(ARTIFACTS, dumps_line(record))
        return ArtifactRecord.model_validate(record)
